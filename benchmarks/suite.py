"""The speed suite: every speed row of the project in one resumable run (`nextscale.bench.suite`).

    python benchmarks/suite.py --device cpu --budget smoke              # seconds: every section once
    python benchmarks/suite.py --device cpu --budget cpu --threads 1    # small sizes on a few CPU cores
    python benchmarks/suite.py --device cuda --budget gpu               # the paper's sizes on one GPU

Rows accumulate in benchmarks/results/suite_<device>.json (the smoke budget writes to benchmarks/runs/,
which git ignores); a re-run skips the rows already measured and retries those that failed, so an
interrupted run continues. The markdown tables are written next to the JSON (.md).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

ROOT = Path(__file__).resolve().parent
FULL_BUDGET = {"cpu": "cpu", "cuda": "gpu"}     # the budget whose results the repository keeps, per device


def default_out(device: str, budget: str) -> Path:
    if FULL_BUDGET.get(device) == budget:
        return ROOT / "results" / f"suite_{device}.json"
    return ROOT / "runs" / f"suite_{device}_{budget}.json"


def main(device: str = typer.Option("cpu", help="cpu or cuda."),
         budget: str = typer.Option("cpu", help="smoke (seconds), cpu (small sizes) or gpu (the paper's sizes)."),
         threads: Optional[int] = typer.Option(None, min=0, help="torch CPU threads; default 1 on cpu, torch's "
                                                                   "own on cuda."),
         out: Optional[Path] = typer.Option(None, help="Results JSON (default: see the module docstring)."),
         fresh: bool = typer.Option(False, "--fresh", help="Start over instead of continuing the results file."),
         only: str = typer.Option("", help="Comma-separated row-key prefixes, e.g. 'generation/tiny,train_ar'.")
         ) -> None:
    """Measure every row of the budget not yet in the results file, saving after each row."""
    from nextscale.bench.suite import run_suite
    from nextscale.bench.suite_table import markdown
    from nextscale.io import atomic_write_bytes

    path = out or default_out(device, budget)
    prefixes = [p.strip() for p in only.split(",") if p.strip()]
    report = run_suite(device, budget, path, threads=(1 if device == "cpu" else 0) if threads is None else threads,
                       fresh=fresh, only=(lambda key: any(key.startswith(p) for p in prefixes)) if prefixes else None)
    table = markdown(report)
    atomic_write_bytes(path.with_suffix(".md"), table.encode())
    print(table)
    print(f"wrote {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    from nextscale.cli import run_script

    run_script(main)
