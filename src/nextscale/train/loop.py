"""The generic training loop: data order, skipping non-finite steps, logging, eval, checkpoints, resume.

A model family plugs in as a `TrainTask` (SAT and AR training each define one). The task does
the forward/backward/optimizer work of one step through `optimizer_step`, which refuses to
apply non-finite gradients; the loop owns everything that must be the same for every model:
exact resume, the rank-0-only writes, the bad-step policy and the progress display.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import torch
from tqdm.auto import tqdm

from ..checkpoint import load_state_checked
from ..config import to_dict
from ..errors import ConfigError, NextscaleError
from .checkpoints import CheckpointManager
from .config import TrainConfig
from .distributed import DistInfo, all_ranks_true, barrier, gather_objects, main_rank_value, mean_over_ranks
from .logging import RunLogger
from .order import StepBatchSampler
from .rng import capture_rng, restore_rng
from .schedule import RunClock


class TrainingDiverged(NextscaleError):
    """Too many non-finite steps in a row; the last good state was checkpointed."""


@dataclasses.dataclass
class StepResult:
    ok: bool                                   # False: the update was skipped (non-finite loss/grads)
    metrics: dict[str, torch.Tensor | float]   # detached scalars, e.g. {"loss": ..., "mel": ...}
    items: int = 0                             # samples or tokens this rank processed (throughput)


class TrainTask(Protocol):
    model: torch.nn.Module          # the Pretrained model (unwrapped) that checkpoints hold
    clock: RunClock                 # the run's progress, which its LR schedules follow (RunClock of cfg.train)
    throughput_unit: str            # "samples" or "tokens"
    best_metric: str | None         # an eval metric, lower is better; None: no best/ copy

    def train_step(self, batch: Any, step: int) -> StepResult: ...
    def training_state(self) -> dict[str, Any]: ...
    def load_training_state(self, state: dict[str, Any]) -> None: ...
    def evaluate(self, step: int) -> dict[str, float]: ...
    def lr(self) -> float: ...


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, parameters: Iterable[torch.nn.Parameter],
                   grad_clip: float, device: torch.device) -> tuple[bool, torch.Tensor]:
    """backward, clip, and step only if loss and gradient norm are finite on every rank.

    Returns (applied, grad_norm). Under DDP the gradients are already averaged, and the
    finiteness vote is all-reduced, so every rank skips the same steps.
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for p in parameters if p.grad is not None]
    if grad_clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    elif params:
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
    else:
        norm = torch.zeros((), device=device)
    ok = all_ranks_true(bool(torch.isfinite(loss.detach()).item() and torch.isfinite(norm).item()), device)
    if ok:
        optimizer.step()
    else:
        optimizer.zero_grad(set_to_none=True)
    return ok, norm.detach()


def _buffer_snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Persistent buffers (e.g. EMA codebooks) updated in forward; restored when a step is skipped."""
    names = set(model.state_dict().keys())
    return {n: b.detach().clone() for n, b in model.named_buffers() if n in names}


def _restore_buffers(model: torch.nn.Module, snapshot: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name in snapshot:
                buf.copy_(snapshot[name])


@dataclasses.dataclass
class FitResult:
    step: int
    checkpoint: Path | None
    metrics: dict[str, float]
    bad_steps: int
    train_seconds: float = 0.0     # training time on the run's clock (evaluation and checkpoints not counted)


class Trainer:
    """Runs a TrainTask for cfg.steps steps over `dataset` (with cfg.time_budget_s: for that many seconds of
    training, at least cfg.steps steps), resuming from run_dir when asked. `now` is the budget's clock."""

    def __init__(self, task: TrainTask, dataset: Any, collate: Callable, cfg: TrainConfig, run_dir: str | Path,
                 dist: DistInfo, config_dict: dict | None = None, desc: str = "train",
                 now: Callable[[], float] = time.perf_counter):
        clock = getattr(task, "clock", None)
        if clock is None or (clock.steps, clock.budget_s) != (cfg.steps, cfg.time_budget_s):
            raise ConfigError(f"{type(task).__name__}: its LR schedule must follow RunClock(train.steps, "
                              f"train.time_budget_s) = ({cfg.steps}, {cfg.time_budget_s}) as a `clock` attribute")
        self.clock, self.now = clock, now
        self.task, self.dataset, self.collate, self.cfg = task, dataset, collate, cfg
        self.run_dir, self.dist, self.desc = Path(run_dir), dist, desc
        self.config_dict = config_dict or {"train": to_dict(cfg)}
        self.ckpts = CheckpointManager(self.run_dir, cfg.keep_last)
        self.logger = RunLogger(self.run_dir, dist.is_main, cfg.tensorboard,
                                curve_keys=getattr(task, "curve_keys", ("loss",)))
        self.step, self.best, self.bad_total, self.bad_streak = 0, math.inf, 0, 0

    # ---- resume ------------------------------------------------------------------------------
    def resume(self) -> Path | None:
        """Load the newest complete checkpoint of this run (None if there is none yet)."""
        path = self.ckpts.latest()
        if path is None:
            return None
        ck = self.ckpts.load(path, self.task.model.kind)
        load_state_checked(self.task.model, ck["model_state"], str(path))
        self.task.load_training_state(ck["training_state"])
        rngs = ck["rng"]
        restore_rng(rngs[self.dist.rank] if len(rngs) == self.dist.world_size else rngs[0])
        state = ck["trainer_state"]
        self.step = int(state["step"])
        self.best = float(state.get("best", math.inf))
        self.bad_total = int(state.get("bad_steps_total", 0))
        self.clock.seconds = float(state.get("train_seconds", 0.0))
        self.logger.truncate_after(self.step)
        return path

    # ---- checkpoint --------------------------------------------------------------------------
    def save(self, best: bool = False, reason: str = "interval") -> Path | None:
        rngs = gather_objects(capture_rng())   # collective: every rank calls save together
        path = None
        if self.dist.is_main:
            state = {"best": self.best, "best_metric": self.task.best_metric, "bad_steps_total": self.bad_total,
                     "train_seconds": self.clock.seconds, "reason": reason, "world_size": self.dist.world_size,
                     "config": self.config_dict}
            path = self.ckpts.save(self.step, self.task.model, self.task.training_state(), rngs, state, best=best)
            self.logger.plot()
        barrier()
        return path

    # ---- evaluation --------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        """Main rank only, with the training RNG streams untouched (so resume stays exact)."""
        metrics: dict[str, float] = {}
        if self.dist.is_main:
            devices = [self.dist.device] if self.dist.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                metrics = self.task.evaluate(self.step)
            self.logger.log(self.step, metrics)
        barrier()
        return metrics

    # ---- the loop ----------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> FitResult:
        cfg, dist = self.cfg, self.dist
        resumed = self.resume() if resume else None
        if resume and dist.is_main:
            tqdm.write(f"resuming from {resumed}" if resumed else "no checkpoint to resume from; starting fresh")
        clock = self.clock
        sampler = StepBatchSampler(len(self.dataset), cfg.batch_size, cfg.seed, self.step,
                                   None if clock.timed else cfg.steps, dist.rank, dist.world_size)
        loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=sampler, collate_fn=self.collate,
                                             num_workers=cfg.num_workers,
                                             generator=torch.Generator().manual_seed(cfg.seed),
                                             pin_memory=dist.device.type == "cuda")
        show = dist.is_main and cfg.progress
        if clock.timed:     # the bar counts the budget's seconds: its ETA is the run's
            bar = tqdm(total=max(1, math.ceil(cfg.time_budget_s)), initial=int(clock.seconds), desc=self.desc, unit="s",
                       dynamic_ncols=True, disable=not show)
        else:
            bar = tqdm(total=cfg.steps, initial=self.step, desc=self.desc, unit="step", dynamic_ncols=True,
                       disable=not show)
        window: dict[str, float] = {}
        counts: dict[str, int] = {}
        window_steps, window_items, window_start = 0, 0, time.perf_counter()
        last_path, last_metrics, postfix = resumed, {}, {}
        mark = self.now()
        try:
            for batch in loader:        # a step's seconds run from the end of the previous one: its batch counts
                if clock.done(self.step):   # a finished run resumed: nothing left to train
                    break
                snapshot = _buffer_snapshot(self.task.model)
                result = self.task.train_step(batch, self.step)
                self.step += 1
                now = self.now()
                spent, mark = now - mark, now
                clock.seconds += spent
                if clock.timed:
                    clock.seconds = main_rank_value(clock.seconds, dist.device)
                    bar.update(int(clock.seconds) - bar.n)      # whole seconds
                    postfix["step"] = self.step
                    bar.set_postfix(postfix, refresh=False)
                else:
                    bar.update(1)
                if result.ok:
                    self.bad_streak = 0
                    for k, v in result.metrics.items():   # a term may be absent on some steps (e.g. d_loss)
                        window[k] = window.get(k, 0.0) + float(v)
                        counts[k] = counts.get(k, 0) + 1
                    window_steps += 1
                else:
                    _restore_buffers(self.task.model, snapshot)
                    self.bad_streak += 1
                    self.bad_total += 1
                    if self.bad_streak >= cfg.max_bad_steps:
                        path = self.save(reason="non-finite")
                        raise TrainingDiverged(
                            f"loss or gradients were non-finite for {self.bad_streak} steps in a row (steps "
                            f"{self.step - self.bad_streak + 1}..{self.step}); stopped. The last good weights and "
                            f"optimizer state are in {path or self.ckpts.root}. Lower optim.lr, check the data, "
                            f"or raise train.max_bad_steps; --resume continues after the bad batches")
                window_items += result.items
                done = clock.done(self.step)
                if (cfg.log_every and self.step % cfg.log_every == 0) or done:
                    elapsed = max(time.perf_counter() - window_start, 1e-9)
                    row = {k: v / counts[k] for k, v in window.items()}
                    row = mean_over_ranks(row, dist.device)
                    row.update({"lr": self.task.lr(), "steps_per_s": window_steps / elapsed,
                                f"{self.task.throughput_unit}_per_s": window_items * dist.world_size / elapsed,
                                "bad_steps": self.bad_total})
                    self.logger.log(self.step, row)
                    last_metrics = row
                    if "loss" in row:
                        postfix |= {"loss": f"{row['loss']:.4f}", "bad": self.bad_total}
                        bar.set_postfix(postfix)
                    window, counts, window_steps, window_items = {}, {}, 0, 0
                    window_start = time.perf_counter()
                is_best = False
                if cfg.eval_every and (self.step % cfg.eval_every == 0 or done):
                    metrics = self.evaluate()
                    key = self.task.best_metric
                    value = gather_objects(metrics.get(key) if key else None)[0]
                    if value is not None and math.isfinite(value) and value < self.best:
                        self.best, is_best = float(value), True
                if (cfg.ckpt_every and self.step % cfg.ckpt_every == 0) or done or is_best:
                    last_path = self.save(best=is_best)
                if done:
                    break
                mark = self.now()           # evaluation and checkpoints are not training time
        finally:
            bar.close()
            self.logger.close()
        return FitResult(self.step, last_path, last_metrics, self.bad_total, clock.seconds)
