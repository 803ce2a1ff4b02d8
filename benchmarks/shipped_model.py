"""How good is a model that loads by name? Class accuracy and FAD(synth) of its samples on held-out clips.

    python benchmarks/shipped_model.py                          # the shipped nextscale-synth-small
    python benchmarks/shipped_model.py --model DIR --per-class 20

The `synth` classifier (trained here exactly as the demo trains it) labels samples generated for
every class with the model's own sampling settings; FAD(synth) compares them with held-out clips
of another seed than any training corpus. The round trip of those clips through the model's
tokenizer is the ceiling beside it. Writes RESULTS/shipped_model_<device>.json.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import typer

RESULTS = Path(__file__).resolve().parent / "results"
WORK = Path(__file__).resolve().parent / "runs" / "shipped"
HELDOUT_SEED = 7_777        # the demo's held-out seed


def main(model: str = typer.Option("nextscale-synth-small", help="model name or pipeline directory"),
         per_class: int = typer.Option(20, help="samples generated per class"),
         n_heldout: int = typer.Option(240, help="held-out clips (real side of FAD, round trip)"),
         threads: int = typer.Option(2, help="torch intra-op threads"),
         device: str = typer.Option("cpu"),
         work: Path = typer.Option(WORK),
         out: Path = typer.Option(RESULTS)) -> None:
    """Generate for every class, classify, compute FAD(synth); the tokenizer's round trip beside it."""
    import torch

    from nextscale.audio import save_audio
    from nextscale.checkpoint import resolve_model_dir
    from nextscale.io import atomic_write_json
    from nextscale.bench.measure import machine_info, versions
    from nextscale.eval.embeddings import get_embedding
    from nextscale.eval.evaluate import evaluate_sets
    from nextscale.eval.recon_run import evaluate_tokenizer, write_reconstructions
    from nextscale.eval.train_classifier import heldout_and_classifier
    from nextscale.pipeline import TOKENIZER_DIR, Pipeline

    torch.set_num_threads(threads)
    manifest, classifier = heldout_and_classifier(work, n_heldout, HELDOUT_SEED, device)
    backend = get_embedding("synth", classifier=classifier)

    pipe = Pipeline.from_pretrained(model, device=device)
    classes = pipe.conditioner.classes
    prompts = [c for c in classes for _ in range(per_class)]
    start = time.perf_counter()
    audio = pipe(prompts, seed=0, batch_size=64, progress=True)
    seconds = time.perf_counter() - start
    samples = work / "generated"
    labels = {}
    for i, (prompt, wav) in enumerate(zip(prompts, audio)):
        name = f"{prompt}_{i % per_class:02d}.wav"
        save_audio(samples / name, wav.cpu(), pipe.sample_rate)
        labels[name] = prompt
    (samples / "labels.json").write_text(json.dumps(labels, indent=1))
    generated = evaluate_sets(manifest, samples, backend, progress=False)

    recon_dir = write_reconstructions(pipe.sat, manifest, work / "reconstructed")
    roundtrip = evaluate_sets(manifest, recon_dir, backend, progress=False)
    recon = evaluate_tokenizer(resolve_model_dir(model) / TOKENIZER_DIR, manifest, n=n_heldout, device=device,
                               progress=False)

    report = {
        "benchmark": "shipped_model", "model": model, "classes": len(classes), "per_class": per_class,
        "sampling": pipe.sampling_settings(), "seed": 0,
        "generated": {"class_accuracy": generated["accuracy_generated"], "fad_synth": generated["fad"],
                      "seconds_per_clip": seconds / len(prompts)},
        "sat_roundtrip": {"class_accuracy": roundtrip["accuracy_generated"], "fad_synth": roundtrip["fad"],
                          **{k: recon[k] for k in ("mel_distance", "stft_distance", "si_sdr")}},
        "real_heldout_accuracy": generated.get("accuracy_real"),
        "target": {"class_accuracy": ">= 0.90"},
        "machine": {"device": device, "threads": threads, **machine_info(torch.device(device))},
        "versions": versions(),
    }
    report["spectrograms"] = str(plot_per_class(manifest, recon_dir, samples, classes, pipe.sample_rate,
                                                out / f"shipped_model_{device}_spectrograms.png"))
    path = out / f"shipped_model_{device}.json"
    atomic_write_json(path, report)
    print(json.dumps({k: report[k] for k in ("generated", "sat_roundtrip", "real_heldout_accuracy")}, indent=1))
    print(f"wrote {path}")


def plot_per_class(manifest: Path, reconstructed: Path, generated: Path, classes: list[str], sample_rate: int,
                   path: Path) -> Path:
    """One row per class: a held-out clip | its round trip through the tokenizer | a generated sample."""
    from nextscale.audio import load_audio
    from nextscale.data.manifest import read_manifest
    from nextscale.plots import plot_comparison

    rows, entries = [], read_manifest(manifest).entries
    for cls in classes:
        real = next(e for e in entries if cls in e.labels)
        clips = [load_audio(real.path, sample_rate), load_audio(reconstructed / Path(real.path).name, sample_rate),
                 load_audio(generated / f"{cls}_00.wav", sample_rate)]
        rows.append((cls, clips))
    return plot_comparison(rows, ["held-out", "round trip", "generated"], sample_rate, path,
                           title="nextscale-synth-small: real, tokenizer round trip, generated")


if __name__ == "__main__":
    from nextscale.cli import run_script

    run_script(main)
