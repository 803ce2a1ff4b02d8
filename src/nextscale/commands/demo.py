"""CLI: `nextscale demo` — train, generate, evaluate and show on the built-in corpus."""
from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this module's subcommands to the app."""

    @app.command()
    def demo(
        out: Path = typer.Option(Path("nextscale-demo"), "--out", help="demo directory (re-running reuses finished stages)"),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda"),
        quick: bool = typer.Option(False, "--quick", help="~3.5 minutes on 2 CPU cores, lower quality"),
        preset: str = typer.Option("", "--preset", help="default, quick, long (~1 h: the shipped model's tokenizer recipe) or smoke (overrides --quick)"),
    ) -> None:
        """The whole system on the synthetic corpus: SAT → tokens → AAR → samples → metrics → HTML report."""
        from ..demo import Demo, print_summary
        from ..runtime import resolve_device

        name = preset or ("quick" if quick else "default")
        summary = Demo(out, name, str(resolve_device(device))).run()
        print_summary(summary)
