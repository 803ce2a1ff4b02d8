"""CLI: `nextscale configs` and `nextscale models` — what can be named instead of given as a path."""
from __future__ import annotations

from pathlib import Path

import typer


def describe(path: Path) -> str:
    """The file's leading comment, joined into one line (what the config is for)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(lines)


def register(app: typer.Typer) -> None:
    """Add this module's subcommands to the app."""

    @app.command("configs")
    def configs(full: bool = typer.Option(False, "--full", help="whole descriptions and file paths")) -> None:
        """List the packaged configs; pass a name anywhere a config is wanted (`--config sat-paper`)."""
        from ..config import packaged_configs

        shipped = packaged_configs()
        width = max(len(name) for name in shipped)
        for name, path in shipped.items():
            text = describe(path)
            if not full and len(text) > 96:
                text = text[:95].rstrip() + "…"
            typer.echo(f"{name:<{width}}  {text}" + (f"\n{'':<{width}}  {path}" if full else ""))

    @app.command("models")
    def models() -> None:
        """List the models that load by name (`--model NAME`, `Pipeline.from_pretrained(NAME)`)."""
        from ..hub import DEFAULT_MODEL, PUBLISHED, PUBLISHED_REPO, cache_root, shipped_about, shipped_models

        shipped = shipped_models()
        width = max(len(name) for name in [*PUBLISHED, *shipped])
        for name, directory in shipped.items():
            default = " (the default of nextscale generate)" if name == DEFAULT_MODEL else ""
            typer.echo(f"{name:<{width}}  {shipped_about(directory)}  [in the package{default}]")
        for name, model in PUBLISHED.items():
            typer.echo(f"{name:<{width}}  {model.about}  [{PUBLISHED_REPO}: {', '.join(model.files)}]")
        typer.echo(f"downloaded through the Hugging Face cache, converted once into {cache_root() / 'published'}")
