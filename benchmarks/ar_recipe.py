"""Which AAR recipe learns the most in the demo's AR budget? Variants trained and scored alike.

    python benchmarks/ar_recipe.py DEMO_OUT --seconds 270 --variant 'b32' --variant 'b16 train.batch_size=16'

Every variant starts from the AR stage of a finished `nextscale demo` folder (its token cache, model,
optimiser and seed) and differs only by `--set`-style overrides. Each gets the same wall-clock budget:
a few timed steps fix its step count, so warmup and cosine decay end on time, then it trains through
`train_ar`. It is scored as the demo scores its samples (the demo's sampling, classifier and held-out
clips) on `--per-class` samples per class from another seed than the demo's (`--steps N` trains every variant N
steps instead, for variants whose steps cost the same: a probe on a shared VM can misread by 40 %). Results accumulate in
OUT/ar_recipe_demo_<device>.json, one entry per variant name and budget (with its demo folder and machine);
finished ones are skipped.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

RESULTS = Path(__file__).resolve().parent / "results"
WORK = Path(__file__).resolve().parent / "runs" / "ar_recipe"
PER_RUN = ("steps", "log_every", "ckpt_every", "progress", "time_budget_s")   # set per variant (sized by steps)


def demo_base(demo: Path) -> dict[str, Any]:
    """The AR stage config the demo trained with, less what each variant sets itself."""
    from nextscale.errors import DataError

    path = demo / "ar" / "config.json"
    if not path.is_file() or not (demo / "stages" / "corpus.json").is_file():
        raise DataError(f"{demo}: not a finished demo folder (no ar/config.json or stages/corpus.json)")
    base = json.loads(path.read_text())
    base["optim"].pop("warmup_steps", None)
    base["train"] = {k: v for k, v in base["train"].items() if k not in PER_RUN} | {"eval_every": 0}
    return base


def train_config(base: dict[str, Any], overrides: list[str], steps: int) -> dict[str, Any]:
    import copy

    from nextscale.config import apply_overrides
    from nextscale.train.ar import ARTrainConfig

    data = apply_overrides(copy.deepcopy(base), overrides, ARTrainConfig)
    data["train"] |= {"steps": steps, "ckpt_every": steps, "log_every": max(1, steps // 50), "progress": True}
    data["optim"].setdefault("warmup_steps", max(1, steps // 20))     # the demo's warmup rule
    return data


def run_variant(name: str, overrides: list[str], seconds: float, demo: Path, work: Path, per_class: int,
                seed: int, fixed_steps: int = 0) -> dict[str, Any]:
    from nextscale.demo import SAMPLING, score_samples
    from nextscale.eval.embeddings import get_embedding
    from nextscale.pipeline import Pipeline
    from nextscale.train.ar import load_ar_train_config, train_ar
    from nextscale.train.budget import ar_seconds_per_step, steps_for_budget

    base = demo_base(demo)
    if fixed_steps:
        per_step, steps = None, fixed_steps
        print(f"[{name}] {steps} steps (fixed)", flush=True)
    else:
        per_step = ar_seconds_per_step(train_config(base, overrides, 1000))
        steps = steps_for_budget(seconds, per_step, multiple=100)      # rounded as the demo rounds
        print(f"[{name}] {per_step:.3f} s/step -> {steps} steps for {seconds:.0f} s", flush=True)
    run = work / name
    start = time.perf_counter()
    fit = train_ar(load_ar_train_config(train_config(base, overrides, steps)), run,
                   resume=(run / "checkpoints").is_dir())
    train_s = time.perf_counter() - start
    real = json.loads((demo / "stages" / "corpus.json").read_text())["result"]["heldout_manifest"]
    pipe = Pipeline.from_pretrained(run / "pipeline", device="cpu")
    backend = get_embedding("synth", classifier=str(demo / "classifier"))
    scores = score_samples(pipe, backend, real, per_class, seed, **SAMPLING)
    final = {k: v for k, v in fit.metrics.items() if isinstance(v, (int, float)) and "/" not in k}
    return {"name": name, "overrides": overrides, "steps": steps, "probe_s_per_step": per_step,
            "train_s": train_s, "final_train_metrics": final, "sampling": SAMPLING, "seed": seed, **scores}


def main(demo: Path = typer.Argument(..., help="a finished `nextscale demo` output folder (tokens, classifier)"),
         variant: list[str] = typer.Option(..., help="NAME then KEY=VALUE overrides of the demo's AR config, "
                                                     "e.g. --variant 'b16 train.batch_size=16'"),
         seconds: float = typer.Option(270.0, help="wall-clock training budget per variant (the demo's AR budget)"),
         steps: int = typer.Option(0, help="train every variant this many steps instead (equal steps: for variants "
                                           "whose step costs the same, without the noise of a shared VM's probe)"),
         per_class: int = typer.Option(20, help="samples generated per class"),
         seed: int = typer.Option(1234, help="generation seed (the demo's own is 0)"),
         threads: int = typer.Option(2, help="torch intra-op threads"),
         work: Path = typer.Option(WORK, help="training runs"),
         out: Path = typer.Option(RESULTS),
         rerun: bool = typer.Option(False, help="re-train variants already in the results"),
         note: str = typer.Option("", help="stored with each result")) -> None:
    """Train and score AR recipes at one wall-clock budget; accumulate the results."""
    import shutil

    import torch

    from nextscale.bench.measure import machine_info, versions
    from nextscale.errors import ConfigError
    from nextscale.io import atomic_write_json, read_json

    if steps < 0:
        raise ConfigError(f"--steps: a step count >= 1 (or 0 for the --seconds budget), got {steps}")
    torch.set_num_threads(threads)
    path = out / "ar_recipe_demo_cpu.json"
    report = (read_json(path, ConfigError) if path.is_file()
              else {"benchmark": "ar_recipe", "demo": str(demo), "base": demo_base(demo), "results": []})
    for earlier in report["results"]:          # entries from before results named their own machine and demo
        earlier.setdefault("machine", report.get("machine")); earlier.setdefault("demo", report.get("demo"))
    machine = {"threads": threads, **machine_info(torch.device("cpu"))}
    report |= {"machine": machine, "versions": versions()}
    for spec in variant:
        name, *overrides = spec.split()
        budget = f"{steps} steps" if steps else seconds
        done = [r for r in report["results"] if r["name"] == name and r["budget_s"] == budget]
        if done and not rerun:
            print(f"[{name}] already measured: {done[0]['accuracy']:.1%}, FAD {done[0]['fad']:.1f}")
            continue
        if (work / name).exists():
            shutil.rmtree(work / name)          # a variant always trains from scratch to its own schedule
        result = run_variant(name, overrides, seconds, demo, work, per_class, seed, steps) | {
            "budget_s": budget, "note": note, "demo": str(demo), "machine": machine}
        report["results"] = [r for r in report["results"] if not (r["name"] == name and r["budget_s"] == budget)]
        report["results"].append(result)
        atomic_write_json(path, report)
        print(f"[{name}] {result['steps']} steps, loss {result['final_train_metrics'].get('loss', float('nan')):.3f}: "
              f"accuracy {result['accuracy']:.1%}, FAD {result['fad']:.1f}", flush=True)


if __name__ == "__main__":
    from nextscale.cli import run_script

    run_script(main)
