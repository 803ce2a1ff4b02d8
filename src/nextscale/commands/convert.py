"""CLI: `nextscale import-checkpoint` — the published SAT / AAR .pth files as nextscale directories."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add this module's subcommands to the app."""

    @app.command("import-checkpoint")
    def import_checkpoint(
        sat: Path = typer.Option(..., "--sat", help="published SAT checkpoint (.pth, 'generator_state_dict')"),
        aar: Optional[Path] = typer.Option(None, "--aar", help="published AAR checkpoint (.pth); makes a full pipeline"),
        out: Path = typer.Option(..., "--out", help="output directory (SAT model dir, or pipeline dir with --aar)"),
        clap_model: str = typer.Option("laion/larger_clap_general", "--clap-model",
                                       help="CLAP model (local dir or hub id) for text prompts; the paper's by default"),
        heads: Optional[int] = typer.Option(None, "--heads", help="AAR attention heads (only needed without cosine attention)"),
    ) -> None:
        """Convert the published SAT (and AAR) checkpoints; `Pipeline.from_pretrained(OUT)` then loads them."""
        from ..ar.published import import_published

        path = import_published(sat, out, aar_path=aar, clap_model=clap_model, heads=heads)
        what = "pipeline (tokenizer + AAR + CLAP conditioner)" if aar else "SAT tokenizer"
        typer.echo(f"wrote {what} to {path}")
