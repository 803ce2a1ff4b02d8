"""Resumable stages: long jobs (the demo, the paper benchmark) as named steps that each leave a marker.

A stage that finished writes `OUT/stages/<name>.json` (its result, wall time and the run's tag, e.g.
the preset); a re-run with the same output directory and tag reuses the result instead of running it
again, so an interrupted job loses at most the stage in progress (training stages also resume from
their own checkpoints).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from .errors import NextscaleError
from .io import atomic_write_json, read_json


class StageRunner:
    """Runs named stages in `out`; `results[name]` holds each finished stage's JSON-able dict."""

    def __init__(self, out: str | Path, tag: str, log: Callable[[str], None] = print):
        self.out = Path(out)
        self.tag = tag
        self.log = log
        self.results: dict[str, dict[str, Any]] = {}

    def stage_file(self, name: str) -> Path:
        return self.out / "stages" / f"{name}.json"

    def done(self, name: str) -> bool:
        """Whether `name` finished with this tag (its result is then reused)."""
        marker = self.stage_file(name)
        return marker.is_file() and read_json(marker, NextscaleError).get("preset") == self.tag

    def run_stage(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        marker = self.stage_file(name)
        if self.done(name):
            saved = read_json(marker, NextscaleError)
            self.log(f"[{name}] already done ({saved['seconds']:.0f} s), reusing {marker.parent.parent / name}")
            self.results[name] = saved["result"]
            return saved["result"]
        self.log(f"[{name}] running …")
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        atomic_write_json(marker, {"preset": self.tag, "seconds": seconds, "result": result})
        self.results[name] = result
        self.log(f"[{name}] done in {seconds:.0f} s")
        return result

    def stage_seconds(self) -> dict[str, float]:
        return {p.stem: read_json(p, NextscaleError)["seconds"] for p in sorted((self.out / "stages").glob("*.json"))}
