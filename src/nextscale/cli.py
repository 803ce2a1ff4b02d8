"""`nextscale` command line: a thin typer app; each commands/ module registers its subcommands.

Errors a user can fix (NextscaleError) print one clear line and exit with status 2 instead of
a traceback.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable

import typer

app = typer.Typer(
    name="nextscale",
    help="Fast autoregressive audio generation by next-scale prediction (SAT + AAR).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def _root() -> None:
    """Fast autoregressive audio generation by next-scale prediction (SAT + AAR)."""


@app.command()
def version() -> None:
    """Print the versions of nextscale, torch and the device torch sees."""
    import torch

    from . import __version__

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    typer.echo(f"nextscale {__version__}, torch {torch.__version__}, {cuda}")


COMMAND_MODULES = ("data", "codec", "train", "generate", "eval", "bench", "demo", "convert", "configs")
for _name in COMMAND_MODULES:
    importlib.import_module(f"nextscale.commands.{_name}").register(app)


def main() -> None:
    from .errors import NextscaleError

    try:
        app()
    except NextscaleError as e:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False, markup=True)
        sys.exit(2)


def run_script(function: Callable[..., Any]) -> None:
    """Run a typer-annotated function as a script (the benchmarks): a user error prints one line, exit 2."""
    from .errors import NextscaleError

    try:
        typer.run(function)
    except NextscaleError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
