"""Learning-rate schedule: linear warmup, then cosine / linear decay to lr * min_lr_ratio.

The decay runs over a run's progress, which `RunClock` measures: by steps (step / train.steps), or, with
`train.time_budget_s`, by the seconds spent training (budgeted training as in Geiping & Goldstein's
"Cramming"): the decay ends when the budget does, on any machine, with no step-time guess that a
busy or faster machine would prove wrong.
"""
from __future__ import annotations

import math
import warnings

import torch

from .config import OptimConfig


class RunClock:
    """How far a run is, in [0, 1]. Without a budget: step / steps. With `budget_s`: the smaller of the
    budget's share spent and step / steps, so the run ends once the budget is spent and at least `steps`
    steps were taken (a slow machine keeps the floor's quality and takes longer).

    The training loop adds each step's seconds (its batch included; evaluation and checkpoints not);
    checkpoints keep the total, so a resumed run continues the same clock.
    """

    def __init__(self, steps: int, budget_s: float = 0.0):
        self.steps, self.budget_s, self.seconds = steps, budget_s, 0.0

    @property
    def timed(self) -> bool:
        return self.budget_s > 0

    def progress(self, step: int) -> float:
        by_steps = step / self.steps
        return min(self.seconds / self.budget_s, by_steps) if self.timed else by_steps

    def done(self, step: int) -> bool:
        return self.progress(step) >= 1.0


def _decay_shape(progress: float, cfg: OptimConfig) -> float:
    progress = min(1.0, max(0.0, progress))
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1.0 - progress
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * shape


def lr_factor(step: int, clock: RunClock | int, cfg: OptimConfig) -> float:
    """Multiplier of cfg.lr at `step` (0-based): ramps to 1 over warmup (in steps), then decays over the steps
    after it, or, for a clock with a time budget, with the clock's progress (over the whole run: the warmup's
    few per cent of it cost < 1 % of the peak). `clock`: the run's RunClock, or its step count."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    clock = RunClock(clock) if isinstance(clock, int) else clock
    if clock.timed:
        return _decay_shape(clock.progress(step), cfg)
    return _decay_shape((step - cfg.warmup_steps) / max(1, clock.steps - cfg.warmup_steps), cfg)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, clock: RunClock
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepped once per training step (skipped steps included, so lr follows the step), following
    the run's RunClock."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, clock, cfg))


def advance(scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
    """Step the schedule; quiet about a skipped (non-finite) first optimizer step, which is intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        scheduler.step()
