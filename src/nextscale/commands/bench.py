"""CLI: `nextscale bench` — time next-scale generation against the next-token baselines."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def split_list(text: str, option: str, cast: type = str) -> list:
    """'tiny,8' -> ['tiny', '8']; a clear error naming the option otherwise."""
    from ..errors import ConfigError

    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        values = [cast(t) for t in items]
    except ValueError:
        raise ConfigError(f"{option}: expected a comma-separated list of {cast.__name__}, got {text!r}") from None
    if not values:
        raise ConfigError(f"{option}: expected at least one value, got {text!r}")
    return values


def bench(
    depths: str = typer.Option("tiny,8", "--depths", help="Comma-separated: 'tiny' or depths d (width 64·d)."),
    batch: str = typer.Option("1,8", "--batch", help="Comma-separated batch sizes."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:i]."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or bf16 (AR weights; bf16 is the GPU setting)."),
    repeats: int = typer.Option(5, "--repeats", min=1, help="Timed repeats per setting (median and IQR reported)."),
    warmup: int = typer.Option(1, "--warmup", min=0, help="Untimed calls first (compile, caches, allocator)."),
    budget: float = typer.Option(30.0, "--budget", help="Seconds per setting; slow settings get fewer repeats (>= 3)."),
    min_repeats: int = typer.Option(3, "--min-repeats", min=1, help="The budget never trims repeats below this."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the per-step function (all models)."),
    cuda_graph: bool = typer.Option(False, "--cuda-graph", help="Capture each whole generation in one CUDA graph."),
    models: str = typer.Option("next_scale,next_token_scale,next_token_rvq", "--models"),
    cfg: float = typer.Option(4.0, "--cfg", help="Classifier-free guidance (on: batch doubles inside)."),
    top_k: int = typer.Option(200, "--top-k"),
    top_p: float = typer.Option(0.95, "--top-p"),
    seconds: float = typer.Option(1.0, "--seconds", help="Audio length per clip."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads for torch (0: default)."),
    bandwidth: Optional[float] = typer.Option(None, "--bandwidth", help="Memory bandwidth in GB/s for the floor."),
    seed: int = typer.Option(0, "--seed"),
    note: str = typer.Option("", "--note", help="Free text stored with the results (e.g. 'shared machine')."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the full report here ('{device}' is filled in)."),
    markdown_path: Optional[Path] = typer.Option(None, "--markdown", help="Also write the table as markdown ('{device}' is filled in)."),
) -> None:
    """End-to-end generation time of 1 s of audio: next-scale AAR vs next-token baselines."""
    from ..bench.generation import BenchSettings, run_benchmark, write_json
    from ..bench.table import markdown, print_table

    settings = BenchSettings(
        depths=split_list(depths, "--depths"), batch_sizes=split_list(batch, "--batch", int), device=device,
        precision=precision, compile=compile, cuda_graph=cuda_graph, models=split_list(models, "--models"),
        cfg=cfg, top_k=top_k, top_p=top_p, seconds=seconds, warmup=warmup, repeats=repeats, budget_s=budget,
        min_repeats=min_repeats, seed=seed, bandwidth=bandwidth * 1e9 if bandwidth else None, threads=threads,
        note=note)

    def json_file(report: dict) -> str:
        return str(json_path).replace("{device}", report["settings"]["device"])

    save_partial = None if json_path is None else (lambda partial: write_json(partial, json_file(partial)))
    report = run_benchmark(settings, on_setting=save_partial)
    print_table(report)
    dev = report["settings"]["device"]
    if json_path is not None:
        path = write_json(report, json_file(report))
        typer.echo(f"wrote {path}")
    if markdown_path is not None:
        path = Path(str(markdown_path).replace("{device}", dev))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(markdown(report))
        typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add this module's subcommands to the app."""
    app.command("bench")(bench)
