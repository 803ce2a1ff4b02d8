"""Runs with `train.time_budget_s`: the loop stops when the budget is spent (never before train.steps steps),
the LR decay follows the clock, checkpoints keep the clock, and every task must expose it. A clock
advanced by hand (one second per step) stands in for the wall clock."""
from __future__ import annotations

import math

import pytest
import torch

from nextscale.errors import ConfigError
from nextscale.train.checkpoints import CheckpointManager
from nextscale.train.config import OptimConfig, TrainConfig
from nextscale.train.distributed import DistInfo
from nextscale.train.loop import Trainer
from nextscale.train.order import StepBatchSampler
from nextscale.train.schedule import RunClock, lr_factor
from train_toy import ToyData, ToyModel, ToyTask, collate

COSINE = OptimConfig(lr=0.5, warmup_steps=0, schedule="cosine", betas=[0.9, 0.99])


class Interrupted(Exception):
    pass


def _run(run_dir, steps, budget_s, resume=False, stop_at=None, seconds_per_step=1.0):
    """Train the toy task with a hand-advanced clock; returns (result, task, LRs the steps ran at, clock time)."""
    cfg = TrainConfig(steps=steps, time_budget_s=budget_s, batch_size=8, log_every=1, ckpt_every=1, eval_every=0,
                      keep_last=50, device="cpu", progress=False, tensorboard=False)
    torch.manual_seed(0)
    task = ToyTask(ToyModel(), cfg, optim=COSINE)
    clock, lrs = [100.0], []
    original = task.train_step

    def timed_step(batch, step):
        if step == stop_at:
            raise Interrupted
        lrs.append(task.lr())
        clock[0] += seconds_per_step
        return original(batch, step)

    task.train_step = timed_step
    trainer = Trainer(task, ToyData(), collate, cfg, run_dir, DistInfo(), now=lambda: clock[0])
    return trainer.fit(resume=resume), task, lrs


def test_budget_ends_the_run_and_the_decay_when_it_is_spent(tmp_path):
    result, task, lrs = _run(tmp_path, steps=3, budget_s=10.0)
    assert result.step == 10 and task.clock.seconds == pytest.approx(10.0)
    # step k runs at the LR set inside step k-1, when the k-1 steps before it had taken k-1 seconds
    assert lrs == pytest.approx([0.5 * 0.5 * (1 + math.cos(math.pi * max(0, k - 1) / 10)) for k in range(10)])


def test_the_step_floor_holds_on_a_slow_machine(tmp_path):
    """2 s of budget at 1 s per step, at least 6 steps: 6 steps, the decay over the steps instead."""
    result, task, lrs = _run(tmp_path, steps=6, budget_s=2.0)
    assert result.step == 6 and task.clock.seconds == pytest.approx(6.0)
    assert lrs == pytest.approx([0.5 * 0.5 * (1 + math.cos(math.pi * min(max(0, k - 1) / 2, k / 6))) for k in range(6)])


def test_a_resumed_run_continues_the_clock(tmp_path):
    whole, _, lrs_whole = _run(tmp_path / "whole", steps=3, budget_s=10.0)
    with pytest.raises(Interrupted):
        _run(tmp_path / "cut", steps=3, budget_s=10.0, stop_at=6)
    ck = CheckpointManager.load(CheckpointManager(tmp_path / "cut").latest())
    assert ck["trainer_state"]["step"] == 6 and ck["trainer_state"]["train_seconds"] == pytest.approx(6.0)
    resumed, task, lrs_rest = _run(tmp_path / "cut", steps=3, budget_s=10.0, resume=True)
    assert resumed.step == whole.step == 10 and task.clock.seconds == pytest.approx(10.0)
    assert lrs_rest == pytest.approx(lrs_whole[6:])
    again, _, lrs_none = _run(tmp_path / "cut", steps=3, budget_s=10.0, resume=True)     # finished: trains no more
    assert again.step == 10 and lrs_none == []


def test_timed_schedule_matches_hand_computation():
    cfg = OptimConfig(lr=1.0, warmup_steps=4, schedule="cosine", min_lr_ratio=0.1)
    clock = RunClock(steps=100, budget_s=60.0)
    clock.seconds = 30.0
    assert lr_factor(1, clock, cfg) == pytest.approx(0.5)                    # warmup counts steps
    assert lr_factor(80, clock, cfg) == pytest.approx(0.1 + 0.9 * 0.5)       # half the budget spent
    assert lr_factor(20, clock, cfg) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.2)))
    clock.seconds = 90.0
    assert lr_factor(100, clock, cfg) == pytest.approx(0.1) and clock.done(100) and not clock.done(99)
    untimed = RunClock(steps=104)
    assert not untimed.timed and untimed.progress(52) == 0.5
    assert lr_factor(54, 104, cfg) == pytest.approx(0.1 + 0.9 * 0.5)                # step runs unchanged


def test_unbounded_sampler_keeps_the_step_order():
    bounded = StepBatchSampler(64, 8, seed=3, start_step=2, total_steps=30)
    unbounded = StepBatchSampler(64, 8, seed=3, start_step=2, total_steps=None)
    assert [b for b, _ in zip(unbounded, range(28))] == list(bounded)
    with pytest.raises(TypeError, match="stops by the clock"):
        len(unbounded)


def test_a_task_without_the_runs_clock_is_refused(tmp_path):
    cfg = TrainConfig(steps=4, time_budget_s=5.0, batch_size=8, device="cpu", progress=False, tensorboard=False)
    task = ToyTask(ToyModel(), TrainConfig(steps=4, batch_size=8))       # its schedule ignores the budget
    with pytest.raises(ConfigError, match="time_budget_s"):
        Trainer(task, ToyData(), collate, cfg, tmp_path, DistInfo())
    del task.clock
    with pytest.raises(ConfigError, match="clock"):
        Trainer(task, ToyData(), collate, TrainConfig(steps=4, batch_size=8), tmp_path, DistInfo())


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan")])
def test_bad_budgets_are_named(bad):
    with pytest.raises(ConfigError, match="train.time_budget_s"):
        TrainConfig(time_budget_s=bad)
