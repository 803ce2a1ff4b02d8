"""Learning-rate schedule: linear warmup, then cosine / linear decay to lr * min_lr_ratio."""
from __future__ import annotations

import math
import warnings

import torch

from .config import OptimConfig


def lr_factor(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Multiplier of cfg.lr at `step` (0-based): ramps to 1 over warmup, then decays."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1.0 - progress
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * shape


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepped once per training step (skipped steps included, so lr follows the step)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, cfg))


def advance(scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
    """Step the schedule; quiet about a skipped (non-finite) first optimizer step, which is intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        scheduler.step()
