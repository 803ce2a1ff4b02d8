"""SAT (16 quadratic scales, 455 tokens/s) vs single-scale RVQ (10 x 75 = 750 tokens/s) at equal budget.

    python benchmarks/tokenizer_quality.py                      # CPU, small budget (< 10 min on 2 cores)
    python benchmarks/tokenizer_quality.py --device cuda --steps 20000 --batch 32 --n-train 20000

Both contenders share everything but the quantizer (SEANet size, latent, codebook size, optimizer,
steps, batch, seed, synthetic training corpus) and are trained through `train_tokenizer`; they are
then scored by `evaluate_tokenizer` on held-out synthetic clips (another corpus seed): multi-resolution
mel distance, STFT distance, SI-SDR, per-scale codebook usage, plus encode / decode wall time per
second of audio (batch 1, median of repeats). Writes OUT/tokenizer_quality_<device>.json (machine,
versions, settings, results) and the table as .md, which is also printed.

On a shared CPU, torch's default of one intra-op thread per core makes every small kernel wait for
a descheduled sibling thread (a SAT step goes from ~0.4 s to 1-15 s), so CPU runs use `--threads 1`
unless told otherwise.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

RESULTS = Path(__file__).resolve().parent / "results"
EVAL_SEED = 2_000_003          # the held-out corpus: a seed no training run draws from
SIZES: dict[str, dict[str, Any]] = {
    # the demo SAT's SEANet (CPU budget) and the d128 model the AR uses (GPU budget)
    "tiny": dict(n_filters=8, dimension=32, lstm_layers=1, latent_dim=16, codebook_size=128, kmeans_iters=10),
    "d128": dict(n_filters=32, dimension=128, lstm_layers=2, latent_dim=128, codebook_size=1024, kmeans_iters=50),
}
CONTENDERS: dict[str, dict[str, Any]] = {
    "SAT-455": dict(schedule="quadratic", num_scales=16, phi="partial"),
    "RVQ-750": dict(schedule="rvq", num_scales=10, phi="none"),
}


@dataclasses.dataclass
class Settings:
    device: str = "cpu"
    size: str = "tiny"
    steps: int = 400
    batch: int = 8
    n_train: int = 512
    n_eval: int = 32
    lr: float = 1e-3
    adversarial: bool = False
    threads: int = 0
    seed: int = 0
    timing_repeats: int = 5


def train_config(name: str, s: Settings) -> dict[str, Any]:
    """The train-tokenizer config of one contender; only the `model` quantizer keys differ."""
    model = dict(sample_rate=24000, clip_seconds=1.0, ratios=[8, 5, 4, 2], n_residual_layers=1,
                 **SIZES[s.size], **CONTENDERS[name])
    return {
        "model": model,
        "data": {"source": "synth", "n": s.n_train, "seed": s.seed, "heldout_n": 1},
        "optim": {"lr": s.lr, "warmup_steps": max(1, s.steps // 20)},
        "train": {"steps": s.steps, "batch_size": s.batch, "device": s.device, "seed": s.seed,
                  "adversarial": s.adversarial, "eval_every": 0, "ckpt_every": s.steps, "keep_last": 1,
                  "log_every": max(1, s.steps // 20), "tensorboard": False},
    }


def coding_speed(model_dir: Path, s: Settings) -> dict[str, float]:
    """Median encode and decode wall seconds per second of audio, batch 1."""
    import torch

    from nextscale.eval.bench_measure import summarize, time_repeats
    from nextscale.tokenizer.model import SAT

    device = torch.device(s.device)
    sat = SAT.from_pretrained(str(model_dir), map_location=device).eval()
    wav = 0.1 * torch.randn(1, 1, sat.clip_samples, generator=torch.Generator().manual_seed(s.seed)).to(device)
    seconds = sat.clip_samples / sat.sample_rate
    with torch.inference_mode():
        codes = sat.encode(wav)
        enc = time_repeats(lambda: sat.encode(wav), device, warmup=1, repeats=s.timing_repeats)
        dec = time_repeats(lambda: sat.decode(codes), device, warmup=1, repeats=s.timing_repeats)
    return {"encode_s_per_audio_s": summarize(enc)["median_s"] / seconds,
            "decode_s_per_audio_s": summarize(dec)["median_s"] / seconds}


def run_contender(name: str, s: Settings, runs: Path, progress: bool) -> dict[str, Any]:
    from nextscale.eval.recon_run import evaluate_tokenizer
    from nextscale.tokenizer.model import SAT
    from nextscale.train.tokenizer import load_sat_train_config, train_tokenizer

    cfg = load_sat_train_config(train_config(name, s))
    cfg.train.progress = progress
    run = runs / name
    t0 = time.perf_counter()
    fit = train_tokenizer(cfg, run)
    train_s = time.perf_counter() - t0
    model_dir = run / "tokenizer"
    sat = SAT.from_pretrained(str(model_dir))
    scores = evaluate_tokenizer(model_dir, "synth", n=s.n_eval, seed=EVAL_SEED, device=s.device, progress=progress)
    return {
        "name": name, "schedule": cfg.model.schedule, "phi": cfg.model.phi, "scales": sat.scales,
        "tokens_per_second": sat.num_tokens / cfg.model.clip_seconds,
        "parameters": sum(p.numel() for p in sat.parameters()),
        "train": {"steps": fit.step, "seconds": train_s,
                  "final": {k: v for k, v in fit.metrics.items() if isinstance(v, (int, float))}},
        "heldout": {k: scores[k] for k in ("n", "mel_distance", "stft_distance", "si_sdr", "mean_usage",
                                           "mean_perplexity")},
        "per_scale": scores["per_scale"],
        **coding_speed(model_dir, s),
    }


def markdown_table(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [f"Tokenizer quality on held-out synthetic clips ({report['machine']['device']}, size {s['size']}, "
             f"{s['steps']} steps x batch {s['batch']}, {s['n_train']} training clips, "
             f"{report['results'][0]['heldout']['n']} held-out clips)", "",
             "| tokenizer | tokens/s | mel dist ↓ | STFT dist ↓ | SI-SDR dB ↑ | codebook usage | encode s/s | decode s/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        h = r["heldout"]
        lines.append(f"| {r['name']} | {r['tokens_per_second']:.0f} | {h['mel_distance']:.3f} | "
                     f"{h['stft_distance']:.3f} | {h['si_sdr']:.2f} | {h['mean_usage']:.1%} | "
                     f"{r['encode_s_per_audio_s']:.4f} | {r['decode_s_per_audio_s']:.4f} |")
    return "\n".join(lines) + "\n"


def run_benchmark(s: Settings, out: Path, runs: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Train and score both contenders; training runs go to `runs` (default: a temporary folder)."""
    import tempfile

    import torch

    from nextscale.checkpoint import atomic_write_json
    from nextscale.eval.bench_measure import machine_info, versions
    from nextscale.runtime import resolve_device

    device = resolve_device(s.device)
    if s.threads:
        torch.set_num_threads(s.threads)
    with tempfile.TemporaryDirectory(prefix="tokenizer_quality_") as tmp:
        results = [run_contender(name, s, Path(runs or tmp), progress) for name in CONTENDERS]
    report = {"benchmark": "tokenizer_quality", "machine": {"device": device.type, **machine_info(device)},
              "versions": versions(), "settings": dataclasses.asdict(s), "eval_seed": EVAL_SEED, "results": results}
    atomic_write_json(out / f"tokenizer_quality_{device.type}.json", report)
    table = markdown_table(report)
    (out / f"tokenizer_quality_{device.type}.md").write_text(table)
    print(table)
    return report


def main(device: str = typer.Option("cpu", help="cpu or cuda"),
         steps: int = typer.Option(0, min=0, help="training steps per contender (0: 400 on CPU, 20000 on CUDA)"),
         batch: int = typer.Option(0, min=0, help="batch size (0: 8 on CPU, 32 on CUDA)"),
         n_train: int = typer.Option(0, "--n-train", min=0, help="synthetic training clips (0: 512 CPU, 20000 CUDA)"),
         n_eval: int = typer.Option(32, "--n-eval", min=1, help="held-out clips scored"),
         size: str = typer.Option("", help="SEANet/codebook size: tiny or d128 (default: tiny on CPU, d128 on CUDA)"),
         adversarial: bool = typer.Option(None, help="train with the STFT discriminator (default: only on CUDA)"),
         threads: int = typer.Option(-1, min=-1, help="torch CPU threads (-1: 1 on CPU, torch default on CUDA)"),
         seed: int = typer.Option(0, min=0),
         out: Path = typer.Option(RESULTS, help="folder for the JSON and the table"),
         runs: Path = typer.Option(None, help="keep the training runs (checkpoints, metrics) here"),
         progress: bool = typer.Option(True, help="progress bars")) -> None:
    """Train SAT-455 and RVQ-750 with the same budget and compare their reconstructions."""
    from nextscale.errors import ConfigError

    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device: expected cpu or cuda, got {device!r}")
    cuda = device == "cuda"
    size = size or ("d128" if cuda else "tiny")
    if size not in SIZES:
        raise ConfigError(f"--size: expected one of {sorted(SIZES)}, got {size!r}")
    s = Settings(device=device, size=size, steps=steps or (20000 if cuda else 400), batch=batch or (32 if cuda else 8),
                 n_train=n_train or (20000 if cuda else 512), n_eval=n_eval,
                 adversarial=cuda if adversarial is None else adversarial,
                 threads=(0 if cuda else 1) if threads < 0 else threads, seed=seed)
    run_benchmark(s, out, runs, progress)


if __name__ == "__main__":
    from nextscale.errors import NextscaleError

    try:
        typer.run(main)
    except NextscaleError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
