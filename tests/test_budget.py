"""Step-time probes of the wall-clock training budgets (`train.budget`)."""
from __future__ import annotations

from nextscale.train import budget


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_probe_counts_making_the_batch_as_the_training_loop_does(monkeypatch):
    """Steps cost 1.0, making a batch 0.5 (a clock advanced by hand): the probe reads 1.5 per step, and the
    warm-up steps are not counted."""
    clock = FakeClock()
    monkeypatch.setattr(budget.time, "perf_counter", clock)
    made, stepped = [], []

    class Task:
        def train_step(self, batch, step):
            stepped.append((batch, step))
            clock.now += 1.0 if step >= budget.WARMUP_STEPS else 100.0     # warm-up: slow, not counted

    def make_batch(j):
        made.append(j)
        clock.now += 0.5
        return f"batch{j}"

    assert budget._time_steps(Task(), make_batch, probe_steps=4) == 1.5
    assert made == list(range(budget.WARMUP_STEPS + 4))
    assert stepped[-1] == (f"batch{budget.WARMUP_STEPS + 3}", budget.WARMUP_STEPS + 3)


def test_probe_batches_wrap_around_the_dataset():
    make = budget._batch_maker(list(range(5)), list, batch_size=3)
    assert make(0) == [0, 1, 2] and make(1) == [3, 4, 0] and make(4) == [2, 3, 4]
