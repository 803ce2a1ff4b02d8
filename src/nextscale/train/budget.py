"""Step counts for a wall-clock budget: "train each contender for 4 minutes" done fairly.

A few timed steps of the real training step fix how many steps fit in the budget, so the LR
schedule (warmup + decay over `train.steps`) still ends on time; stopping a run early by the
clock would instead leave it at a high learning rate.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable


WARMUP_STEPS = 5   # the first steps allocate, initialise codebooks and warm caches: not timed
PROBE_BLOCKS = 3   # timed blocks of steps; their median is the probe's figure


def _time_steps(task: Any, make_batch: Callable[[int], Any], probe_steps: int) -> float:
    """Wall time per step of task.train_step after the first WARMUP_STEPS: the median over PROBE_BLOCKS
    consecutive blocks of `probe_steps` / PROBE_BLOCKS steps of each block's mean. Each batch is made
    inside the timed span, as the training loop makes it (synthetic clips are rendered on the fly: timing
    the steps alone read 0.311 s for a 0.330 s step and overran the demo's SAT budget by 5 %).

    Means within a block, not a median of steps: a run lasts the sum of its steps, and the demo SAT's steps
    vary with the clips rendered (0.28-0.38 s); a median of 8 steps read 0.275 s for a 0.32 s mean and overran
    480 s by 15 %. The median across blocks: one hiccup of a shared VM during a single 8-step window read
    0.310 s for a 0.24 s step and left the quick demo's SAT at its floor.
    """
    for j in range(WARMUP_STEPS):
        task.train_step(make_batch(j), j)
    blocks, size = [], max(1, probe_steps // PROBE_BLOCKS)
    for b in range(PROBE_BLOCKS):
        start = time.perf_counter()
        for j in range(WARMUP_STEPS + b * size, WARMUP_STEPS + (b + 1) * size):
            task.train_step(make_batch(j), j)
        blocks.append((time.perf_counter() - start) / size)
    return statistics.median(blocks)


def _batch_maker(data: Any, collate: Callable, batch_size: int) -> Callable[[int], Any]:
    """Batch j of the probe: items j * batch_size onwards (wrapping), loaded and collated when asked for."""
    return lambda j: collate([data[(j * batch_size + i) % len(data)] for i in range(batch_size)])


def sat_seconds_per_step(config: Any, probe_steps: int = 12) -> float:
    """Wall time per SAT training step (`_time_steps`: `probe_steps` timed steps after the warm-up ones)."""
    from ..data import build_dataset, collate_batch
    from .distributed import init_distributed
    from .tokenizer import SATTask, load_sat_train_config

    cfg = load_sat_train_config(config)
    cfg.train.eval_every = 0
    make_batch = _batch_maker(build_dataset(cfg.data, "train"), collate_batch, cfg.train.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        return _time_steps(SATTask(cfg, init_distributed(cfg.train.device), Path(tmp)), make_batch, probe_steps)


def ar_seconds_per_step(config: Any, probe_steps: int = 12) -> float:
    """Wall time per AR training step on the config's token cache (`_time_steps`, as for the SAT)."""
    from .ar import ARTask, _load_tokenizer, load_ar_train_config
    from .distributed import init_distributed
    from .token_cache import TokenCacheDataset, collate_tokens

    cfg = load_ar_train_config(config)
    cfg.train.eval_every = 0
    dist = init_distributed(cfg.train.device)
    data = TokenCacheDataset(cfg.data.tokens)
    make_batch = _batch_maker(data, collate_tokens, cfg.train.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        return _time_steps(ARTask(cfg, _load_tokenizer(cfg, data, dist.device), data, None, dist, Path(tmp)),
                           make_batch, probe_steps)


def steps_for_budget(seconds: float, seconds_per_step: float, minimum: int = 10, multiple: int = 1) -> int:
    """How many steps of `seconds_per_step` fit in `seconds`, rounded down to `multiple` (at least `minimum`).

    Rounding makes the count the same from one run to the next on one machine, whose step time
    wobbles by a few per cent.
    """
    steps = int(seconds / seconds_per_step) // multiple * multiple
    return max(minimum, steps)
