"""Step-time probes of the wall-clock training budgets (`train.budget`)."""
from __future__ import annotations

from nextscale.train import budget


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_probe_counts_making_the_batch_and_takes_the_median_block(monkeypatch):
    """Making a batch costs 0.5 and a step 1.0 (a clock advanced by hand), except one step of 9.0 in the
    first timed block (a hiccup of a shared VM): the probe reads 1.5 per step, the median of the blocks'
    means, where a plain mean would read 1.5 + 8 / 12; the warm-up steps are not counted."""
    clock = FakeClock()
    monkeypatch.setattr(budget.time, "perf_counter", clock)
    made, stepped = [], []
    hiccup = budget.WARMUP_STEPS + 1

    class Task:
        def train_step(self, batch, step):
            stepped.append((batch, step))
            clock.now += 100.0 if step < budget.WARMUP_STEPS else 9.0 if step == hiccup else 1.0

    def make_batch(j):
        made.append(j)
        clock.now += 0.5
        return f"batch{j}"

    assert budget.PROBE_BLOCKS == 3
    assert budget._time_steps(Task(), make_batch, probe_steps=12) == 1.5
    assert made == list(range(budget.WARMUP_STEPS + 12))
    assert stepped[-1] == (f"batch{budget.WARMUP_STEPS + 11}", budget.WARMUP_STEPS + 11)


def test_probe_batches_wrap_around_the_dataset():
    make = budget._batch_maker(list(range(5)), list, batch_size=3)
    assert make(0) == [0, 1, 2] and make(1) == [3, 4, 0] and make(4) == [2, 3, 4]
