"""CLI: evaluation — `evaluate` (FAD + classifier metrics), `evaluate-tokenizer` (reconstruction
metrics) and `train-classifier` (the offline `synth` embedding)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer

DEFAULT_CACHE = Path("~/.cache/nextscale/embeddings")


def _print_table(title: str, rows: list[tuple[str, object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows:
        text = "–" if isinstance(value, float) and math.isnan(value) else (f"{value:.4g}" if isinstance(value, float) else str(value))
        table.add_row(name, text)
    Console().print(table)


def _write_json(path: Optional[Path], result: dict) -> None:
    if path is not None:
        from ..io import atomic_write_json

        atomic_write_json(path, result)
        typer.echo(f"wrote {path}")


def _report_skipped(skipped: list[dict]) -> None:
    for item in skipped[:10]:
        typer.echo(f"skipped {item['path']}: {item['reason']}", err=True)
    if len(skipped) > 10:
        typer.echo(f"… and {len(skipped) - 10} more skipped files (all listed in the JSON)", err=True)


def evaluate(
    real: Path = typer.Option(..., "--real", help="Reference audio: a folder or a .csv/.jsonl manifest (path, labels, caption)."),
    generated: Path = typer.Option(..., "--generated", help="Folder of generated audio."),
    embedding: str = typer.Option("synth", "--embedding", help="synth | vggish | clap | mel (mel: smoke check only)."),
    classifier: Optional[Path] = typer.Option(None, "--classifier", help="synth: classifier dir from `nextscale train-classifier`."),
    vggish_weights: Optional[Path] = typer.Option(None, "--vggish-weights", help="vggish: torchvggish state dict (vggish-10086976.pth)."),
    vggish_pca: Optional[Path] = typer.Option(None, "--vggish-pca", help="vggish: PCA params file (with --vggish-postprocess)."),
    vggish_postprocess: bool = typer.Option(False, "--vggish-postprocess", help="vggish: PCA + 8-bit quantisation as the AudioSet release."),
    clap: Optional[str] = typer.Option(None, "--clap", help="clap: local ClapModel dir or hub id (default laion/clap-htsat-unfused)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the results as JSON here."),
    cache_dir: Path = typer.Option(DEFAULT_CACHE, "--cache-dir", help="Per-file embedding cache."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
) -> None:
    """Fréchet Audio Distance between --real and --generated, plus classifier metrics with `synth`.

    Class accuracy of generated clips needs their intended class. It is read, in order, from a
    labels.json beside the files ({"file.wav": "chirp"} or {"file.wav": {"label": ..., "caption": ...}}),
    from a file name starting with the class name (chirp_003.wav), or from a parent folder named after
    the class. Real labels come from the manifest's `labels` column or the same rules. Captions in
    labels.json give the CLAP score with `--embedding clap`. Unreadable files are reported and skipped.
    """
    from ..eval.embeddings import get_embedding
    from ..eval.evaluate import evaluate_sets
    from ..runtime import resolve_device

    dev = resolve_device(device)
    opts = {"synth": {"classifier": classifier, "device": dev},
            "vggish": {"weights": vggish_weights, "pca": vggish_pca, "postprocess": vggish_postprocess, "device": dev},
            "clap": {"model": clap, "device": dev}, "mel": {}}
    backend = get_embedding(embedding, **opts.get(embedding, {}))
    result = evaluate_sets(real, generated, backend, None if no_cache else cache_dir.expanduser())
    _report_skipped(result["skipped"])
    if result["smoke_only"]:
        typer.echo(f"note: the {embedding} embedding is a SMOKE CHECK ONLY (no learned weights), not a perceptual metric")
    label = f"{embedding} embedding" + (" (smoke check only)" if result["smoke_only"] else "")
    rows = [("FAD", result["fad"]), ("N real (embeddings)", f"{result['n_real']} ({result['n_real_embeddings']})"),
            ("N generated (embeddings)", f"{result['n_generated']} ({result['n_generated_embeddings']})"),
            ("skipped real / generated", f"{result['skipped_real']} / {result['skipped_generated']}")]
    for key in ("accuracy_generated", "accuracy_real", "inception_score", "inception_score_real", "label_kl", "clap_score"):
        if key in result:
            rows.append((key, result[key]))
    _print_table(f"evaluate: {label}", rows)
    _write_json(out, result)


def evaluate_tokenizer(
    checkpoint: str = typer.Option(..., "--checkpoint", help="SAT model directory (or hub id)."),
    data: str = typer.Option(..., "--data", help="Folder or .csv/.jsonl manifest of audio, or 'synth' for held-out synthetic clips."),
    n: int = typer.Option(100, "--n", min=1, help="At most this many clips."),
    seed: int = typer.Option(1, "--seed", help="Seed of the synthetic clips with --data synth."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the results as JSON here."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
) -> None:
    """Reconstruction metrics of a SAT tokenizer: mel / STFT distance, SI-SDR, level, per-scale codebook use."""
    from ..eval.recon_run import evaluate_tokenizer as run
    from ..runtime import resolve_device

    result = run(checkpoint, data, n=n, seed=seed, device=resolve_device(device))
    _report_skipped(result["skipped"])
    _print_table(f"evaluate-tokenizer: {result['n']} clips", [
        ("mel distance", result["mel_distance"]), ("STFT distance", result["stft_distance"]),
        ("SI-SDR (dB)", result["si_sdr"]), ("level vs input (dB)", result["level_db"]),
        ("mean codebook usage", result["mean_usage"]),
        ("mean perplexity", result["mean_perplexity"]), ("skipped", len(result["skipped"]))])
    _print_table("per-scale codebook use", [(f"scale {r['scale']} ({r['tokens']} tokens)",
                                             f"usage {r['usage']:.3f}, perplexity {r['perplexity']:.1f}")
                                            for r in result["per_scale"]])
    _write_json(out, result)


def train_classifier(
    out: Path = typer.Option(..., "--out", help="Where to save the classifier directory."),
    n: int = typer.Option(1200, "--n", min=24, help="Training clips from the synthetic corpus."),
    n_heldout: int = typer.Option(360, "--n-heldout", min=12, help="Held-out clips (another seed)."),
    steps: int = typer.Option(500, "--steps", min=1),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    lr: float = typer.Option(3e-3, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
) -> None:
    """Train the log-mel CNN behind `--embedding synth` on the synthetic corpus (a minute or two on CPU)."""
    from ..eval.train_classifier import train_classifier as run

    summary = run(out, n_train=n, n_heldout=n_heldout, steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=device)
    _print_table(f"classifier saved to {out}", [("held-out accuracy", summary["heldout_accuracy"]),
                                                 ("train accuracy", summary["train_accuracy"]),
                                                 ("final loss", summary["final_loss"]),
                                                 ("seconds", summary["train_seconds"])])


def register(app: typer.Typer) -> None:
    """Add this module's subcommands to the app."""
    app.command("evaluate")(evaluate)
    app.command("evaluate-tokenizer")(evaluate_tokenizer)
    app.command("train-classifier")(train_classifier)
