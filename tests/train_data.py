"""Tiny labelled audio and token caches for training tests (no downloads, deterministic)."""
from __future__ import annotations

import math

import torch

from nextscale.train.token_cache import build_token_cache
from tiny_models import CLASSES

FREQS = [220.0, 880.0, 1800.0, 3000.0]


class ToneData(torch.utils.data.Dataset):
    """Item i: class i % 4, a tone of that class's frequency with a random phase and amplitude."""

    classes = list(CLASSES)

    def __init__(self, n: int = 24, sample_rate: int = 8000, samples: int = 320):
        self.n, self.sample_rate, self.samples = n, sample_rate, samples
        self.calls = 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        self.calls += 1
        g = torch.Generator().manual_seed(i)
        label = i % len(FREQS)
        t = torch.arange(self.samples) / self.sample_rate
        phase, amp = float(torch.rand(1, generator=g)) * 6.28, 0.3 + 0.4 * float(torch.rand(1, generator=g))
        wav = amp * torch.sin(2 * math.pi * FREQS[label] * t + phase) + 0.01 * torch.randn(self.samples, generator=g)
        return {"audio": wav[None].float(), "label": label, "labels": [CLASSES[label]],
                "caption": f"a {CLASSES[label]}", "path": f"tone_{i}.wav"}


def collate(items: list[dict]) -> dict:
    return {"audio": torch.stack([it["audio"] for it in items]),
            "label": torch.tensor([it["label"] for it in items]),
            "caption": [it["caption"] for it in items], "path": [it["path"] for it in items]}


def make_cache(tmp_path, n: int = 24, shard_size: int = 10, sat=None):
    """(sat_dir, cache_dir, sat) with a tiny SAT saved and a cache of n ToneData clips."""
    from tiny_models import tiny_sat

    sat = sat or tiny_sat()
    sat_dir = sat.save_pretrained(tmp_path / "sat")
    cache = tmp_path / "cache"
    build_token_cache(sat, ToneData(n), cache, collate, tokenizer_path=sat_dir, batch_size=8, shard_size=shard_size,
                      progress=False)
    return sat_dir, cache, sat


def tiny_ar_config(kind: str = "aar", steps: int = 40, **train) -> dict:
    from tiny_models import CODEBOOK, LATENT, SCALES

    return {"model": {"kind": kind, "depth": 1, "width": 32, "heads": 2, "scales": SCALES, "codebook_size": CODEBOOK,
                      "latent_dim": LATENT, "condition": "class", "num_classes": len(CLASSES), "cond_dim": 16,
                      "cond_dropout": 0.1},
            "optim": {"lr": 3e-3, "warmup_steps": 5},
            "train": {"steps": steps, "batch_size": 8, "log_every": 5, "ckpt_every": 10, "eval_every": 0,
                      "device": "cpu", "progress": False, "tensorboard": False, "seed": 0} | train}
