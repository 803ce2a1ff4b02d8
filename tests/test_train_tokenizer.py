"""SAT training: a tiny SAT on the synthetic corpus lowers its mel loss; the adversarial path,
its checkpoint contents and the eval outputs work end to end."""
from __future__ import annotations

import json

import torch

from nextscale.train.checkpoints import CheckpointManager
from nextscale.train.tokenizer import load_sat_train_config, train_tokenizer


def tiny_sat_train_config(steps: int, **train) -> dict:
    return {"model": {"sample_rate": 8000, "clip_seconds": 0.25, "n_filters": 4, "dimension": 16, "ratios": [5, 4],
                      "lstm_layers": 0, "latent_dim": 8, "codebook_size": 32, "schedule": "quadratic",
                      "num_scales": 4, "phi_count": 2, "kmeans_iters": 5},
            "data": {"n": 128, "sample_rate": 8000, "clip_seconds": 0.25, "heldout_n": 2},
            "loss": {"mel_min_exponent": 5, "mel_max_exponent": 8},
            "optim": {"lr": 3e-3, "warmup_steps": 10},
            "train": {"steps": steps, "batch_size": 8, "log_every": 10, "ckpt_every": 0, "eval_every": 0,
                      "device": "cpu", "adversarial": False, "progress": False, "tensorboard": False} | train}


def test_tiny_sat_lowers_mel_loss_by_30_percent(tmp_path):
    train_tokenizer(load_sat_train_config(tiny_sat_train_config(80)), tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    first, last = rows[0]["mel"], rows[-1]["mel"]
    assert last <= 0.7 * first, (first, last)
    assert (tmp_path / "tokenizer" / "model.safetensors").is_file()


def test_adversarial_run_checkpoints_discriminator_and_writes_eval_samples(tmp_path):
    cfg = tiny_sat_train_config(3, adversarial=True, batch_size=2, eval_every=3, ckpt_every=3, eval_clips=2,
                                disc_windows=[256, 128])
    train_tokenizer(load_sat_train_config(cfg), tmp_path)
    ck = CheckpointManager.load(CheckpointManager(tmp_path).latest(), "sat")
    assert {"discriminator", "disc_optimizer", "optimizer", "scheduler"} <= set(ck["training_state"])
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("d_loss" in r for r in rows) and any("adv" in r for r in rows)
    samples = tmp_path / "samples" / "step_0000003"
    assert (samples / "clip1_recon.wav").is_file() and (samples / "clip0_previews.png").is_file()
    assert len(list(samples.glob("clip0_scales*.wav"))) == 4
    usage = json.loads((samples / "codebook_usage.json").read_text())
    assert len(usage["usage"]) == 4 and all(0 < u <= 1 for u in usage["usage"])
    assert (tmp_path / "checkpoints" / "best" / "model.safetensors").is_file()
    assert torch.isfinite(torch.tensor([r["loss"] for r in rows if "loss" in r])).all()
