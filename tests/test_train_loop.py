"""The generic loop on a toy model: data order, determinism, exact resume, non-finite steps, schedule."""
from __future__ import annotations

import json
import math

import pytest
import torch

from nextscale.train.checkpoints import CheckpointManager
from nextscale.train.config import OptimConfig, TrainConfig
from nextscale.train.distributed import DistInfo
from nextscale.train.loop import Trainer, TrainingDiverged
from nextscale.train.order import StepBatchSampler
from nextscale.train.schedule import lr_factor
from train_toy import ToyData, ToyModel, ToyTask, collate


def _cfg(**kw):
    base = dict(steps=12, batch_size=8, log_every=2, ckpt_every=4, eval_every=4, keep_last=5, seed=3,
                device="cpu", progress=False, tensorboard=False, max_bad_steps=3)
    return TrainConfig(**(base | kw))


def _run(run_dir, cfg, resume=False, nan_steps=(), data=None):
    torch.manual_seed(cfg.seed)
    model = ToyModel()
    task = ToyTask(model, cfg, nan_steps=nan_steps)
    trainer = Trainer(task, data or ToyData(), collate, cfg, run_dir, DistInfo())
    return trainer, task, trainer.fit(resume=resume)


def test_sampler_is_a_function_of_seed_and_step_and_ranks_split_the_global_batch():
    one = StepBatchSampler(20, 8, seed=1, start_step=0, total_steps=6)
    batches = list(one)
    assert sorted(sum(batches[:2], [])) == sorted(set(sum(batches[:2], [])))   # no repeats inside an epoch
    assert batches[3] == StepBatchSampler(20, 8, seed=1, start_step=3, total_steps=6).batch_indices(3)
    assert batches[0] != StepBatchSampler(20, 8, seed=2, start_step=0, total_steps=6).batch_indices(0)
    ranks = [StepBatchSampler(20, 8, 1, 0, 6, rank=r, world_size=2).batch_indices(4) for r in (0, 1)]
    assert ranks[0] + ranks[1] == batches[4]


def test_same_seed_gives_bit_identical_losses(tmp_path):
    _, a, _ = _run(tmp_path / "a", _cfg())
    _, b, _ = _run(tmp_path / "b", _cfg())
    assert a.losses == b.losses and len(a.losses) == 12
    assert a.losses[-1] < 0.5 * a.losses[0]   # it actually trains


def test_resume_is_exact(tmp_path):
    _, full, res = _run(tmp_path / "full", _cfg())
    _run(tmp_path / "part", _cfg(steps=12, ckpt_every=4))
    # simulate a kill after step 8: drop the checkpoint of step 12 and resume
    import shutil

    shutil.rmtree(tmp_path / "part" / "checkpoints" / "step_0000012")
    _, resumed, res2 = _run(tmp_path / "part", _cfg(), resume=True)
    assert resumed.seen == full.seen[8:]
    assert resumed.losses == full.losses[8:]
    a = CheckpointManager.load(res.checkpoint)["model_state"]
    b = CheckpointManager.load(res2.checkpoint)["model_state"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line) for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss" in r]
    assert steps == [2, 4, 6, 8, 10, 12]   # no doubled rows after resume


def test_best_checkpoint_tracks_eval_metric(tmp_path):
    trainer, _, _ = _run(tmp_path, _cfg())
    best = json.loads((tmp_path / "checkpoints" / "best" / "trainer_state.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = {r["step"]: r["eval_loss"] for r in rows if "eval_loss" in r}
    assert best["step"] == min(evals, key=evals.get)
    assert (tmp_path / "loss_curve.png").is_file()


def test_non_finite_steps_are_skipped_and_counted(tmp_path):
    _, clean, _ = _run(tmp_path / "clean", _cfg(steps=4, eval_every=0, ckpt_every=0))
    trainer, task, res = _run(tmp_path / "nan", _cfg(steps=4, eval_every=0, ckpt_every=0), nan_steps=(1,))
    assert res.bad_steps == 1
    assert math.isnan(task.losses[1])
    rows = [json.loads(line) for line in (tmp_path / "nan" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["bad_steps"] == 1
    final = trainer.task.model.state_dict()
    assert all(torch.isfinite(v).all() for v in final.values())


def test_bad_data_skips_update_and_keeps_buffers_clean(tmp_path):
    """A NaN input pollutes neither the weights nor the running buffer updated in forward."""
    cfg = _cfg(steps=1, batch_size=64, eval_every=0, ckpt_every=0)
    torch.manual_seed(cfg.seed)
    model = ToyModel()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    task = ToyTask(model, cfg)
    res = Trainer(task, ToyData(nan_items=(5,)), collate, cfg, tmp_path, DistInfo()).fit()
    assert res.bad_steps == 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_too_many_bad_steps_stop_with_last_good_checkpoint(tmp_path):
    cfg = _cfg(steps=12, eval_every=0, ckpt_every=0, max_bad_steps=3)
    torch.manual_seed(cfg.seed)
    model = ToyModel()
    task = ToyTask(model, cfg, nan_steps=(5, 6, 7, 8))
    good = {}
    original = task.train_step

    def spy(batch, step):
        if step == 5:
            good.update({k: v.clone() for k, v in model.state_dict().items()})
        return original(batch, step)

    task.train_step = spy
    with pytest.raises(TrainingDiverged, match="non-finite for 3 steps in a row"):
        Trainer(task, ToyData(), collate, cfg, tmp_path, DistInfo()).fit()
    ck = CheckpointManager.load(CheckpointManager(tmp_path).latest())
    assert ck["trainer_state"]["step"] == 8 and ck["trainer_state"]["reason"] == "non-finite"
    assert all(torch.equal(ck["model_state"][k], good[k]) for k in good)


def test_lr_schedule_matches_hand_computation():
    cfg = OptimConfig(lr=1.0, warmup_steps=4, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, 104, cfg) == pytest.approx(0.25)
    assert lr_factor(3, 104, cfg) == pytest.approx(1.0)
    assert lr_factor(54, 104, cfg) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(104, 104, cfg) == pytest.approx(0.1)
    lin = OptimConfig(lr=1.0, warmup_steps=0, schedule="linear")
    assert lr_factor(25, 100, lin) == pytest.approx(0.75)


def test_config_validation():
    from nextscale.errors import ConfigError

    with pytest.raises(ConfigError, match="train.batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="optim.betas"):
        OptimConfig(betas=[0.9])
