"""Does an AR model use its class where the data says it must? Teacher-forced class gain per scale.

    python benchmarks/class_gain.py                                   # shipped model, rising vs falling chirps
    python benchmarks/class_gain.py --model runs/x/ar/pipeline --pair kick,snare

Held-out synthetic clips of two classes are encoded by the model's tokenizer. Per scale k:

- model gain: log p(x_k | x_<k, true class) - log p(x_k | x_<k, the other class), teacher forced, in nats per
  clip summed over the scale's tokens;
- data gain: the same log-ratio for per-position class-conditional token frequencies fitted on one half of the
  clips and scored on the other (add-1/2 smoothing), ignoring x_<k: what the class alone says about scale k.

A scale where the data gain is large, the model gain near zero and x_<k does not yet tell the two apart (the
first scales of a rising vs a falling chirp) is one the model samples as the mixture of both classes: its
tokens, drawn independently, cannot agree on which way the sound goes. Writes RESULTS/class_gain_<device>.json
(one entry per model and pair).
"""
from __future__ import annotations

import json
from pathlib import Path

import typer

RESULTS = Path(__file__).resolve().parent / "results"
HELDOUT_SEED = 7_777        # the demo's held-out seed


def data_gain(tokens, labels, a: int, b: int, vocab: int) -> float:
    """Held-out log-ratio (nats per clip) of per-position class-conditional token frequencies."""
    import numpy as np

    half = len(labels) // 2
    fit, score = slice(0, half), slice(half, None)
    total = 0.0
    for p in range(tokens.shape[1]):
        probs = {}
        for c in (a, b):
            counts = np.bincount(tokens[fit][labels[fit] == c, p], minlength=vocab) + 0.5
            probs[c] = counts / counts.sum()
        ys, xs = labels[score], tokens[score][:, p]
        total += float(np.mean([np.log(probs[y][x]) - np.log(probs[a + b - y][x]) for y, x in zip(ys, xs)]))
    return total


def main(model: str = typer.Option("nextscale-synth-small", help="model name or pipeline directory"),
         pair: str = typer.Option("rising_chirp,falling_chirp", help="two class names, comma-separated"),
         clips: int = typer.Option(300, help="held-out clips per class"),
         threads: int = typer.Option(2, help="torch intra-op threads"),
         out: Path = typer.Option(RESULTS)) -> None:
    """Per-scale class gain of the model beside the data's, for a pair of classes."""
    import numpy as np
    import torch

    from nextscale.ar.conditioning import ClassConditioner
    from nextscale.bench.measure import machine_info, versions
    from nextscale.data.synth import KINDS, synth_clip
    from nextscale.errors import NextscaleError
    from nextscale.io import atomic_write_json, read_json
    from nextscale.pipeline import Pipeline

    torch.set_num_threads(threads)
    names = [n.strip() for n in pair.split(",")]
    pipe = Pipeline.from_pretrained(model)
    if pipe.ar.config.kind != "aar" or not isinstance(pipe.conditioner, ClassConditioner):
        raise NextscaleError(f"{model}: class gain needs a class-conditioned next-scale (AAR) pipeline, got a "
                             f"{pipe.ar.config.kind} model conditioned by {pipe.conditioner.kind}")
    classes = pipe.conditioner.classes
    if len(names) != 2 or any(n not in classes or n not in KINDS for n in names):
        raise NextscaleError(f"--pair: expected two of the model's synthetic classes {classes}, got {pair!r}")
    a, b = (classes.index(n) for n in names)
    kinds = [KINDS.index(n) for n in names]
    wavs, labels = [], []
    for i in range(clips):
        for cls, kind in zip((a, b), kinds):
            wavs.append(synth_clip(len(KINDS) * i + kind, seed=HELDOUT_SEED).audio)
            labels.append(cls)
    audio = torch.from_numpy(np.stack(wavs))[:, None]
    y = torch.tensor(labels)
    with torch.no_grad():
        codes = pipe.sat.encode(audio)
        inputs = pipe.sat.quantizer.teacher_forcing_inputs(codes)
        target = torch.cat(codes, 1)
        scores = [torch.log_softmax(pipe.ar(cond, inputs).float(), -1).gather(-1, target[..., None])[..., 0]
                  for cond in (y, a + b - y)]
    gain = scores[0] - scores[1]
    scales, rows, start = pipe.ar.config.scales, [], 0
    for k, n in enumerate(scales):
        span = slice(start, start + n)
        rows.append({"scale": k, "tokens": n, "model_gain": float(gain[:, span].sum(1).mean()),
                     "data_gain": data_gain(target[:, span].numpy(), y.numpy(), a, b, pipe.ar.config.codebook_size)})
        start += n
        print(f"scale {k} ({n:3d} tokens): model {rows[-1]['model_gain']:7.3f}  data {rows[-1]['data_gain']:7.3f} nats/clip")
    path = out / "class_gain_cpu.json"
    report = read_json(path, NextscaleError) if path.is_file() else {}
    report[f"{model} | {names[0]} vs {names[1]}"] = {
        "model": model, "pair": names, "clips_per_class": clips, "heldout_seed": HELDOUT_SEED, "per_scale": rows,
        "machine": {"threads": threads, **machine_info(torch.device("cpu"))}, "versions": versions()}
    atomic_write_json(path, report)
    print(f"wrote {path}")


if __name__ == "__main__":
    from nextscale.cli import run_script

    run_script(main)
