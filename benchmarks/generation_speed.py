"""Generation-speed benchmark: `nextscale bench` with its JSON written to benchmarks/results/.

    python benchmarks/generation_speed.py --depths tiny,8 --batch 1,8 --device cpu
    python benchmarks/generation_speed.py --depths 16 --batch 1,64 --device cuda --precision bf16 --compile --cuda-graph

Takes the same options as `nextscale bench`; unless --json is given, the report goes to
benchmarks/results/generation_speed_<device>.json (and the table as .md; schema: nextscale.bench.generation docstring).
"""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from nextscale.commands.bench import bench

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str]) -> None:
    if "--json" not in argv and not any(a.startswith("--json=") for a in argv):
        argv = [*argv, "--json", str(RESULTS / "generation_speed_{device}.json")]
    if "--markdown" not in argv and not any(a.startswith("--markdown=") for a in argv):
        argv = [*argv, "--markdown", str(RESULTS / "generation_speed_{device}.md")]
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(bench)
    from nextscale.errors import NextscaleError

    try:
        app(argv, standalone_mode=True)
    except NextscaleError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
