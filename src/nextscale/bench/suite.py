"""The speed suite: every speed figure of the project in one resumable run (`benchmarks/suite.py`).

Sections, one row per setting:
- generation: 1 s of audio by next-scale AAR and the next-token baselines (455 steps in scale order,
  750 in RVQ order), per size, batch and mode (eager, compiled, CUDA graph, both), transformer and
  sampler alone and end to end with the SAT decoder (`bench.generation`); floors: the weights read
  once per step at the memory bandwidth, and the counted FLOPs at the dense peak, where known; a fast
  mode's row also times eager in turn with it (`speedup_over_eager_paired`), the ratio the table shows;
- codec: SAT encode and decode time per second of audio for each codec (`bench.codec`);
- train_ar: AR training steps/s, tokens/s, loader time, peak memory, MFU per fast path (`bench.training`);
- train_sat: SAT training clips/s per codec.

Rows are keyed ("generation/tiny/next_scale/b1/eager/end_to_end"). The JSON is rewritten after every
row and a re-run skips the rows it holds (a row that failed is tried again), so a run cut short, such
as a GPU lease ending, continues where it stopped. A budget fixes sizes, batches, modes and repeats.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from ..errors import ConfigError
from .generation import MODELS

MODES = {"eager": (False, False), "compiled": (True, False), "cuda_graph": (False, True),
         "compiled_cuda_graph": (True, True)}          # mode -> (compile, cuda_graph)
SCOPES = ("transformer", "end_to_end")


@dataclasses.dataclass(frozen=True)
class Budget:
    """What one budget measures; `modes` pairs each generation mode with its batch sizes."""

    depths: tuple[str, ...]
    modes: tuple[tuple[str, tuple[int, ...]], ...]
    precision: str                   # generation weights and training autocast: "fp32" or "bf16"
    warmup: int                      # generation timing (bench.measure.time_repeats)
    repeats: int
    min_repeats: int
    budget_s: float
    codecs: tuple[str, ...]          # packaged SAT configs, one per codec
    codec_batches: tuple[int, ...]
    codec_repeats: int
    train: tuple[tuple[str, int, bool, str], ...]      # AR training rows: (size, batch, compile, attention kernel)
    train_warmup: int
    train_steps: int
    sat_batch: int
    sat_warmup: int
    sat_steps: int
    sat_adversarial: bool            # False: without the discriminator, as the CPU recipes train (35x cheaper)
    device: str                      # the device the budget is made for


BUDGETS = {
    # every section once, eager, tiny sizes: seconds on a CPU (tests, and a check before a long run)
    "smoke": Budget(depths=("tiny",), modes=(("eager", (1,)),), precision="fp32", warmup=0, repeats=1,
                    min_repeats=1, budget_s=0.0, codecs=("sat-tiny", "sat-fourier-tiny"), codec_batches=(1,),
                    codec_repeats=1, train=(("tiny", 4, False, "sdpa"),), train_warmup=1,
                    train_steps=2, sat_batch=2, sat_warmup=1, sat_steps=1, sat_adversarial=False,
                    device="cpu"),
    # small sizes on a few CPU cores: tiny and the demo's AR width (depth 2, width 128); compiled at batch 1
    "cpu": Budget(depths=("tiny", "2"), modes=(("eager", (1, 8)), ("compiled", (1,))), precision="fp32", warmup=1,
                  repeats=5, min_repeats=3, budget_s=3.0, codecs=("sat-tiny", "sat-fourier-tiny"),
                  codec_batches=(1, 8), codec_repeats=5,
                  train=(("tiny", 16, False, "sdpa"), ("tiny", 16, True, "sdpa"), ("2", 16, False, "sdpa")),
                  train_warmup=3, train_steps=10, sat_batch=8,
                  sat_warmup=3, sat_steps=5, sat_adversarial=False, device="cpu"),
    # the paper's sizes on one GPU, bf16; CUDA graphs first, so a run cut short keeps the headline rows
    "gpu": Budget(depths=("16", "8"), modes=(("cuda_graph", (1, 8, 64)), ("compiled_cuda_graph", (1, 8, 64)),
                                             ("compiled", (1, 8, 64)), ("eager", (1, 8, 64))),
                  precision="bf16", warmup=2, repeats=10, min_repeats=3, budget_s=5.0,
                  codecs=("sat-paper", "sat-fourier"), codec_batches=(1, 64), codec_repeats=10,
                  train=(("16", 64, False, "sdpa"), ("16", 64, True, "sdpa"), ("16", 64, True, "flex")),
                  train_warmup=3, train_steps=10, sat_batch=16, sat_warmup=3, sat_steps=10, sat_adversarial=True,
                  device="cuda"),
}


@dataclasses.dataclass
class Row:
    """One setting to measure: its key, how to measure it (returns the row's figures), and the group of
    rows sharing built models, released after the last of them."""

    key: str
    measure: Callable[[], dict[str, Any]]
    group: Any = None


def check_request(device: str, budget: str) -> torch.device:
    """The device for a budget: known names, CUDA present when asked for, modes the device can run."""
    if budget not in BUDGETS:
        raise ConfigError(f"--budget: unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device: expected cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is visible to torch (a CPU-only torch, or no GPU); "
                          "run --device cpu --budget cpu")
    if device == "cpu" and any(MODES[m][1] for m, _ in BUDGETS[budget].modes):
        raise ConfigError(f"--budget {budget} times CUDA graphs, which need --device cuda; "
                          "on a CPU use --budget cpu or smoke")
    return torch.device(device)


def settings_of(device: torch.device, budget: str, threads: int) -> dict[str, Any]:
    """What must match for a re-run to continue a results file (as JSON reads it back: lists, not tuples)."""
    settings = {"device": device.type, "budget": budget, "threads": threads, **dataclasses.asdict(BUDGETS[budget])}
    return json.loads(json.dumps(settings))


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


# ---- the rows of each section --------------------------------------------------------------------
def generation_rows(b: Budget, device: torch.device, peak: float | None) -> Iterator[Row]:
    """Rows of every (size, mode, model, batch, scope); contenders are built once per (size, mode)."""
    from .generation import BenchSettings

    flops: dict[tuple[str, str], int] = {}          # (size, model) -> FLOPs of one clip, shared by the modes
    for depth in b.depths:
        for mode, batches in b.modes:
            compile, graph = MODES[mode]
            settings = BenchSettings(depths=[depth], batch_sizes=list(batches), device=device.type,
                                     precision=b.precision, compile=compile, cuda_graph=graph, warmup=b.warmup,
                                     repeats=b.repeats, min_repeats=b.min_repeats, budget_s=b.budget_s)
            group = GenerationGroup(settings, device, peak, flops)
            for model in MODELS:
                for batch in batches:
                    for scope in SCOPES:
                        key = f"generation/{depth}/{model}/b{batch}/{mode}/{scope}"
                        yield Row(key, lambda m=model, n=batch, s=scope, g=group: g.measure(m, n, s), group)


class GenerationGroup:
    """The contenders of one (size, mode), built on first use (a resumed run may need none of them)."""

    def __init__(self, settings: Any, device: torch.device, peak: float | None, flops: dict[tuple[str, str], int]):
        self.settings, self.device, self.peak, self.flops = settings, device, peak, flops
        self.contenders: dict[str, Any] | None = None
        self.first_call: dict[tuple[str, int], float] = {}

    def measure(self, model: str, batch: int, scope: str) -> dict[str, Any]:
        from .generation import COND_DIM, build_contenders, paired_over_eager, time_contender
        from .measure import count_flops, time_call

        s, depth = self.settings, self.settings.depths[0]
        if self.contenders is None:
            self.contenders = {c.name: c for c in build_contenders(depth, s, self.device)}
        c = self.contenders[model]
        dtype = next(c.fast.model.parameters()).dtype
        if (s.compile or s.cuda_graph) and (model, batch) not in self.first_call:   # compilation / capture
            cond = torch.randn(batch, COND_DIM, device=self.device, dtype=dtype)
            self.first_call[model, batch] = time_call(lambda: c.fast(cond, torch.Generator(self.device)), self.device)
        if self.peak is not None and (depth, model) not in self.flops:   # eagerly at batch 1; linear in the batch
            cond = torch.randn(1, COND_DIM, device=self.device, dtype=dtype)
            with torch.no_grad():
                self.flops[depth, model] = count_flops(lambda: c.fast.model.generate(
                    c.sat.quantizer, cond, cfg=s.cfg, top_k=s.top_k, top_p=s.top_p))
        row = time_contender(c, batch, s, self.device, decode=scope == "end_to_end")
        if s.compile or s.cuda_graph:       # the speed-up over eager, both timed in turn
            rounds = max(s.min_repeats, min(4 * s.repeats, int(s.budget_s / (2 * row["median_s"]))))
            row.update(paired_over_eager(c, batch, s, self.device, scope == "end_to_end", rounds))
        flops = self.flops[depth, model] * batch if (depth, model) in self.flops else None
        return dict(row, scope=scope, first_call_s=self.first_call.get((model, batch)), transformer_flops=flops,
                    flops_floor_s=None if flops is None else flops / self.peak, weight_floor_s=row.pop("floor_s"))

    def release(self) -> None:
        """Drop the models (and their compiled graphs, CUDA graphs and memory pools) before the next group."""
        self.contenders = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def codec_rows(b: Budget, device: torch.device) -> Iterator[Row]:
    from .codec import codec_times, random_codec

    for config in b.codecs:
        for batch in b.codec_batches:
            yield Row(f"codec/{config}/b{batch}", lambda c=config, n=batch: dict(
                config=c, **codec_times(random_codec(c, device), n, device, warmup=1, repeats=b.codec_repeats)))


def train_rows(b: Budget, device: torch.device, peak: float | None) -> Iterator[Row]:
    from .training import TrainSetting, ar_train_row, sat_train_row

    for size, batch, compile, kernel in b.train:
        path = "+".join([b.precision] + (["compiled"] if compile else []) + ([kernel] if kernel != "sdpa" else []))
        setting = TrainSetting(size, batch, b.precision, compile, kernel, b.train_warmup, b.train_steps)
        yield Row(f"train_ar/{size}/b{batch}/{path}", lambda s=setting: ar_train_row(s, device, peak))
    for config in b.codecs:
        yield Row(f"train_sat/{config}/b{b.sat_batch}/{b.precision}", lambda c=config: sat_train_row(
            c, b.sat_batch, device, b.precision, b.sat_warmup, b.sat_steps, b.sat_adversarial))


def all_rows(budget: str, device: torch.device, peak: float | None) -> list[Row]:
    b = BUDGETS[budget]
    return [*generation_rows(b, device, peak), *codec_rows(b, device), *train_rows(b, device, peak)]


# ---- the results file ----------------------------------------------------------------------------
def new_report(device: torch.device, budget: str, threads: int) -> dict[str, Any]:
    from .measure import known_peak_flops, machine_info, versions

    machine = machine_info(device)
    machine["torch_threads"] = torch.get_num_threads()
    machine["peak_flops"] = known_peak_flops(machine["gpu"] or "", BUDGETS[budget].precision)
    return dict(schema_version=1, kind="suite", created=_now(), updated=_now(), machine=machine,
                versions=versions(), settings=settings_of(device, budget, threads), rows={})


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def load_report(path: Path, device: torch.device, budget: str, threads: int) -> dict[str, Any]:
    """The report to continue: the file's, when it was made with these settings on this machine."""
    from ..io import read_json

    fresh = new_report(device, budget, threads)
    if not path.is_file():
        return fresh
    old = read_json(path, ConfigError)
    if old.get("kind") != "suite":
        raise ConfigError(f"{path}: not a suite results file; pass another --out")
    differ = [k for k, v in fresh["settings"].items() if old.get("settings", {}).get(k) != v]
    differ += [f"machine.{k}" for k in ("cpu", "gpu") if old.get("machine", {}).get(k) != fresh["machine"][k]]
    if differ:
        raise ConfigError(f"{path}: made with other settings ({', '.join(differ)}); pass --fresh to start over, "
                          "or another --out")
    return old


def run_suite(device: str, budget: str, out: Path, threads: int = 1, fresh: bool = False,
              log: Callable[[str], None] = print, on_row: Callable[[dict[str, Any]], None] | None = None,
              only: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Measure every row of `budget` not yet in `out` (all of them with `fresh`), saving after each row.

    `threads` sets torch's CPU threads for the run (0 leaves torch's default). `only` picks row keys.
    """
    from ..io import atomic_write_json
    from .suite_table import derived

    dev = check_request(device, budget)
    if threads < 0:
        raise ConfigError(f"--threads: must be >= 0, got {threads}")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        report = new_report(dev, budget, threads) if fresh else load_report(out, dev, budget, threads)
        rows = [r for r in all_rows(budget, dev, report["machine"]["peak_flops"]) if only is None or only(r.key)]
        todo = [r for r in rows if "error" in report["rows"].get(r.key, {"error": "missing"})]
        log(f"suite {budget} on {dev.type}: {len(rows) - len(todo)} of {len(rows)} rows done, {len(todo)} to measure")
        out.parent.mkdir(parents=True, exist_ok=True)
        for i, row in enumerate(todo, 1):
            start, load = time.perf_counter(), load_average()
            try:
                figures = row.measure()
            except Exception as e:          # one failing row (out of memory, a compile error) must not end the run
                figures = {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"}
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
            figures.update(seconds=time.perf_counter() - start, load_average_1min=load)
            report["rows"][row.key] = figures
            report["updated"] = _now()
            report["derived"] = derived(report)
            atomic_write_json(out, report)
            log(f"[{i}/{len(todo)}] {row.key}: " + ("error " + figures["error"] if "error" in figures
                                                   else f"{figures['seconds']:.1f} s"))
            if row.group is not None and (i == len(todo) or todo[i].group is not row.group):
                row.group.release()
            if on_row is not None:
                on_row(report)
        return report
    finally:
        torch.set_num_threads(before)
