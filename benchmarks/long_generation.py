"""Long generated audio: an AAR with window context trained on the demo's tokenizer, judged window by window.

    nextscale demo --out DEMO                                          # tokenizer + classifier (+ 1-window AAR)
    python benchmarks/long_generation.py --demo DEMO --seconds 10      # trains the context AAR, measures
    python benchmarks/long_generation.py --demo DEMO --overlap 12 --sweep 4,7,10,14,18 --tag _overlap12

The demo's AR config (`aar-synth`) with `context_tokens` added trains on 2-second event sequences of the
synthetic corpus (two consecutive windows per cached clip; the same number of clips' worth of audio
budget as the demo gives its own AAR, in steps). Then `nextscale.eval.long_form` generates clips of
`--seconds` for every class window by window, the same prompts as one window, and as independent windows
(the chunked floor), and reports per-window class accuracy against the one-window figure, the join ratio
of generated, chunked and real event sequences, and the generation cost per second of audio against the
one-window case (the fastest of `--repeats` interleaved turns each, so a busy minute on a shared machine
does not land on one side), with where that time goes. The windows start every T - o latent frames and
are crossfaded over the o they share (`--overlap`, default the pipeline's; 0: side by side, and any other
overlap is measured against side by side too); the joins are then the shared stretches, and the demo's
tokenizer also codes the real sequences with that overlap. `--sweep` adds joins and accuracy at more overlaps. Writes RESULTS/long_generation_<device><tag>.json, a spectrogram PNG of a siren and a
chord beside it, and WAVs under the run.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import typer

RESULTS = Path(__file__).resolve().parent / "results"
HELDOUT_SEED = 7_777          # the demo's held-out seed


def main(demo: Path = typer.Option(..., help="a finished `nextscale demo --out` folder (its tokenizer and classifier)"),
         seconds: float = typer.Option(10.0, help="length of the generated clips"),
         steps: int = typer.Option(1400, help="AR training steps (the demo's default preset trained 1400 here)"),
         context_tokens: int = typer.Option(16, help="model.context_tokens of the context AAR"),
         clips: int = typer.Option(1200, help="2-second training sequences to cache"),
         per_class: int = typer.Option(4, help="long clips per class"),
         overlap: Optional[int] = typer.Option(None, help="latent frames neighbouring windows share, crossfaded "
                                                          "(default: the pipeline's; 0: side by side)"),
         repeats: int = typer.Option(3, help="interleaved timing turns of the one-window and the long batch"),
         sweep: str = typer.Option("", help="comma-separated overlaps to measure joins and accuracy at too (no timing)"),
         threads: int = typer.Option(2), device: str = typer.Option("cpu"),
         work: Path = typer.Option(Path(__file__).resolve().parent / "runs" / "long_generation"),
         out: Path = typer.Option(RESULTS),
         tag: str = typer.Option("", help="appended to the results' file names (e.g. a variant)")) -> None:
    import torch

    from nextscale.audio import save_audio
    from nextscale.bench.measure import machine_info, versions
    from nextscale.data import DataConfig, build_dataset, collate_batch
    from nextscale.data.synth import synth_sequence
    from nextscale.demo import AR_CONFIG, SAMPLING, demo_ar_model, PRESETS
    from nextscale.ar.config import tokenizer_fit
    from nextscale.config import read_yaml
    from nextscale.eval.embeddings import get_embedding
    from nextscale.eval.long_form import coded_joins, join_ratios, long_form_figures, window_accuracy
    from nextscale.io import atomic_write_json
    from nextscale.pipeline import Pipeline
    from nextscale.plots import plot_spectrogram
    from nextscale.tokenizer.model import SAT
    from nextscale.train.ar import load_ar_train_config, train_ar
    from nextscale.train.token_cache import build_token_cache

    torch.set_num_threads(threads)
    sat_dir = demo / "tokenizer" / "tokenizer"
    sat = SAT.from_pretrained(sat_dir, map_location=device)
    if overlap is not None:
        sat.layout(overlap)                              # a bad overlap fails before the training
    cache = work / "tokens"
    _check_work_dir(cache, sat_dir)
    if not (cache / "index.json").is_file() or '"complete": true' not in (cache / "index.json").read_text():
        data = build_dataset(DataConfig(source="synth", n=clips, seed=0, clip_seconds=2.0, sequence=True), "train")
        build_token_cache(sat, data, cache, collate_batch, tokenizer_path=sat_dir, batch_size=32, device=device)
    model = demo_ar_model(PRESETS["default"]) | tokenizer_fit(sat) | {"num_classes": 12, "context_tokens": context_tokens}
    cfg = load_ar_train_config({
        "model": model, "data": {"tokens": str(cache)},
        "optim": read_yaml(AR_CONFIG).get("optim", {}) | {"warmup_steps": max(1, steps // 20)},
        "train": {"steps": steps, "batch_size": 32, "device": device, "tensorboard": False, "eval_every": 0,
                  "log_every": max(1, steps // 50), "ckpt_every": max(1, steps // 4), "keep_last": 1, "seed": 0}})
    run = work / "ar"
    train_s = None                          # None: trained by an earlier run in this work folder
    if not (run / "pipeline" / "pipeline.json").is_file():
        start = time.perf_counter()
        train_ar(cfg, run, resume=(run / "checkpoints").is_dir())
        train_s = time.perf_counter() - start

    pipe = Pipeline.from_pretrained(run / "pipeline", device=device)
    overlap = pipe.overlap_of(overlap)
    backend = get_embedding("synth", classifier=demo / "classifier")
    classes = pipe.conditioner.classes
    prompts = [c for c in classes for _ in range(per_class)]
    load_before = os.getloadavg()          # the timings are wall clock: say how busy the machine was
    figures, audio = long_form_figures(pipe, backend, prompts, seconds, seed=0, overlap=overlap, repeats=repeats,
                                       **SAMPLING)
    figures["timing"]["load_average_1min_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    figures["cost_breakdown"] = _cost_breakdown(pipe, prompts, seconds, overlap, repeats)
    if sweep:
        figures["overlap_sweep"] = _sweep(pipe, backend, prompts, seconds, [int(o) for o in sweep.split(",")])
    real = torch.stack([torch.from_numpy(synth_sequence(i, HELDOUT_SEED, pipe.sample_rate, seconds).audio)[None]
                        for i in range(len(classes) * per_class)])
    labels = [i % len(classes) for i in range(len(real))]
    sr, window = pipe.sample_rate, pipe.sat.window_samples
    figures["real_sequences"] = {"join_ratio": join_ratios(real, sr, window),
                                 "accuracy_per_window": window_accuracy(backend, real, labels),
                                 "coded": coded_joins(pipe.sat, real, sorted({0, overlap}))[0]}
    samples = work / "samples"
    for c, name in enumerate(classes):
        i = c * per_class
        for kind in audio:
            save_audio(samples / f"{name}_{kind}.wav", audio[kind][i].cpu(), pipe.sample_rate)
        save_audio(samples / f"{name}_real.wav", real[c * per_class].cpu(), pipe.sample_rate)
    for name in ("siren", "chord"):
        i = classes.index(name) * per_class
        how = f", windows crossfaded over {overlap} frames" if overlap else ""
        plot_spectrogram(audio["long"][i].cpu(), pipe.sample_rate, out / f"long_generation_{device}{tag}_{name}.png",
                         title=f"{name}, {seconds:g} s generated window by window{how}")
    report = {"benchmark": "long_generation", "machine": {"device": device, "threads": threads,
                                                          **machine_info(torch.device(device))},
              "versions": versions(), "demo": str(demo), "seconds": seconds, "steps": steps, "train_s": train_s,
              "context_tokens": context_tokens, "training_clips": clips, "sampling": SAMPLING, "work": str(work),
              "one_window_demo_aar_accuracy": _demo_generated(demo), **figures,
              "targets": {"join_ratio": "<= 1.2", "per_window_accuracy_ratio": ">= 0.9 of the 1 s model's",
                          "cost_ratio": "<= 1.3"}}
    atomic_write_json(out / f"long_generation_{device}{tag}.json", report)
    joins = figures["join_ratio_context"]
    print(f"overlap {overlap}: per-window accuracy {['%.2f' % a for a in figures['accuracy_per_window']]} vs one "
          f"window {figures['accuracy_one_window']:.2f}; joins {joins['mean']:.2f} (centre {joins['centre_mean']:.2f}; "
          f"chunked {figures['join_ratio_independent_windows']['mean']:.2f}, real "
          f"{figures['real_sequences']['join_ratio']['mean']:.2f}); cost ratio {figures['cost_ratio']:.2f} "
          f"({figures['generated_windows']} windows)")


def _cost_breakdown(pipe, prompts, seconds: float, overlap: int, repeats: int) -> dict:
    """Where the time of a long batch goes against one window's (wall clock, the fastest of interleaved turns):
    a window of AR steps with the null and with a real context, the context (window latent + joined frames),
    and decoding one window and the long clips' latent, in one call and in the pipeline's calls."""
    import torch

    from nextscale.ar.windows import context_before, window_latent
    from nextscale.demo import SAMPLING
    from nextscale.eval.long_form import interleaved_times

    sat, ar, q = pipe.sat, pipe.ar, pipe.sat.quantizer
    cond, g = pipe.encode_condition(prompts), torch.Generator().manual_seed(0)
    length = int(round(seconds * pipe.sample_rate))
    windows, layout = sat.num_windows(length, overlap), sat.layout(overlap)
    with torch.inference_mode():
        codes = ar.generate(q, cond, generator=g, **SAMPLING)
        latent = window_latent(q, codes)
        long_codes = [c.repeat(1, windows) for c in codes]
        _, t = interleaved_times({
            "ar_window_null_context": lambda: ar.generate(q, cond, generator=g, **SAMPLING),
            "ar_window_with_context": lambda: ar.generate(q, cond, generator=g, context=latent, **SAMPLING),
            "context": lambda: context_before(layout, [window_latent(q, codes)] * (windows - 1), windows - 1),
            "decode_one_window_one_call": lambda: sat.decode(codes),
            "decode_one_window_pipeline": lambda: pipe.decode(codes),
            "decode_long_one_call": lambda: sat.decode(long_codes, length, overlap),
            "decode_long_pipeline": lambda: pipe.decode(long_codes, length, overlap)}, repeats)

    def ratio(decode_one: str, decode_long: str, w: int) -> float:
        one = t["ar_window_null_context"] + t[decode_one]
        long = t["ar_window_null_context"] + (w - 1) * (t["ar_window_with_context"] + t["context"]) + t[decode_long]
        return long / seconds / one

    side_by_side = sat.num_windows(length)
    return {"seconds": {k: round(v, 4) for k, v in t.items()}, "windows": windows, "clips": len(prompts),
            "estimated_cost_ratio": {
                f"{side_by_side}_windows_decoded_in_one_call": ratio("decode_one_window_one_call",
                                                                     "decode_long_one_call", side_by_side),
                f"{side_by_side}_windows_pipeline_decode": ratio("decode_one_window_pipeline", "decode_long_pipeline",
                                                                 side_by_side),
                f"{windows}_windows_pipeline_decode": ratio("decode_one_window_pipeline", "decode_long_pipeline",
                                                            windows)}}


def _sweep(pipe, backend, prompts, seconds: float, overlaps: list[int]) -> dict:
    """Joins (over the shared stretches and at their centres) and per-window accuracy at several overlaps."""
    from nextscale.demo import SAMPLING
    from nextscale.eval.long_form import join_ratios, window_accuracy

    labels = [pipe.conditioner.classes.index(p) for p in prompts]
    out = {}
    for overlap in overlaps:
        audio = pipe.generate(prompts, seconds=seconds, overlap=overlap, seed=0, batch_size=64, progress=False,
                              **SAMPLING).audio
        joins = join_ratios(audio, pipe.sample_rate, pipe.sat.window_samples, overlap * pipe.sat.hop_length)
        accuracy = window_accuracy(backend, audio, labels)
        out[str(overlap)] = {"generated_windows": pipe.sat.num_windows(audio.shape[-1], overlap),
                             "join_ratio": joins["mean"], "join_ratio_centre": joins["centre_mean"],
                             "accuracy_mean": sum(accuracy) / len(accuracy), "accuracy_worst": min(accuracy)}
        print(f"sweep: overlap {overlap}: {out[str(overlap)]}", flush=True)
    return out


def _check_work_dir(cache: Path, sat_dir: Path) -> None:
    """A work folder's token cache (and the AR trained on it) belongs to one tokenizer: refuse another's."""
    import json

    from nextscale.errors import ConfigError

    index = cache / "index.json"
    if index.is_file():
        made_with = json.loads(index.read_text()).get("tokenizer")
        if made_with and Path(made_with).resolve() != sat_dir.resolve():
            raise ConfigError(f"{cache}: cached with the tokenizer {made_with}, not {sat_dir}; pass another --work "
                              f"for this demo")


def _demo_generated(demo: Path) -> float | None:
    import json

    summary = demo / "summary.json"
    return json.loads(summary.read_text())["class_accuracy"]["generated"] if summary.is_file() else None


if __name__ == "__main__":
    from nextscale.cli import run_script

    run_script(main)
