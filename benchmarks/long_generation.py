"""Long generated audio: an AAR with window context trained on the demo's tokenizer, judged window by window.

    nextscale demo --out DEMO                                          # tokenizer + classifier (+ 1-window AAR)
    python benchmarks/long_generation.py --demo DEMO --seconds 10      # trains the context AAR, measures

The demo's AR config (`aar-synth`) with `context_tokens` added trains on 2-second event sequences of the
synthetic corpus (two consecutive windows per cached clip; the same number of clips' worth of audio
budget as the demo gives its own AAR, in steps). Then `nextscale.eval.long_form` generates clips of
`--seconds` for every class window by window, the same prompts as one window, and as independent windows
(the chunked floor), and reports per-window class accuracy against the one-window figure, the join ratio
of generated, chunked and real event sequences, and the generation cost per second of audio against the
one-window case. Writes RESULTS/long_generation_<device>.json and WAVs + a spectrogram PNG under the run.
"""
from __future__ import annotations

import time
from pathlib import Path

import typer

RESULTS = Path(__file__).resolve().parent / "results"
HELDOUT_SEED = 7_777          # the demo's held-out seed


def main(demo: Path = typer.Option(..., help="a finished `nextscale demo --out` folder (its tokenizer and classifier)"),
         seconds: float = typer.Option(10.0, help="length of the generated clips"),
         steps: int = typer.Option(1400, help="AR training steps (the demo's default preset trained 1400 here)"),
         context_tokens: int = typer.Option(16, help="model.context_tokens of the context AAR"),
         clips: int = typer.Option(1200, help="2-second training sequences to cache"),
         per_class: int = typer.Option(4, help="long clips per class"),
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
    from nextscale.eval.long_form import join_ratios, long_form_figures, window_accuracy
    from nextscale.io import atomic_write_json
    from nextscale.pipeline import Pipeline
    from nextscale.plots import plot_spectrogram
    from nextscale.tokenizer.model import SAT
    from nextscale.train.ar import load_ar_train_config, train_ar
    from nextscale.train.token_cache import build_token_cache

    torch.set_num_threads(threads)
    sat_dir = demo / "tokenizer" / "tokenizer"
    sat = SAT.from_pretrained(sat_dir, map_location=device)
    cache = work / "tokens"
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
    start = time.perf_counter()
    if not (run / "pipeline" / "pipeline.json").is_file():
        train_ar(cfg, run, resume=(run / "checkpoints").is_dir())
    train_s = time.perf_counter() - start

    pipe = Pipeline.from_pretrained(run / "pipeline", device=device)
    backend = get_embedding("synth", classifier=demo / "classifier")
    classes = pipe.conditioner.classes
    prompts = [c for c in classes for _ in range(per_class)]
    figures, audio = long_form_figures(pipe, backend, prompts, seconds, seed=0, **SAMPLING)
    real = torch.stack([torch.from_numpy(synth_sequence(i, HELDOUT_SEED, pipe.sample_rate, seconds).audio)[None]
                        for i in range(len(classes) * per_class)])
    labels = [i % len(classes) for i in range(len(real))]
    figures["real_sequences"] = {"join_ratio": join_ratios(real, pipe.sample_rate, pipe.sat.window_samples),
                                 "accuracy_per_window": window_accuracy(backend, real, labels)}
    samples = work / "samples"
    for c, name in enumerate(classes):
        i = c * per_class
        for kind in ("long", "independent"):
            save_audio(samples / f"{name}_{kind}.wav", audio[kind][i].cpu(), pipe.sample_rate)
        save_audio(samples / f"{name}_real.wav", real[c * per_class].cpu(), pipe.sample_rate)
    for name in ("siren", "chord"):
        i = classes.index(name) * per_class
        plot_spectrogram(audio["long"][i].cpu(), pipe.sample_rate, out / f"long_generation_{device}{tag}_{name}.png",
                         title=f"{name}, {seconds:g} s generated window by window")
    report = {"benchmark": "long_generation", "machine": {"device": device, "threads": threads,
                                                          **machine_info(torch.device(device))},
              "versions": versions(), "demo": str(demo), "seconds": seconds, "steps": steps, "train_s": train_s,
              "context_tokens": context_tokens, "training_clips": clips, "sampling": SAMPLING,
              "one_window_demo_aar_accuracy": _demo_generated(demo), **figures,
              "targets": {"join_ratio": "<= 1.2", "per_window_accuracy_ratio": ">= 0.9 of the 1 s model's",
                          "cost_ratio": "<= 1.3"}}
    atomic_write_json(out / f"long_generation_{device}{tag}.json", report)
    print(f"per-window accuracy {['%.2f' % a for a in figures['accuracy_per_window']]} vs one window "
          f"{figures['accuracy_one_window']:.2f}; joins {figures['join_ratio_context']['mean']:.2f} (chunked "
          f"{figures['join_ratio_independent_windows']['mean']:.2f}, real "
          f"{figures['real_sequences']['join_ratio']['mean']:.2f}); cost ratio {figures['cost_ratio']:.2f}")


def _demo_generated(demo: Path) -> float | None:
    import json

    summary = demo / "summary.json"
    return json.loads(summary.read_text())["class_accuracy"]["generated"] if summary.is_file() else None


if __name__ == "__main__":
    typer.run(main)
