"""Step counts for a wall-clock budget: "train each contender for 4 minutes" done fairly.

A few timed steps of the real training step fix how many steps fit in the budget, so the LR
schedule (warmup + decay over `train.steps`) still ends on time; stopping a run early by the
clock would instead leave it at a high learning rate.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any


def sat_seconds_per_step(config: Any, probe_steps: int = 4) -> float:
    """Mean wall time of `probe_steps` SAT training steps after one warm-up step (same batch size)."""
    from ..data import build_dataset, collate_batch
    from .distributed import init_distributed
    from .tokenizer import SATTask, load_sat_train_config

    cfg = load_sat_train_config(config)
    cfg.train.eval_every = 0
    data = build_dataset(cfg.data, "train")
    b = cfg.train.batch_size
    batches = [collate_batch([data[(j * b + i) % len(data)] for i in range(b)]) for j in range(probe_steps + 1)]
    with tempfile.TemporaryDirectory() as tmp:
        task = SATTask(cfg, init_distributed(cfg.train.device), Path(tmp))
        task.train_step(batches[0], 0)
        start = time.perf_counter()
        for j, batch in enumerate(batches[1:]):
            task.train_step(batch, j + 1)
    return (time.perf_counter() - start) / probe_steps


def steps_for_budget(seconds: float, seconds_per_step: float, minimum: int = 10) -> int:
    """How many steps of `seconds_per_step` fit in `seconds` (at least `minimum`)."""
    return max(minimum, int(seconds / seconds_per_step))
