"""Checkpoint manager: atomic writes, torn directories ignored, keep-last-N, best/ copy, load round trip."""
from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from nextscale.errors import CheckpointError
from nextscale.train.checkpoints import CheckpointManager, step_dir_name
from nextscale.train.rng import capture_rng, restore_rng
from train_toy import ToyModel


def _save(manager, step, model, best=False):
    return manager.save(step, model, {"optimizer": {"x": torch.tensor([float(step)])}}, [capture_rng()],
                        {"best": 0.0}, best=best)


def test_keep_last_and_best(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    model = ToyModel()
    for step in (10, 20, 30, 40):
        with torch.no_grad():
            model.lin.weight.fill_(step)
        _save(manager, step, model, best=step == 20)
    assert [s for s, _ in manager.checkpoints()] == [30, 40]
    assert manager.latest().name == step_dir_name(40)
    best = load_file(str(tmp_path / "checkpoints" / "best" / "model.safetensors"))
    assert torch.all(best["lin.weight"] == 20)
    assert json.loads((tmp_path / "checkpoints" / "best" / "trainer_state.json").read_text())["step"] == 20


def test_torn_and_temporary_directories_are_ignored(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=3)
    model = ToyModel()
    _save(manager, 5, model)
    root = tmp_path / "checkpoints"
    # a write killed half-way: hidden temp dir with a newer step, and a visible dir missing files
    (root / f".{step_dir_name(9)}.tmp-abc").mkdir()
    (root / f".{step_dir_name(9)}.tmp-abc" / "config.json").write_text("{}")
    torn = root / step_dir_name(8)
    torn.mkdir()
    (torn / "config.json").write_text("{}")
    assert manager.latest().name == step_dir_name(5)
    with pytest.raises(CheckpointError, match="missing"):
        CheckpointManager.load(torn)
    _save(manager, 6, model)   # the next save clears leftovers of killed writes
    assert not (root / f".{step_dir_name(9)}.tmp-abc").exists()


def test_failed_write_leaves_no_checkpoint(tmp_path):
    manager = CheckpointManager(tmp_path)

    class Unsaveable(ToyModel):
        def state_dict(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        _save(manager, 3, Unsaveable())
    assert manager.latest() is None
    assert not any((tmp_path / "checkpoints").iterdir())


def test_load_round_trip_and_kind_check(tmp_path):
    manager = CheckpointManager(tmp_path)
    model = ToyModel()
    torch.manual_seed(7)
    path = _save(manager, 1, model)
    expected = torch.rand(3)
    torch.manual_seed(0)
    ck = CheckpointManager.load(path, "toy")
    assert torch.equal(ck["model_state"]["lin.weight"], model.lin.weight)
    assert ck["training_state"]["optimizer"]["x"].item() == 1.0
    restore_rng(ck["rng"][0])
    assert torch.equal(torch.rand(3), expected)
    assert ck["trainer_state"]["step"] == 1 and not math.isnan(ck["trainer_state"]["best"])
    with pytest.raises(CheckpointError, match="holds a 'toy' model"):
        CheckpointManager.load(path, "sat")
    (path / "optimizer.pt").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="unreadable optimizer"):
        CheckpointManager.load(path)
