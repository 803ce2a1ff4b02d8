"""CLI: data commands — `synth` writes the built-in synthetic corpus and summarises it."""
from __future__ import annotations

import json
from pathlib import Path

import typer


def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write wav/, manifest.jsonl and corpus.json into."),
    n: int = typer.Option(2400, "--n", help="Number of clips (item i is of kind i mod 12)."),
    seed: int = typer.Option(0, "--seed", help="Corpus seed: the same seed gives the same clips on any machine."),
    preview: bool = typer.Option(False, "--preview", help="Also write preview/<kind>.png: spectrograms of a few clips of each kind."),
    sample_rate: int = typer.Option(24000, "--sample-rate", help="Sample rate of the clips (Hz)."),
    clip_seconds: float = typer.Option(1.0, "--clip-seconds", help="Length of each clip (s)."),
) -> None:
    """Write the synthetic corpus (WAVs + manifest.jsonl) and print clips per kind."""
    from rich.console import Console
    from rich.table import Table

    from ..data.export import SUMMARY_NAME, export_corpus

    manifest = export_corpus(out, n, seed, preview=preview, sample_rate=sample_rate, clip_seconds=clip_seconds)
    summary = json.loads((out / SUMMARY_NAME).read_text(encoding="utf-8"))
    table = Table(title=f"synthetic corpus (seed {seed})")
    table.add_column("kind")
    table.add_column("clips", justify="right")
    for kind, count in summary["clips_per_kind"].items():
        table.add_row(kind, str(count))
    table.add_section()
    table.add_row("total", f"{n} clips, {summary['total_seconds'] / 60:.1f} min")
    console = Console()
    console.print(table)
    console.print(f"rendering: {summary['render_ms_per_clip']:.2f} ms per clip")
    if preview:
        console.print(f"previews:  {out / 'preview'} ({summary['previews']} PNGs)")
    console.print(f"manifest:  {manifest}")


def register(app: typer.Typer) -> None:
    """Add this module's subcommands to the app."""
    app.command()(synth)
