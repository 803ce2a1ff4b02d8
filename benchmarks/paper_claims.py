"""The paper's comparisons side by side, re-runnable: AAR vs next-token, schedules, Phi sharing, audio
types, codebook utilisation and scale-boundary coherence (`nextscale.bench.paper` says what each is).

    python benchmarks/paper_claims.py                        # --budget small: 2 CPU cores, about 90 min
    python benchmarks/paper_claims.py --device cuda --budget full   # the paper-size GPU recipe

Resumable: run the same command again and finished stages are reused, interrupted training resumes
from its checkpoint. After every stage RESULTS/paper_claims_<budget>_<device>.json (machine, versions,
settings, every figure so far) and its Markdown tables (.md) are rewritten; at the end OUT/report/
index.html has audio of each contender and a spectrogram grid lands beside the JSON.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

RESULTS = Path(__file__).resolve().parent / "results"
RECORDED = Path(__file__).resolve().parent / "data" / "recorded"     # benchmarks/recorded_corpus.py


def write_results(run, path: Path) -> None:
    """The JSON and Markdown of everything finished so far."""
    import torch

    from nextscale.bench.measure import machine_info, versions
    from nextscale.bench.paper_table import collect, markdown
    from nextscale.demo import SAMPLING
    from nextscale.io import atomic_write_bytes, atomic_write_json

    figures = collect(run)
    planned = [name for name, _ in run.plan()]
    atomic_write_json(path, {
        "benchmark": "paper_claims", "budget": run.budget.name, "device": run.device,
        "machine": machine_info(torch.device(run.device)), "versions": versions(), "threads": torch.get_num_threads(),
        "settings": dataclasses.asdict(run.budget), "sampling": SAMPLING,
        "stages_done": [s for s in planned if run.done(s)], "stages_planned": len(planned),
        "stage_seconds": run.stage_seconds(), "stage_seconds_total": round(sum(run.stage_seconds().values()), 1),
        **figures})
    atomic_write_bytes(path.with_suffix(".md"), (f"# Paper comparisons ({run.budget.name} budget, {run.device})\n\n"
                                                 + markdown(figures)).encode("utf-8"))


def spectrogram_grid(run, path: Path) -> None:
    """One real clip per class beside its SAT / RVQ round trips and a seed-0 sample of each contender."""
    from nextscale.audio import load_audio
    from nextscale.bench.paper import GENERATION_TRIO, SEED, ar_run_name
    from nextscale.bench.paper_table import LABELS, LISTEN_CLASSES
    from nextscale.plots import plot_comparison

    heldout = Path(run.results["heldout"]["manifest"]).parent
    columns = ["real", "SAT round trip", "RVQ round trip"] + [LABELS[m] for m, _ in GENERATION_TRIO]
    rows = []
    for cls in LISTEN_CLASSES:
        real = sorted(heldout.glob(f"wav/{cls}_*.wav"))[:1]
        files = real + [run.out / "samples" / f"recon_{t}" / real[0].name for t in ("quadratic", "rvq")] if real else []
        files += [run.out / "samples" / ("gen" + ar_run_name(m, t, SEED)[2:]) / f"{cls}_00.wav" for m, t in GENERATION_TRIO]
        if len(files) == len(columns) and all(f.is_file() for f in files):
            rows.append((cls, [load_audio(f)[0] for f in files]))
    if rows:
        plot_comparison(rows, columns, 24000, path, title="paper comparisons: real, round trips, samples (seed 0)")


def main(device: str = typer.Option("cpu", help="cpu or cuda"),
         budget: str = typer.Option("small", help="small (2 CPU cores, ~90 min), full (GPU, paper sizes), smoke"),
         out: Path = typer.Option(None, help="work directory (default: benchmarks/runs/paper_<budget>)"),
         results: Path = typer.Option(RESULTS, help="where the JSON, Markdown and PNG go"),
         recorded: Path = typer.Option(RECORDED, help="recorded corpus (train.csv + heldout.csv) for the per-type "
                                                      "comparison; skipped when absent"),
         threads: int = typer.Option(0, help="torch intra-op threads (0: leave torch's default)"),
         progress: bool = typer.Option(True, help="progress bars")) -> None:
    import torch

    from nextscale.bench.paper import PaperRun
    from nextscale.bench.paper_table import write_listening_page

    if threads:
        torch.set_num_threads(threads)
    run = PaperRun(out or Path(__file__).resolve().parent / "runs" / f"paper_{budget}", budget=budget,
                   device=device, progress=progress, recorded=recorded)
    path = results / f"paper_claims_{budget}_{device}.json"
    if not run.recorded_manifests():
        print(f"no recorded corpus at {recorded}: the per-audio-type comparison is skipped "
              "(python benchmarks/recorded_corpus.py builds it)")
    run.run(after_stage=lambda r: write_results(r, path))
    write_results(run, path)
    page = write_listening_page(run)
    spectrogram_grid(run, results / f"paper_claims_{budget}_{device}_spectrograms.png")
    print(f"wrote {path} and {path.with_suffix('.md')}; listening page {page}")


if __name__ == "__main__":
    from nextscale.cli import run_script

    run_script(main)
