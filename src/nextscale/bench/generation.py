"""Speed benchmark: end-to-end generation of one clip by next-scale AAR vs the next-token baselines.

What is timed: transformer + sampling + SAT decoder for `seconds` of audio (the conditioner is
excluded: conditions are random CLAP-sized vectors). Three contenders at equal depth/width, built
with random weights: `next_scale` (AAR, K = 16 steps), `next_token_scale` (SAT codes in scale order,
455 steps), `next_token_rvq` (a 10-level single-scale RVQ, 750 steps). All go through the same
`nextscale.ar.fast.FastGenerator` with the same options (eager / --compile / --cuda-graph), the same
sampling (CFG on, top-k 200, top-p 0.95) and a SAT decoder of the same architecture, so the ratio
is honest. Method: warm-up calls, synchronised timing, median and IQR of repeats (a per-setting
time budget trims repeats of slow settings, never below `min_repeats`, default 3).

JSON schema (`schema_version` 1), written by `write_json`:
    schema_version  1
    created         ISO-8601 UTC time
    machine         cpu, cpu_cores, cpu_cores_usable, torch_threads, platform, gpu (name or null),
                    gpu_memory_bytes, gpu_capability, memory_bandwidth_bytes_per_s (null if unknown)
    versions        nextscale, torch, cuda, cudnn, python
    settings        BenchSettings as a dict (depths, batch_sizes, device, precision, compile,
                    cuda_graph, cfg, top_k, top_p, temperature, seconds, rvq_levels, warmup, repeats,
                    budget_s, min_repeats, seed, bandwidth, threads, models, note)
    results         one object per (depth, batch, model):
        depth, ar_depth, width, heads, model, steps, batch, parameters (AR model),
        decoder_parameters, times_s (every timed repeat), median_s, iqr_s, min_s, max_s,
        clips_per_s (batch / median), rtf (median / (batch × seconds): compute seconds per second
        of audio, < 1 is faster than real time), speedup_of_next_scale (this row's median over the
        next-scale median at the same depth and batch; 1.0 for next_scale itself),
        peak_memory_bytes, peak_memory_kind ("cuda_max_allocated" | "cpu_peak_rss"),
        weight_bytes_per_step, floor_s (weight_bytes_per_step × steps ÷ bandwidth, null if unknown),
        load_average_1min (the machine's 1-minute load when the setting started: contention shows here)
    speedups        [{depth, batch, baseline, speedup}] next-scale over each baseline
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import statistics
from pathlib import Path
from typing import Any, Callable, Literal

import torch

from ..ar.config import tokenizer_fit
from ..errors import ConfigError
from .measure import (PeakMemory, floor_seconds, machine_info, summarize, time_repeats, versions,
                            weight_bytes_per_step)

MODELS = ("next_scale", "next_token_scale", "next_token_rvq")
MODEL_LABELS = {"next_scale": "next-scale (AAR)", "next_token_scale": "next-token, scale order",
                "next_token_rvq": "next-token, RVQ order"}
# Depth presets: "tiny" is the test-sized model; a number d is the paper's family (width 64·d, d heads).
TINY_AR = dict(depth=2, width=64, heads=2)
# SATs with random weights, 16 quadratic scales (455 tokens) and V = 1024 at every depth, so step
# counts and the sampler's vocabulary match the paper; only the decoder's size changes.
TINY_SAT = dict(n_filters=8, dimension=32, latent_dim=8, lstm_layers=1)
PAPER_SAT = dict(dimension=128, latent_dim=128)    # the sat-paper-d128 config: what AAR is trained on
COND_DIM = 512                      # CLAP-sized condition vectors, as in the paper


@dataclasses.dataclass
class BenchSettings:
    depths: list[str] = dataclasses.field(default_factory=lambda: ["tiny", "8"])
    batch_sizes: list[int] = dataclasses.field(default_factory=lambda: [1, 8])
    device: str = "cpu"
    precision: Literal["fp32", "bf16"] = "fp32"
    compile: bool = False
    cuda_graph: bool = False
    models: list[str] = dataclasses.field(default_factory=lambda: list(MODELS))
    cfg: float = 4.0
    top_k: int = 200
    top_p: float = 0.95
    temperature: float = 1.0
    seconds: float = 1.0
    rvq_levels: int = 10
    warmup: int = 1
    repeats: int = 5
    budget_s: float = 30.0
    min_repeats: int = 3              # the budget never trims below this
    seed: int = 0
    bandwidth: float | None = None   # bytes/s; overrides the table of known GPUs (e.g. for a CPU)
    threads: int = 0                  # CPU threads for torch (0: torch's default)
    note: str = ""

    def __post_init__(self) -> None:
        for d in self.depths:
            if d != "tiny" and not (str(d).isdigit() and int(d) >= 1):
                raise ConfigError(f"bench.depths: expected 'tiny' or a positive depth, got {d!r}")
        if not self.depths or not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ConfigError(f"bench.batch_sizes: expected positive batch sizes, got {self.batch_sizes}")
        unknown = [m for m in self.models if m not in MODELS]
        if unknown or not self.models:
            raise ConfigError(f"bench.models: unknown {unknown}; choose from {', '.join(MODELS)}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"bench.precision: expected fp32 or bf16, got {self.precision!r}")
        if self.repeats < 1 or self.warmup < 0 or self.min_repeats < 1:
            raise ConfigError("bench.repeats and bench.min_repeats must be >= 1, bench.warmup >= 0")
        if self.cuda_graph and self.device != "cuda":
            raise ConfigError("bench.cuda_graph: CUDA graphs need --device cuda")
        if self.threads < 0:
            raise ConfigError(f"bench.threads: must be >= 0, got {self.threads}")
        if self.seconds <= 0 or self.rvq_levels < 1:
            raise ConfigError("bench.seconds must be > 0 and bench.rvq_levels >= 1")


@dataclasses.dataclass
class Contender:
    """One model ready to time: its generator, the SAT that decodes its codes, and sizes."""

    name: str
    fast: Any                  # nextscale.ar.fast.FastGenerator
    sat: torch.nn.Module
    parameters: int
    weight_bytes_per_step: int


def sat_config(depth: str, settings: BenchSettings, rvq: bool) -> dict[str, Any]:
    cfg = dict(TINY_SAT if depth == "tiny" else PAPER_SAT, clip_seconds=settings.seconds, codebook_size=1024)
    if rvq:
        cfg.update(schedule="rvq", num_scales=settings.rvq_levels, phi="none")
    return cfg


def random_sat(config: dict[str, Any], device: torch.device) -> torch.nn.Module:
    """A SAT with random weights and random codebooks (fresh codebooks are zeros until k-means)."""
    from ..tokenizer.model import SAT

    sat = SAT.from_config(config)
    with torch.no_grad():
        for codebook in sat.quantizer.codebooks:
            codebook.embed.normal_()
    return sat.to(device).eval()


def ar_config(depth: str, kind: str, sat: Any, order: str = "scale", context_tokens: int = 0) -> dict[str, Any]:
    size = dict(TINY_AR) if depth == "tiny" else dict(depth=int(depth))
    return dict(size, kind=kind, order=order, **tokenizer_fit(sat.quantizer), condition="vector", cond_dim=COND_DIM,
                attention="cosine", context_tokens=context_tokens)


def build_contenders(depth: str, settings: BenchSettings, device: torch.device,
                     context_tokens: int = 0) -> list[Contender]:
    """Random-weight SATs and AR models of one depth, on `device`, in eval mode; `context_tokens` > 0 gives
    the AR models window context, so they can generate long audio window by window (`bench.window_speed`)."""
    from ..ar.fast import FastGenerator
    from ..ar.next_scale import AAR
    from ..ar.next_token import NextTokenAR

    torch.manual_seed(settings.seed)
    dtype = torch.bfloat16 if settings.precision == "bf16" else torch.float32
    sats = {"scale": random_sat(sat_config(depth, settings, rvq=False), device)}
    if "next_token_rvq" in settings.models:
        sats["rvq"] = random_sat(sat_config(depth, settings, rvq=True), device)
    contenders = []
    for name in settings.models:
        order = "rvq" if name == "next_token_rvq" else "scale"
        sat = sats[order]
        cls, kind = (AAR, "aar") if name == "next_scale" else (NextTokenAR, "next_token")
        model = cls.from_config(ar_config(depth, kind, sat, order, context_tokens)).to(device=device, dtype=dtype).eval()
        fast = FastGenerator(model, sat.quantizer, cfg=settings.cfg, top_k=settings.top_k, top_p=settings.top_p,
                             temperature=settings.temperature, compile=settings.compile,
                             cuda_graph=settings.cuda_graph)
        contenders.append(Contender(name, fast, sat, model.num_parameters(),
                                    weight_bytes_per_step(model, dtype.itemsize)))
    return contenders


def clip_call(c: Contender, gen: Any, batch: int, settings: BenchSettings, device: torch.device,
              decode: bool) -> Callable[[], Any]:
    """One timed call: `gen` (a FastGenerator of `c`'s model) makes a batch of codes from seeded random
    conditions, decoded by `c`'s SAT when `decode`."""
    g = torch.Generator(device=device).manual_seed(settings.seed)
    cond = torch.randn(batch, COND_DIM, generator=g, device=device).to(next(c.fast.model.parameters()).dtype)

    @torch.no_grad()
    def clip() -> Any:
        codes = gen(cond, g)
        return c.sat.decode(codes) if decode else codes
    return clip


def time_contender(c: Contender, batch: int, settings: BenchSettings, device: torch.device,
                   decode: bool = True) -> dict[str, Any]:
    """Time one contender at one batch size; returns the JSON row (without the speed-up).

    decode=False times the transformer and sampler alone (the codes, without the SAT decoder).
    """
    clip = clip_call(c, c.fast, batch, settings, device, decode)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None   # how shared the machine was
    memory = PeakMemory(device)
    memory.reset()
    times = time_repeats(clip, device, settings.warmup, settings.repeats, settings.budget_s,
                         min(settings.min_repeats, settings.repeats))
    peak = memory.read()
    summary = summarize(times)
    median = summary["median_s"]
    bandwidth = settings.bandwidth or machine_info(device)["memory_bandwidth_bytes_per_s"]
    cfg = c.fast.model.config
    return dict(model=c.name, steps=c.fast.steps, batch=batch, ar_depth=cfg.depth, width=cfg.width,
                heads=cfg.heads, parameters=c.parameters, decoder_parameters=sum(p.numel() for p in c.sat.parameters()),
                times_s=times, **summary, clips_per_s=batch / median, rtf=median / (batch * settings.seconds),
                peak_memory_bytes=peak, peak_memory_kind=memory.kind, weight_bytes_per_step=c.weight_bytes_per_step,
                floor_s=floor_seconds(c.weight_bytes_per_step, c.fast.steps, bandwidth), load_average_1min=load)


def paired_over_eager(c: Contender, batch: int, settings: BenchSettings, device: torch.device, decode: bool,
                      rounds: int) -> dict[str, Any]:
    """A fast mode's speed-up over eager for the same model, the two timed in turn (`time_interleaved`),
    so a machine's drift between two settings timed apart does not enter the ratio."""
    from ..ar.fast import FastGenerator
    from .measure import time_interleaved

    eager = FastGenerator(c.fast.model, c.fast.quantizer, cfg=settings.cfg, top_k=settings.top_k,
                          top_p=settings.top_p, temperature=settings.temperature)
    fast_s, eager_s = time_interleaved([clip_call(c, gen, batch, settings, device, decode) for gen in (c.fast, eager)],
                                       device, warmup=1, rounds=rounds)
    fast_median, eager_median = statistics.median(fast_s), statistics.median(eager_s)
    return dict(paired_rounds=rounds, paired_median_s=fast_median, paired_eager_median_s=eager_median,
                speedup_over_eager_paired=eager_median / fast_median)


def add_speedups(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill `speedup_of_next_scale` per row and return the list of next-scale-over-baseline ratios."""
    reference = {(r["depth"], r["batch"]): r["median_s"] for r in results if r["model"] == "next_scale"}
    speedups = []
    for r in results:
        ref = reference.get((r["depth"], r["batch"]))
        r["speedup_of_next_scale"] = None if ref is None else r["median_s"] / ref
        if ref is not None and r["model"] != "next_scale":
            speedups.append(dict(depth=r["depth"], batch=r["batch"], baseline=r["model"],
                                 speedup=r["speedup_of_next_scale"]))
    return speedups


def make_report(settings: BenchSettings, device: torch.device, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON-ready report for the rows measured so far."""
    speedups = add_speedups(results)
    machine = machine_info(device)
    machine["torch_threads"] = settings.threads or machine["torch_threads"]
    return dict(schema_version=1, created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                machine=machine, versions=versions(), settings=dataclasses.asdict(settings),
                results=results, speedups=speedups)


def run_benchmark(settings: BenchSettings, progress: bool = True,
                  on_setting: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run every (depth, batch, model) setting; returns the JSON-ready report.

    `on_setting` gets the partial report after each setting (the CLI saves it, so a long run that
    is interrupted keeps what it measured).
    """
    from tqdm import tqdm

    from ..runtime import resolve_device

    device = resolve_device(settings.device)
    settings = dataclasses.replace(settings, device=device.type)    # record 'cuda', not 'auto'
    threads_before = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    total = len(settings.depths) * len(settings.batch_sizes) * len(settings.models)
    results: list[dict[str, Any]] = []
    try:
        with tqdm(total=total, desc="bench", disable=not progress, unit="setting") as bar:
            for depth in settings.depths:
                contenders = build_contenders(depth, settings, device)
                for batch in settings.batch_sizes:
                    for c in contenders:
                        bar.set_postfix_str(f"depth {depth} batch {batch} {c.name}")
                        results.append(dict(depth=depth, **time_contender(c, batch, settings, device)))
                        bar.update()
                        if on_setting is not None:
                            on_setting(make_report(settings, device, list(results)))
                del contenders
        return make_report(settings, device, results)
    finally:
        torch.set_num_threads(threads_before)


def write_json(report: dict[str, Any], path: str | Path) -> Path:
    from ..io import atomic_write_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, report)
    return path
