"""Kill-and-resume through the CLI: a run SIGKILLed right after a checkpoint and resumed ends with
exactly (bitwise, CPU) the weights of an uninterrupted run, for AR and SAT training."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch
import yaml
from safetensors.torch import load_file

from test_train_tokenizer import tiny_sat_train_config
from train_data import make_cache, tiny_ar_config
import pytest

pytestmark = pytest.mark.slow   # trains models for tens of seconds: `pytest -m "not slow"` skips them


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "nextscale", *args]


def _kill_after_checkpoint(cmd: list[str], checkpoint, timeout: float = 300) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ | {"OMP_NUM_THREADS": "1"})
    start = time.time()
    while not checkpoint.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() - start < timeout
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _run(cmd: list[str]) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"}, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]


def _same_weights(a, b) -> None:
    x, y = load_file(str(a)), load_file(str(b))
    assert x.keys() == y.keys()
    assert all(torch.equal(x[k], y[k]) for k in x), [k for k in x if not torch.equal(x[k], y[k])][:5]


def test_ar_kill_and_resume_is_bitwise(tmp_path):
    _, cache, _ = make_cache(tmp_path, n=24)
    cfg = tiny_ar_config(steps=40, ckpt_every=5)
    (tmp_path / "ar.yaml").write_text(yaml.safe_dump(cfg))
    args = ["train-ar", "--config", str(tmp_path / "ar.yaml"), "--tokens", str(cache)]
    _run(_cli(*args, "--out", str(tmp_path / "full")))
    killed = tmp_path / "killed"
    _kill_after_checkpoint(_cli(*args, "--out", str(killed)), killed / "checkpoints" / "step_0000010")
    assert not (killed / "checkpoints" / "step_0000040").exists()
    _run(_cli(*args, "--out", str(killed), "--resume"))
    _same_weights(tmp_path / "full" / "checkpoints" / "step_0000040" / "model.safetensors",
                  killed / "checkpoints" / "step_0000040" / "model.safetensors")


def test_sat_kill_and_resume_is_bitwise(tmp_path):
    cfg = tiny_sat_train_config(8, adversarial=True, batch_size=2, ckpt_every=2, disc_windows=[256, 128])
    cfg["data"]["n"] = 16
    (tmp_path / "sat.yaml").write_text(yaml.safe_dump(cfg))
    args = ["train-tokenizer", "--config", str(tmp_path / "sat.yaml")]
    _run(_cli(*args, "--out", str(tmp_path / "full")))
    killed = tmp_path / "killed"
    _kill_after_checkpoint(_cli(*args, "--out", str(killed)), killed / "checkpoints" / "step_0000004")
    _run(_cli(*args, "--out", str(killed), "--resume"))
    _same_weights(tmp_path / "full" / "tokenizer" / "model.safetensors", killed / "tokenizer" / "model.safetensors")
