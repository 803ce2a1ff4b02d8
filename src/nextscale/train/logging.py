"""Run logging: metrics.jsonl (always), TensorBoard scalars (when installed), loss-curve PNG.

Only the main rank constructs a real logger; other ranks get a disabled one, so call sites
never branch on the rank.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import DataError
from ..io import iter_jsonl

METRICS_NAME = "metrics.jsonl"


class RunLogger:
    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True,
                 curve_keys: Sequence[str] = ("loss",)):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.curve_keys = tuple(curve_keys)
        self.path = self.run_dir / METRICS_NAME
        self._tb = None
        if enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
                except ImportError:
                    self._tb = None

    def truncate_after(self, step: int) -> None:
        """On resume, drop rows logged after the checkpoint so the curve has no doubled segment."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [row for _, row in iter_jsonl(self.path, DataError, skip_torn=True)    # skips a line torn by a kill
                if isinstance(row.get("step"), int) and row["step"] <= step]
        self.path.write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(key, value, step)

    def plot(self) -> None:
        """Refresh loss_curve.png (never fails the run: a plot is a convenience)."""
        if not self.enabled or not self.path.is_file():
            return
        try:
            from ..plots import plot_loss_curve

            plot_loss_curve(self.path, self.run_dir / "loss_curve.png", keys=self.curve_keys)
        except Exception:  # noqa: BLE001 - e.g. no finite rows yet
            pass

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "numel", lambda: 0)() == 1:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)   # JSON has no NaN/inf
    return value
