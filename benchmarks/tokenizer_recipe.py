"""Which SAT recipe gets the most out of a fixed wall-clock budget? Variants trained and scored alike.

    python benchmarks/tokenizer_recipe.py --seconds 240 --variants fourier,seanet       # named variants
    python benchmarks/tokenizer_recipe.py --seconds 240 --variant wide model.convnext_width=384
    python benchmarks/tokenizer_recipe.py --base demo --steps 1000 --variant 'b8 train.batch_size=8'

Every variant starts from the demo's synthetic training corpus and tokenizer (8 quadratic scales,
234 tokens/s, 128-entry codebooks, latent 16) and differs only by `--set`-style overrides. Each
gets the same wall-clock budget: a few timed steps fix its step count (so the LR schedule ends on
time), then it trains through `train_tokenizer` and is scored on the demo's held-out clips (another
seed): mel / STFT distance, SI-SDR, codebook usage, and what the demo reports, the `synth`
classifier's accuracy and FAD on the round trip. Results accumulate in
OUT/tokenizer_recipe_<device>.json (one entry per variant name; re-running skips finished ones).
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import typer

RESULTS = Path(__file__).resolve().parent / "results"
WORK = Path(__file__).resolve().parent / "runs" / "recipe"
HELDOUT_SEED = 7_777          # the demo's held-out seed: figures compare with the demo's
N_HELDOUT = 120

BASE: dict[str, Any] = {
    "model": dict(sample_rate=24000, clip_seconds=1.0, codec="fourier", dimension=64, latent_dim=16,
                  codebook_size=128, schedule="quadratic", num_scales=8, phi="partial", phi_count=3, kmeans_iters=10,
                  n_filters=8, lstm_layers=1),
    "data": {"source": "synth", "n": 2400, "seed": 0},
    "optim": {"lr": 1e-3},
    "loss": {},
    "train": {"batch_size": 8, "adversarial": False, "eval_every": 0, "keep_last": 1, "tensorboard": False,
              "seed": 0},
}
# name -> overrides of BASE (the `--set` syntax of the training commands). Measured in this order:
# first the codec and the phase model, then the rest on top of the cumulative phase that won.
CUMULATIVE = ["model.fourier_phase=cumulative"]
VARIANTS: dict[str, list[str]] = {
    "seanet": ["model.codec=seanet", "model.dimension=32"],
    "fourier": [],
    "fourier-mel6": ["loss.mel_min_exponent=6"],
    "fourier-cumphase": CUMULATIVE,
    "cum-lr3e-3": CUMULATIVE + ["optim.lr=0.003"],
    "cum-lr3e-4": CUMULATIVE + ["optim.lr=0.0003"],
    "cum-b4": CUMULATIVE + ["train.batch_size=4"],
    "cum-b16": CUMULATIVE + ["train.batch_size=16"],
    "cum-betas": CUMULATIVE + ["optim.betas=[0.9,0.99]"],
    "cum-w128": CUMULATIVE + ["model.convnext_width=128"],
    "cum-w384": CUMULATIVE + ["model.convnext_width=384"],
    "cum-l8": CUMULATIVE + ["model.convnext_layers=8"],
    "cum-notime": CUMULATIVE + ["loss.time_weight=0"],
    "cum-cb512": CUMULATIVE + ["model.codebook_size=512"],
    "cum-lat32": CUMULATIVE + ["model.latent_dim=32"],
    "cum-adv": CUMULATIVE + ["train.adversarial=true"],
}


def demo_base() -> dict[str, Any]:
    """The demo's tokenizer stage as it stands (default preset), for `--base demo`; steps, warmup and
    logging are set per variant by `train_config`."""
    from nextscale.demo import Demo, tokenizer_stage_config

    data = tokenizer_stage_config(Demo(WORK, "default", progress=False))
    data["optim"].pop("warmup_steps")
    data["train"] = {k: v for k, v in data["train"].items()         # variants are sized by steps (probe or --steps)
                     if k not in ("steps", "log_every", "ckpt_every", "progress", "time_budget_s")}
    return data


def resolve_base(name: str, device: str) -> tuple[dict[str, Any], int, str]:
    """`--base` -> (base config, held-out clips, results file name)."""
    from nextscale.errors import ConfigError

    if name == "legacy":
        return BASE, N_HELDOUT, f"tokenizer_recipe_{device}.json"
    if name == "demo":
        return demo_base(), 240, f"tokenizer_recipe_demo_{device}.json"
    raise ConfigError(f"--base: expected 'legacy' or 'demo', got {name!r}")


def train_config(overrides: list[str], steps: int, device: str, base: dict[str, Any] | None = None) -> dict[str, Any]:
    from nextscale.config import apply_overrides
    from nextscale.train.tokenizer import SATTrainConfig

    data = apply_overrides(copy.deepcopy(base or BASE), overrides, SATTrainConfig)
    data["train"] |= {"steps": steps, "device": device, "ckpt_every": steps, "log_every": max(1, steps // 50),
                      "progress": True}
    data["optim"].setdefault("warmup_steps", max(1, steps // 20))
    return data


def prepare(work: Path, device: str, n_heldout: int = N_HELDOUT) -> tuple[Path, Path]:
    """The held-out clips and the synth classifier, made once per work folder."""
    from nextscale.eval.train_classifier import heldout_and_classifier

    return heldout_and_classifier(work, n_heldout, HELDOUT_SEED, device)


def score(model_dir: Path, manifest: Path, classifier: Path, work: Path, device: str,
          n_heldout: int = N_HELDOUT) -> dict[str, Any]:
    import torch

    from nextscale.bench.measure import summarize, time_repeats
    from nextscale.eval.embeddings import get_embedding
    from nextscale.eval.evaluate import evaluate_sets
    from nextscale.eval.recon_run import evaluate_tokenizer, write_reconstructions
    from nextscale.tokenizer.model import SAT

    sat = SAT.from_pretrained(model_dir, map_location=device).eval()
    recon = evaluate_tokenizer(model_dir, manifest, n=n_heldout, device=device, progress=False)
    folder = write_reconstructions(sat, manifest, work / "reconstructed")
    classes = evaluate_sets(manifest, folder, get_embedding("synth", classifier=classifier), progress=False)
    with torch.inference_mode():
        codes = sat.encode(torch.zeros(1, 1, sat.clip_samples, device=device))
        decode = summarize(time_repeats(lambda: sat.decode(codes), torch.device(device), warmup=1, repeats=5))
    return {"mel_distance": recon["mel_distance"], "stft_distance": recon["stft_distance"], "si_sdr": recon["si_sdr"],
            "level_db": recon["level_db"],
            "mean_usage": recon["mean_usage"], "roundtrip_accuracy": classes["accuracy_generated"],
            "roundtrip_fad": classes["fad"], "roundtrip_accuracy_by_class": classes["accuracy_by_class_generated"],
            "decode_s_per_clip": decode["median_s"],
            "parameters": sum(p.numel() for p in sat.parameters())}


def run_variant(name: str, overrides: list[str], seconds: float, work: Path, device: str,
                manifest: Path, classifier: Path, fixed_steps: int = 0, base: dict[str, Any] | None = None,
                n_heldout: int = N_HELDOUT) -> dict[str, Any]:
    from nextscale.train.budget import sat_seconds_per_step, steps_for_budget
    from nextscale.train.tokenizer import load_sat_train_config, train_tokenizer

    if fixed_steps:
        per_step, steps = None, fixed_steps
        print(f"[{name}] {steps} steps", flush=True)
    else:
        per_step = sat_seconds_per_step(train_config(overrides, 1000, device, base))
        steps = steps_for_budget(seconds, per_step)
        print(f"[{name}] {per_step:.3f} s/step -> {steps} steps for {seconds:.0f} s", flush=True)
    run = work / name
    cfg = load_sat_train_config(train_config(overrides, steps, device, base))
    start = time.perf_counter()
    fit = train_tokenizer(cfg, run, resume=(run / "checkpoints").is_dir())
    train_s = time.perf_counter() - start
    final = {k: v for k, v in fit.metrics.items() if isinstance(v, (int, float))}
    return {"name": name, "overrides": overrides, "budget_s": seconds, "steps": steps, "probe_s_per_step": per_step,
            "train_s": train_s, "final_train_metrics": final,
            **score(run / "tokenizer", manifest, classifier, run, device, n_heldout)}


def main(variants: str = typer.Option("fourier,seanet", help="comma-separated names of VARIANTS"),
         variant: list[str] = typer.Option(None, help="an ad-hoc variant: NAME then KEY=VALUE overrides, "
                                                     "e.g. --variant 'wide model.convnext_width=384'"),
         seconds: float = typer.Option(240.0, help="wall-clock training budget per variant"),
         steps: int = typer.Option(0, help="train every variant this many steps instead of for --seconds "
                                           "(equal steps, not equal time: for comparing losses at one cost)"),
         threads: int = typer.Option(2, help="torch intra-op threads"),
         device: str = typer.Option("cpu"),
         work: Path = typer.Option(WORK, help="training runs and reconstructions"),
         out: Path = typer.Option(RESULTS),
         rerun: bool = typer.Option(False, help="re-train variants already in the results"),
         note: str = typer.Option("", help="stored with each result (e.g. what changed in the code since)"),
         suffix: str = typer.Option("", help="appended to the variant names in the results (e.g. after a fix)"),
         base: str = typer.Option("legacy", help="'legacy': the BASE of this file (the first rounds); 'demo': the "
                                                 "demo's tokenizer stage as it stands, scored on the demo's 240 "
                                                 "held-out clips, results in tokenizer_recipe_demo_<device>.json")) -> None:
    """Train and score tokenizer recipes at one wall-clock budget; accumulate the results."""
    import torch

    from nextscale.io import atomic_write_json, read_json
    from nextscale.errors import ConfigError
    from nextscale.bench.measure import machine_info, versions

    torch.set_num_threads(threads)
    todo = {}
    for name in filter(None, variants.split(",")):
        if name not in VARIANTS:
            raise ConfigError(f"--variants: unknown {name!r}; known: {', '.join(VARIANTS)}")
        todo[name] = VARIANTS[name]
    for spec in variant or []:
        name, *overrides = spec.split()
        todo[name] = overrides
    base_config, n_heldout, results_name = resolve_base(base, device)
    path = out / results_name
    if base == "demo":
        work = work.with_name(work.name + "_demo")
    report = (read_json(path, ConfigError) if path.is_file()
              else {"benchmark": "tokenizer_recipe", "base": base_config, "results": []})
    report |= {"machine": {"device": device, "threads": threads, **machine_info(torch.device(device))},
               "versions": versions()}
    manifest, classifier = prepare(work, device, n_heldout)
    todo = {name + suffix: overrides for name, overrides in todo.items()}
    for name, overrides in todo.items():
        budget = f"{steps} steps" if steps else seconds
        done = [r for r in report["results"] if r["name"] == name and r["budget_s"] == budget]
        if done and not rerun:
            print(f"[{name}] already measured: {done[0]['roundtrip_accuracy']:.1%}, mel {done[0]['mel_distance']:.3f}")
            continue
        if (work / name).exists() and rerun:
            import shutil

            shutil.rmtree(work / name)
        result = run_variant(name, overrides, seconds, work, device, manifest, classifier, steps, base_config,
                             n_heldout) | {"note": note}
        result["budget_s"] = budget
        report["results"] = [r for r in report["results"] if not (r["name"] == name and r["budget_s"] == budget)]
        report["results"].append(result)
        atomic_write_json(path, report)
        print(f"[{name}] steps {result['steps']}, round trip accuracy {result['roundtrip_accuracy']:.1%}, "
              f"FAD {result['roundtrip_fad']:.1f}, mel {result['mel_distance']:.3f}, SI-SDR {result['si_sdr']:.1f}",
              flush=True)


if __name__ == "__main__":
    from nextscale.cli import run_script

    run_script(main)
