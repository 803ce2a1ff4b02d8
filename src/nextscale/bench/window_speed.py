"""Generation speed per second of audio at 1 s and at 10 s: next-scale vs next-token, both window by window.

The 35x claim is for one window (1 s). Long audio is made window after window, each continuing the
joined latent before it (`ar.windows.generate_windows`), and the next-token baselines get exactly the
same treatment: the same context tokens in front of their sequence (the sliding context), the same
windows, the same overlap, one decode of the joined codes. So the per-second cost of both can be
compared at 10 s as at 1 s, and each model's 10 s cost against its own 1 s cost.

Models are `bench.generation`'s contenders with random weights (the timing does not depend on what
the weights say), given `context_tokens`; each clip (batch 1 by default) is timed end to end (the AR
windows, the context between them, the SAT decoder) and without the decoder (`decode: false` rows: the
transformer and sampler, where the step counts differ), the fastest of `repeats` interleaved turns of
every (model, length, decode) so that load on a shared machine falls on all of them alike.

Report (`run_window_speed`): machine, versions, settings, rows [{model, decode, steps_per_window, seconds,
overlap_frames, windows, steps, batch, parameters, best_s, s_per_audio_s, vs_shortest (over the same
model's cost at the shortest length, same decode)}], and ratios {"<seconds> s" | "<seconds> s, AR only":
{baseline: its s_per_audio_s over next-scale's}}.
"""
from __future__ import annotations

import dataclasses
import datetime
import os
from typing import Any, Callable

import torch

from ..ar.windows import default_overlap, generate_windows
from ..errors import ConfigError
from .generation import COND_DIM, MODELS, BenchSettings, Contender, build_contenders
from .measure import machine_info, versions


@dataclasses.dataclass
class WindowSpeedSettings:
    depth: str = "2"                          # bench.generation's depths: "tiny" or the paper family's d
    seconds: tuple[float, ...] = (1.0, 10.0)
    overlap: int | None = None                # latent frames; None: ar.windows.default_overlap (12 of 75)
    context_tokens: int = 16                  # benchmarks/long_generation.py's context AAR
    models: tuple[str, ...] = MODELS
    batch: int = 1
    repeats: int = 3
    threads: int = 1                          # torch intra-op threads (set for the run, then restored)
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.seconds or any(not s > 0 for s in self.seconds):
            raise ConfigError(f"window_speed.seconds: expected positive lengths, got {self.seconds}")
        if self.batch < 1 or self.repeats < 1 or self.threads < 0 or self.context_tokens < 1:
            raise ConfigError("window_speed: batch, repeats and context_tokens must be >= 1, threads >= 0")
        unknown = [m for m in self.models if m not in MODELS]
        if unknown or not self.models:
            raise ConfigError(f"window_speed.models: unknown {unknown}; choose from {', '.join(MODELS)}")

    def bench_settings(self) -> BenchSettings:
        """The contenders' settings: sampling (CFG on, top-k 200, top-p 0.95), 1 s windows, eager mode."""
        return BenchSettings(depths=[self.depth], batch_sizes=[self.batch], device=self.device,
                             models=list(self.models), seed=self.seed)


def window_clip(c: Contender, seconds: float, overlap: int, batch: int, device: torch.device,
                seed: int, decode: bool = True) -> Callable[[], Any]:
    """A call that makes `batch` clips of `seconds` with `c` window by window and decodes them once
    (decode=False: returns the joined codes)."""
    sat = c.sat
    length = int(round(seconds * sat.sample_rate))
    windows = sat.num_windows(length, overlap)
    g = torch.Generator(device=device).manual_seed(seed)
    cond = torch.randn(batch, COND_DIM, generator=g, device=device)

    @torch.inference_mode()
    def clip() -> torch.Tensor:
        codes = generate_windows(c.fast.model, sat.quantizer, cond, windows, overlap=overlap,
                                 step=lambda cd, ctx: c.fast(cd, g, context=ctx))
        return sat.decode(codes, length, overlap) if decode else codes

    return clip


def run_window_speed(settings: WindowSpeedSettings) -> dict[str, Any]:
    """Time every (model, length) in interleaved turns; returns the JSON-ready report."""
    from ..eval.long_form import interleaved_times
    from ..runtime import resolve_device

    device = resolve_device(settings.device)
    threads_before = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        contenders = build_contenders(settings.depth, settings.bench_settings(), device, settings.context_tokens)
        overlap = default_overlap(contenders[0].sat.num_frames) if settings.overlap is None else settings.overlap
        runs = {(c.name, s, d): window_clip(c, s, overlap, settings.batch, device, settings.seed, d)
                for c in contenders for s in settings.seconds for d in (True, False)}
        for run in runs.values():                                       # warm-up, not timed
            run()
        load_before = os.getloadavg()[0]                                # wall clock: say how busy the machine was
        _, best = interleaved_times(runs, settings.repeats)
        load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        rows = [window_row(c, s, d, overlap, settings.batch, best[(c.name, s, d)]) for c in contenders
                for s in settings.seconds for d in (True, False)]
        machine = machine_info(device) | {"torch_threads": torch.get_num_threads(), "load_average_1min_before_after": load}
    finally:
        torch.set_num_threads(threads_before)
    return {"benchmark": "window_speed",
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine, "versions": versions(),
            "settings": dataclasses.asdict(settings) | {"overlap": overlap},
            "rows": add_one_second_ratio(rows), "ratios": baseline_ratios(rows)}


def window_row(c: Contender, seconds: float, decode: bool, overlap: int, batch: int,
               seconds_taken: float) -> dict[str, Any]:
    """One (model, length, decode) row: windows and AR steps made, the fastest time, its cost per audio second."""
    sat = c.sat
    length = int(round(seconds * sat.sample_rate))
    windows = sat.num_windows(length, overlap)
    return {"model": c.name, "decode": decode, "steps_per_window": c.fast.steps, "seconds": seconds,
            "overlap_frames": overlap, "windows": windows, "steps": windows * c.fast.steps, "batch": batch,
            "parameters": c.parameters, "best_s": seconds_taken,
            "s_per_audio_s": seconds_taken / (batch * length / sat.sample_rate)}


def add_one_second_ratio(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`vs_shortest`: each row's cost per audio second over the same model's (same decode) at the shortest
    length."""
    shortest: dict[tuple[str, bool], float] = {}
    for r in sorted(rows, key=lambda r: r["seconds"]):
        shortest.setdefault((r["model"], r["decode"]), r["s_per_audio_s"])
    return [r | {"vs_shortest": r["s_per_audio_s"] / shortest[(r["model"], r["decode"])]} for r in rows]


def baseline_ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """{"<seconds> s" (", AR only"): {baseline: its cost per audio second over next-scale's}} at every length."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        ref = next((x for x in rows if x["model"] == "next_scale" and x["seconds"] == r["seconds"]
                    and x["decode"] == r["decode"]), None)
        if ref is not None and r["model"] != "next_scale":
            key = f"{r['seconds']:g} s" + ("" if r["decode"] else ", AR only")
            out.setdefault(key, {})[r["model"]] = r["s_per_audio_s"] / ref["s_per_audio_s"]
    return out
