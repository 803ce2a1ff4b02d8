"""torchrun with 2 CPU ranks (gloo): same weights as 1 process with the same global batch, only
rank 0 writes, and a failing rank ends the job with its own error instead of a hang."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
import yaml
from safetensors.torch import load_file, save_file

from nextscale.train.order import StepBatchSampler
from train_data import make_cache, tiny_ar_config
import pytest

pytestmark = pytest.mark.slow   # trains models for tens of seconds: `pytest -m "not slow"` skips them

ENV = os.environ | {"OMP_NUM_THREADS": "1"}


def _train(tmp_path, name, cache, nproc: int, timeout: float = 300):
    cfg = tiny_ar_config(steps=12, ckpt_every=6, log_every=3)
    cfg["model"]["cond_dropout"] = 0.0   # per-rank dropout draws cannot match one process's draws
    (tmp_path / "ar.yaml").write_text(yaml.safe_dump(cfg))
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"] \
        if nproc > 1 else [sys.executable]
    cmd = [*launch, "-m", "nextscale", "train-ar", "--config", str(tmp_path / "ar.yaml"), "--tokens", str(cache),
           "--out", str(tmp_path / name)]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)


def test_two_ranks_match_one_process_and_only_rank0_writes(tmp_path):
    _, cache, _ = make_cache(tmp_path, n=24)
    one = _train(tmp_path, "one", cache, 1)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _train(tmp_path, "two", cache, 2)
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "checkpoints" / "step_0000012" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "checkpoints" / "step_0000012" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)
    rows = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6, 9, 12]            # one writer: no duplicated rows
    ref = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    for r1, r2 in zip(ref, rows):                                 # logged loss is the global-batch mean
        assert abs(r1["loss"] - r2["loss"]) < 1e-4
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == \
        sorted(p.name for p in (tmp_path / "one" / "checkpoints").iterdir())


def test_a_failing_rank_brings_the_job_down_with_its_error(tmp_path):
    _, cache, _ = make_cache(tmp_path, n=24, shard_size=100)
    # poison the items rank 1 reads at step 0: their class label becomes -1
    shard = cache / "shard_00000.safetensors"
    from safetensors import safe_open

    with safe_open(str(shard), "pt") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    tensors["label"][StepBatchSampler(24, 8, 0, 0, 12, rank=1, world_size=2).batch_indices(0)] = -1
    save_file(tensors, str(shard), metadata=meta)
    out = _train(tmp_path, "fail", cache, 2, timeout=240)
    assert out.returncode != 0
    assert "rank 1: a cached clip" in out.stderr and "no class label" in out.stderr, out.stderr[:3000]
