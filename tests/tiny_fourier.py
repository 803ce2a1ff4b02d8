"""A Fourier SAT small enough to train in seconds (8 kHz, hop 80, n_fft 240), shared by the codec's tests."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TINY = dict(codec="fourier", sample_rate=8000, hop=80, n_fft=240, dimension=16, latent_dim=8, codebook_size=32,
            convnext_width=32, convnext_layers=1, schedule="quadratic", num_scales=4, phi_count=2, kmeans_iters=5)


def train_tiny(out: Path, model: dict[str, Any], loss: dict[str, Any] | None = None, steps: int = 100,
               train: dict[str, Any] | None = None) -> list[dict]:
    """Train TINY with `model` (and `train`) overrides for `steps` steps at batch 8 on 0.25 s synthetic clips (losses logged
    every 10 steps) into `out`; returns the logged rows."""
    from nextscale.train.tokenizer import load_sat_train_config, train_tokenizer

    cfg = {"model": TINY | {"clip_seconds": 0.25} | model,
           "data": {"n": 128, "sample_rate": 8000, "clip_seconds": 0.25, "heldout_n": 2},
           "loss": {"mel_min_exponent": 5, "mel_max_exponent": 8} | (loss or {}),
           "optim": {"lr": 3e-3, "warmup_steps": 10},
           "train": {"steps": steps, "batch_size": 8, "log_every": 10, "ckpt_every": 0, "eval_every": 0, "seed": 0,
                     "device": "cpu", "adversarial": False, "progress": False, "tensorboard": False} | (train or {})}
    train_tokenizer(load_sat_train_config(cfg), out)
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
