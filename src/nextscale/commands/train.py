"""CLI: `nextscale train-tokenizer | cache-tokens | train-ar`.

All three run single-process or under `torchrun --nproc_per_node N -m nextscale ...`; configs
are YAML with `--set section.key=value` overrides.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

SET_HELP = "override a config value, e.g. --set train.steps=1000 (repeatable)"


def _rank_prefixed(fn):
    """Under torchrun, say which rank failed: the job ends with that rank's error."""
    import functools
    import os

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..errors import NextscaleError

        try:
            return fn(*args, **kwargs)
        except NextscaleError as e:
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                e.args = (f"rank {os.environ.get('RANK', '?')}: {e}",)
            raise

    return wrapper


def register(app: typer.Typer) -> None:
    """Add this module's subcommands to the app."""

    @app.command("train-tokenizer")
    @_rank_prefixed
    def train_tokenizer(
        config: Path = typer.Option(..., "--config", help="training YAML (model/data/optim/train/loss sections) or a packaged config name (nextscale configs)"),
        out: Path = typer.Option(..., "--out", help="run directory (checkpoints, metrics, samples)"),
        overrides: List[str] = typer.Option([], "--set", help=SET_HELP),
        resume: bool = typer.Option(False, "--resume", help="continue from the newest checkpoint in --out"),
    ) -> None:
        """Train SAT (the scale-level audio tokenizer); RUN/tokenizer holds the final model."""
        from ..train.tokenizer import load_sat_train_config, train_tokenizer as run

        result = run(load_sat_train_config(config, overrides), out, resume=resume)
        typer.echo(f"done: step {result.step}, checkpoint {result.checkpoint}")

    @app.command("cache-tokens")
    @_rank_prefixed
    def cache_tokens(
        tokenizer: Path = typer.Option(..., "--tokenizer", help="SAT model directory (or a training checkpoint)"),
        out: Path = typer.Option(..., "--out", help="cache directory (index.json + shards)"),
        data: Optional[Path] = typer.Option(None, "--data", help="YAML with a data: section (default: synthetic corpus)"),
        overrides: List[str] = typer.Option([], "--set", help="data overrides, e.g. --set data.source=synth"),
        split: str = typer.Option("train", help="train or heldout"),
        conditioner: str = typer.Option("class", help="class, text or clap"),
        conditioner_model: Optional[str] = typer.Option(None, help="sentence-transformers / CLAP model dir or id"),
        batch_size: int = typer.Option(16),
        shard_size: int = typer.Option(1024, help="clips per shard (finished shards survive an interruption)"),
        num_workers: int = typer.Option(0),
        device: str = typer.Option("auto", help="auto, cpu or cuda"),
    ) -> None:
        """Encode a dataset once with SAT into a resumable token cache for AR training."""
        from ..train.token_cache import cache_tokens as run

        index, clips, tokens = run(tokenizer, out, data, overrides, split=split, conditioner=conditioner,
                                   conditioner_model=conditioner_model, batch_size=batch_size, shard_size=shard_size,
                                   num_workers=num_workers, device=device)
        typer.echo(f"wrote {index}: {clips} clips x {tokens} tokens")

    @app.command("train-ar")
    @_rank_prefixed
    def train_ar(
        config: Path = typer.Option(..., "--config", help="training YAML (model/data/optim/train sections) or a packaged config name (nextscale configs)"),
        tokens: Optional[Path] = typer.Option(None, "--tokens", help="token cache directory (cache-tokens)"),
        tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", help="SAT directory (default: the cache's)"),
        out: Path = typer.Option(..., "--out", help="run directory; RUN/pipeline is the final product"),
        overrides: List[str] = typer.Option([], "--set", help=SET_HELP),
        resume: bool = typer.Option(False, "--resume", help="continue from the newest checkpoint in --out"),
    ) -> None:
        """Train AAR or the next-token baseline (model.kind) on cached tokens."""
        from ..train.ar import load_ar_train_config, train_ar as run

        extra = [f"data.tokens={tokens}"] if tokens else []
        extra += [f"data.tokenizer={tokenizer}"] if tokenizer else []
        result = run(load_ar_train_config(config, [*overrides, *extra]), out, resume=resume)
        typer.echo(f"done: step {result.step}, checkpoint {result.checkpoint}")
