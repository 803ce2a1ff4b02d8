"""Which sampling settings get the most out of a demo's AAR? Class accuracy and FAD(synth) per setting.

    python benchmarks/demo_sampling.py demo_out                       # the default grid around the demo's
    python benchmarks/demo_sampling.py demo_out --settings '[[3, 8, 1.0], [5, 8, 1.0]]'   # [cfg, top_k, T]

Every setting generates the same prompts (`--per-class` for each class) from the same seed, which is
not the demo's own, so a setting is not chosen on the samples the demo reports; the demo's classifier
and held-out clips score them as the demo does. Writes RESULTS/demo_sampling_<device>.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import typer

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_GRID = [[3, 8, 1.0], [2, 8, 1.0], [5, 8, 1.0], [8, 8, 1.0], [3, 4, 1.0], [3, 16, 1.0], [3, 8, 0.8]]


def parse_settings(text: str, top_p: float) -> list[dict[str, float]]:
    """`--settings` JSON -> sampling keyword sets; a malformed one is a ConfigError naming the option."""
    from nextscale.errors import ConfigError

    try:
        return [dict(cfg=float(c), top_k=int(k), top_p=top_p, temperature=float(t)) for c, k, t in json.loads(text)]
    except (ValueError, TypeError) as e:
        raise ConfigError(f"--settings: expected a JSON list of [cfg, top_k, temperature] triples, got {text!r} "
                          f"({e})") from None


def main(demo: Path = typer.Argument(..., help="a finished `nextscale demo` output folder"),
         settings: str = typer.Option(json.dumps(DEFAULT_GRID), help="JSON list of [cfg, top_k, temperature]"),
         top_p: float = typer.Option(0.95),
         per_class: int = typer.Option(20, help="samples generated per class and setting"),
         seed: int = typer.Option(1234, help="generation seed (the demo's own is 0)"),
         threads: int = typer.Option(2, help="torch intra-op threads"),
         out: Path = typer.Option(RESULTS)) -> None:
    """Generate and score every setting; one JSON row each, best accuracy first in the printout."""
    import torch
    from tqdm import tqdm

    from nextscale.bench.measure import machine_info, versions
    from nextscale.demo import score_samples
    from nextscale.errors import DataError
    from nextscale.eval.embeddings import get_embedding
    from nextscale.io import atomic_write_json
    from nextscale.pipeline import Pipeline

    stages = demo / "stages"
    if not (stages / "ar.json").exists() or not (stages / "corpus.json").exists():
        raise DataError(f"{demo}: not a finished demo folder (no stages/ar.json or stages/corpus.json)")
    grid = parse_settings(settings, top_p)
    torch.set_num_threads(threads)
    real = json.loads((stages / "corpus.json").read_text())["result"]["heldout_manifest"]
    pipe = Pipeline.from_pretrained(demo / "ar" / "pipeline", device="cpu")
    backend = get_embedding("synth", classifier=str(demo / "classifier"))
    rows = []
    for setting in tqdm(grid, desc="settings", unit="setting"):
        scores = score_samples(pipe, backend, real, per_class, seed, **setting)
        rows.append(setting | {"accuracy": scores["accuracy"], "fad": scores["fad"]})
    for row in sorted(rows, key=lambda r: -r["accuracy"]):
        print(json.dumps(row))
    path = out / "demo_sampling_cpu.json"
    atomic_write_json(path, {"benchmark": "demo_sampling", "demo": str(demo),
                             "samples_per_setting": per_class * len(pipe.conditioner.classes),
                             "seed": seed, "machine": machine_info(torch.device("cpu")), "versions": versions(),
                             "results": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    from nextscale.cli import run_script

    run_script(main)
