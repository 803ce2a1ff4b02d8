"""Training config sections shared by every training command: `optim:` and `train:`.

Model-specific schemas (`SATTrainConfig`, `ARTrainConfig`) add their `model:` and `data:` sections
and a few switches of their own; everything else about a run lives here so both loops read the
same keys.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

from ..errors import ConfigError


@dataclasses.dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule: linear warmup, then cosine or linear decay."""

    lr: float = 3e-4
    betas: list[float] = dataclasses.field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 0.0
    eps: float = 1e-8
    warmup_steps: int = 100
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    min_lr_ratio: float = 0.0      # the decay ends at lr * min_lr_ratio
    grad_clip: float = 1.0         # max global grad norm; 0 turns clipping off

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"optim.lr: must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"optim.betas: expected two numbers in [0, 1), got {self.betas}")
        if self.weight_decay < 0 or self.eps <= 0:
            raise ConfigError("optim.weight_decay must be >= 0 and optim.eps > 0")
        if self.warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps: must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"optim.min_lr_ratio: must be in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip < 0:
            raise ConfigError(f"optim.grad_clip: must be >= 0 (0 = off), got {self.grad_clip}")


@dataclasses.dataclass
class TrainConfig:
    """The `train:` section: run length, batch, intervals, reliability limits, device."""

    steps: int = 10_000             # with time_budget_s: the fewest steps the run takes
    time_budget_s: float = 0.0      # > 0: train for this many seconds (the LR decay follows the clock)
    batch_size: int = 16            # global batch: split evenly over the ranks under torchrun
    num_workers: int = 0
    log_every: int = 10
    ckpt_every: int = 1000
    eval_every: int = 1000          # 0 = never (SAT: reconstructions; AR: generated samples)
    keep_last: int = 3              # newest checkpoints kept (the best one is kept apart in best/)
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "bf16", "fp32"] = "auto"   # auto: bf16 autocast on CUDA, fp32 on CPU; bf16: on both
    max_bad_steps: int = 20         # non-finite loss/grads this many steps in a row => stop
    dist_timeout_s: float = 600.0   # a collective waiting longer than this fails instead of hanging
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "max_bad_steps", "keep_last"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("num_workers", "log_every", "ckpt_every", "eval_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name}: must be >= 0, got {getattr(self, name)}")
        if not (self.time_budget_s >= 0 and self.time_budget_s < float("inf")):
            raise ConfigError(f"train.time_budget_s: must be a finite number of seconds >= 0 (0 = train.steps steps), "
                              f"got {self.time_budget_s}")
        if self.dist_timeout_s <= 0:
            raise ConfigError(f"train.dist_timeout_s: must be > 0, got {self.dist_timeout_s}")
