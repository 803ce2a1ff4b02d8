"""Per-second generation cost at 1 s and 10 s: next-scale AAR vs the next-token baselines, window by window.

    python benchmarks/window_speed.py                      # demo size (depth 2, width 128), 1 thread, ~3 min on CPU
    python benchmarks/window_speed.py --depth tiny --seconds 1,2 --repeats 1 --tag _tiny

Every model gets the same sliding context (16 context tokens of the joined latent before each window,
`nextscale.bench.window_speed`), the same windows (crossfaded over the default 12 of 75 frames unless
`--overlap`) and one decode, with random weights. Writes RESULTS/window_speed_<device><tag>.json.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

RESULTS = Path(__file__).resolve().parent / "results"


def main(depth: str = typer.Option("2", help="'tiny' or the paper family's depth (width 64 x depth); the demo's is 2"),
         seconds: str = typer.Option("1,10", help="comma-separated clip lengths"),
         overlap: Optional[int] = typer.Option(None, help="latent frames neighbouring windows share (default: 12 of 75)"),
         context_tokens: int = typer.Option(16), batch: int = typer.Option(1), repeats: int = typer.Option(3),
         threads: int = typer.Option(1, help="torch intra-op threads (1: the machine may be shared)"),
         device: str = typer.Option("cpu"), out: Path = typer.Option(RESULTS), tag: str = typer.Option("")) -> None:
    """Time each model making clips of each length window by window; write the JSON and print a table."""
    from nextscale.bench.window_speed import WindowSpeedSettings, run_window_speed
    from nextscale.io import atomic_write_json

    settings = WindowSpeedSettings(depth=depth, seconds=tuple(float(s) for s in seconds.split(",")), overlap=overlap,
                                   context_tokens=context_tokens, batch=batch, repeats=repeats, threads=threads,
                                   device=device)
    report = run_window_speed(settings)
    report["note"] = (f"torch.set_num_threads({threads}) for the run; random weights; each time the fastest of "
                      f"{repeats} interleaved turns, generation and decoding of batch {batch}")
    path = out / f"window_speed_{device}{tag}.json"
    atomic_write_json(path, report)
    for row in report["rows"]:
        what = "with decoding" if row["decode"] else "AR only"
        print(f"{row['model']:>17} {row['seconds']:>5g} s, {what:>13}: {row['windows']:>2} windows, {row['steps']:>5} "
              f"steps, {row['s_per_audio_s']:.4f} s per s of audio ({row['vs_shortest']:.2f}x its shortest)")
    print(f"baselines over next-scale, per second of audio: {report['ratios']}\nwrote {path}")


if __name__ == "__main__":
    from nextscale.cli import run_script

    run_script(main)
