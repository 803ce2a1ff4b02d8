"""Learned tokenizers at an equal wall-clock training budget, against Opus at ~6 kbps as the floor to beat.

    python benchmarks/tokenizer_quality.py                          # CPU: 240 s per tokenizer, synthetic clips
    python benchmarks/tokenizer_quality.py --data recorded          # train / score on benchmarks/data/recorded
    python benchmarks/tokenizer_quality.py --device cuda            # d128 size, 1800 s per tokenizer
    python benchmarks/tokenizer_quality.py --runs DIR               # keep the runs; a rerun reuses contenders already finished there

Contenders, all at 75 latent frames per second and sharing latent size, codebook size, optimizer,
batch, seed and training corpus:
- `SAT-455 (SEANet)`: 16 quadratic scales (455 tokens/s) on the published SEANet codec;
- `SAT-455 (Fourier)`: the same quantizer on the STFT + ConvNeXt codec (`model.codec=fourier`);
- `RVQ-750 (Fourier)`: single-scale residual VQ, 10 levels x 75 = 750 tokens/s, on the Fourier codec;
- `Opus ~6 kbps`: libopus through libsndfile, no training. A learned tokenizer that loses to a
  speech codec at a similar bitrate has not earned its place; this row says how far off it is.

Budgets are wall-clock, not steps: the codecs differ in cost per step, and "which is better for 4
minutes of training" is the question a user with a small machine asks. `sat_seconds_per_step` times a
few real steps of each contender, which fixes its step count (so its LR schedule ends on time); `--steps`
overrides that with one fixed count for all. Timing needs an otherwise idle machine: another heavy job
on the same cores skews the probe and so the step counts.

Scores, per held-out clip and averaged (overall, and per kind of sound with `--data recorded`):
multi-resolution mel distance, STFT distance and SI-SDR, all through `nextscale.eval.recon.score_pair`,
so the Opus figures compare with the learned ones; codebook usage; bitrate; encode / decode wall time
per second of audio (batch 1, one thread, median of repeats); parameters; steps and training seconds.

Opus bitrate: libsndfile has no bitrate setting for Opus; it maps `compression_level` c in [0, 1] to a
VBR target of about 6 + 250 (1 - c) kbps (measured at 24 kHz on 10 s of tone + noise: c = 0 -> 259,
0.5 -> 133, 0.9 -> 31, 1.0 -> 5.9 kbps), so ~6 kbps is c = 1.0, the encoder's floor (6.5 kbps on
average over 40 held-out synthetic clips, 3.5 to 10 kbps per clip: VBR follows the content). An
Ogg/Opus file also carries ~870 bytes of headers, 7 kbps on a 1 s clip, so the reported bitrate is the
payload: file bytes minus those of an empty file written alike (the file bitrate is in the JSON too).

Writes OUT/tokenizer_quality_<device>[_recorded].json (machine, versions, settings, per-clip scores)
and the tables as .md, which are also printed; `_spectrograms.png` and a listening page, `_listen/index.html`
(players for one held-out clip per kind through every contender, with its mel distance). Git ignores the
page: with `--data recorded` it holds excerpts of the packaged recordings.
"""
from __future__ import annotations

import csv
import dataclasses
import inspect
import io
import itertools
import math
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import typer

RESULTS = Path(__file__).resolve().parent / "results"
RECORDED = Path(__file__).resolve().parent / "data" / "recorded"   # made by benchmarks/recorded_corpus.py
EVAL_SEED = 2_000_003          # the held-out synthetic corpus: a seed no training run draws from
SAMPLE_RATE, CLIP_SECONDS = 24000, 1.0
SIZES: dict[str, dict[str, Any]] = {
    # the demo SAT's size (CPU budget) and the d128 model the AR uses (GPU budget). A codec's entry
    # names the packaged config whose model and loss sections are its recipe (or gives model keys).
    "tiny": {"quantizer": dict(latent_dim=16, codebook_size=128, kmeans_iters=10, phi_count=3),
             "seanet": "sat-tiny", "fourier": "sat-fourier-tiny"},
    "d128": {"quantizer": dict(latent_dim=128, codebook_size=1024, kmeans_iters=50, phi_count=6),
             "seanet": "sat-paper-d128", "fourier": "sat-fourier"},
}
SAT_455 = dict(schedule="quadratic", num_scales=16, phi="partial")
RVQ_750 = dict(schedule="rvq", num_scales=10, phi="none")
CONTENDERS: dict[str, dict[str, Any]] = {
    "SAT-455 (SEANet)": dict(codec="seanet", **SAT_455),
    "SAT-455 (Fourier)": dict(codec="fourier", **SAT_455),
    "RVQ-750 (Fourier)": dict(codec="fourier", **RVQ_750),
}
OPUS = "Opus ~6 kbps"
METRICS = ("mel_distance", "stft_distance", "si_sdr")


@dataclasses.dataclass
class Settings:
    device: str = "cpu"
    size: str = "tiny"
    data: str = "synth"            # synth or recorded
    recorded: str = str(RECORDED)  # folder holding train.csv and heldout.csv
    seconds: float = 240.0         # wall-clock training budget per learned tokenizer
    steps: int = 0                 # > 0: this many steps for every tokenizer instead of the budget
    batch: int = 4                 # on 2 CPU cores batch 4 beat 8 at equal time (tokenizer_recipe_cpu.json)
    n_train: int = 2400            # synthetic training clips (the demo's corpus size)
    n_eval: int = 32               # held-out clips scored (recorded: 0 = all, else a subset balanced over kinds)
    lr: float = 1e-3
    adversarial: bool = False
    threads: int = 2
    seed: int = 0
    timing_repeats: int = 5
    opus_level: float = 1.0        # libsndfile compression level: 1.0 is Opus's ~6 kbps floor


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def codec_recipe(size: str, codec: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model keys, loss keys) of one codec at one size: its packaged config's sections, or a dict of model keys."""
    from nextscale.config import read_yaml

    entry = SIZES[size][codec]
    if isinstance(entry, dict):
        return dict(entry), {}
    raw = read_yaml(entry)
    return dict(raw.get("model", {})), dict(raw.get("loss", {}))


def train_config(name: str, s: Settings, steps: int) -> dict[str, Any]:
    """The train-tokenizer config of one contender: its codec's recipe, then the shared quantizer and schedule."""
    codec = CONTENDERS[name]["codec"]
    model, loss = codec_recipe(s.size, codec)
    model |= dict(sample_rate=SAMPLE_RATE, clip_seconds=CLIP_SECONDS, **SIZES[s.size]["quantizer"], **CONTENDERS[name])
    loss["adversarial"] = s.adversarial
    if s.data == "recorded":     # train on all of train.csv; scoring uses heldout.csv
        data = {"source": "manifest", "path": str(Path(s.recorded) / "train.csv"), "heldout_fraction": 0.0}
    else:
        data = {"source": "synth", "n": s.n_train, "seed": s.seed, "heldout_n": 1}
    return {
        "model": model, "data": data, "loss": loss,
        "optim": {"lr": s.lr, "warmup_steps": max(1, steps // 20)},
        "train": {"steps": steps, "batch_size": s.batch, "device": s.device, "seed": s.seed,
                  "adversarial": s.adversarial, "eval_every": 0, "ckpt_every": steps, "keep_last": 1,
                  "log_every": max(1, steps // 20), "tensorboard": False},
    }


# ---------------------------------------------------------------- held-out clips and their kinds

def manifest_kinds(manifest: Path) -> dict[str, str]:
    """Resolved file path -> its first label (the kind of sound), as `evaluate_tokenizer` names clips."""
    from nextscale.data.manifest import read_manifest

    return {e.path: e.labels[0] if e.labels else "unlabelled" for e in read_manifest(manifest).entries}


def balanced_subset(manifest: Path, n: int, out: Path) -> Path:
    """The first `n` rows of `manifest` taken round-robin over kinds (so every kind is scored), as a CSV."""
    from nextscale.data.manifest import read_manifest

    groups: dict[str, list] = defaultdict(list)
    for e in read_manifest(manifest).entries:
        groups[e.labels[0] if e.labels else "unlabelled"].append(e)
    picked = [e for row in itertools.zip_longest(*groups.values()) for e in row if e is not None][:n]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "labels", "start", "duration"])
        w.writerows([e.path, ";".join(e.labels), e.start, "" if e.duration is None else e.duration] for e in picked)
    return out


def held_out_clips(s: Settings, work: Path) -> tuple[str, int, dict[str, str]]:
    """What to score (`evaluate_tokenizer`'s `data`), how many clips, and path -> kind (empty for synth)."""
    from nextscale.data.manifest import read_manifest

    if s.data == "synth":
        return "synth", s.n_eval, {}
    heldout = Path(s.recorded) / "heldout.csv"
    total = len(read_manifest(heldout).entries)
    n = min(s.n_eval or total, total)
    if n < total:
        heldout = balanced_subset(heldout, n, work / "heldout_subset.csv")
    return str(heldout), n, manifest_kinds(heldout)


def by_kind(rows: list[dict[str, Any]], kinds: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per-clip rows grouped by the kind of their path: clip count and the mean of every numeric column."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[kinds.get(r["path"], "unlabelled")].append(r)
    return {kind: {"n": len(g), **{k: float(np.mean([r[k] for r in g])) for k, v in g[0].items()
                                   if isinstance(v, (int, float))}}
            for kind, g in sorted(groups.items())}


def summary(rows: list[dict[str, Any]], kinds: dict[str, str]) -> dict[str, Any]:
    """Clip count and mean scores over all rows, plus `per_kind` when the clips have kinds."""
    out: dict[str, Any] = {"n": len(rows), **{k: float(np.mean([r[k] for r in rows])) for k in METRICS}}
    return out | ({"per_kind": by_kind(rows, kinds)} if kinds else {})


# ---------------------------------------------------------------- learned tokenizers

def coding_speed(model_dir: Path, s: Settings) -> dict[str, float]:
    """Median encode and decode wall seconds per second of audio, batch 1, one CPU thread."""
    import torch

    from nextscale.bench.measure import summarize, time_repeats
    from nextscale.tokenizer.model import SAT

    device = torch.device(s.device)
    sat = SAT.from_pretrained(str(model_dir), map_location=device).eval()
    wav = 0.1 * torch.randn(1, 1, sat.clip_samples, generator=torch.Generator().manual_seed(s.seed)).to(device)
    seconds = sat.clip_samples / sat.sample_rate
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            codes = sat.encode(wav)
            enc = time_repeats(lambda: sat.encode(wav), device, warmup=1, repeats=s.timing_repeats)
            dec = time_repeats(lambda: sat.decode(codes), device, warmup=1, repeats=s.timing_repeats)
    finally:
        torch.set_num_threads(threads)
    return {"encode_s_per_audio_s": summarize(enc)["median_s"] / seconds,
            "decode_s_per_audio_s": summarize(dec)["median_s"] / seconds}


def training_steps(name: str, s: Settings) -> tuple[int, float | None]:
    """`--steps`, or the steps of `name` that fit in `--seconds` (with the timed seconds per step)."""
    from nextscale.train.budget import sat_seconds_per_step, steps_for_budget

    if s.steps:
        return s.steps, None
    per_step = sat_seconds_per_step(train_config(name, s, 1000))
    steps = steps_for_budget(s.seconds, per_step)
    print(f"[{name}] {per_step:.3f} s/step -> {steps} steps for {s.seconds:.0f} s", flush=True)
    return steps, per_step


def run_contender(name: str, s: Settings, runs: Path, heldout: str, n_eval: int, kinds: dict[str, str],
                  progress: bool) -> dict[str, Any]:
    from nextscale.eval.recon_run import evaluate_tokenizer
    from nextscale.io import atomic_write_json, read_json
    from nextscale.tokenizer.model import SAT
    from nextscale.train.tokenizer import load_sat_train_config, train_tokenizer

    run = runs / slug(name)
    done = run / "result.json"       # a contender finished under the same settings is reused (--runs resumes)
    if done.is_file() and (saved := read_json(done, ValueError)).get("settings") == dataclasses.asdict(s):
        print(f"[{name}] reusing {done}", flush=True)
        return saved["result"]
    steps, per_step = training_steps(name, s)
    cfg = load_sat_train_config(train_config(name, s, steps))
    cfg.train.progress = progress
    start = time.perf_counter()
    fit = train_tokenizer(cfg, run)
    train_s = time.perf_counter() - start
    model_dir = run / "tokenizer"
    sat = SAT.from_pretrained(str(model_dir))
    scores = evaluate_tokenizer(model_dir, heldout, n=n_eval, seed=EVAL_SEED, device=s.device, progress=progress)
    tokens_per_second = sat.num_tokens / cfg.model.clip_seconds
    result = {
        "name": name, "run": run.name, "codec": cfg.model.codec, "schedule": cfg.model.schedule, "phi": cfg.model.phi,
        "scales": sat.scales, "tokens_per_second": tokens_per_second,
        "kbps": tokens_per_second * math.log2(sat.codebook_size) / 1000,
        "parameters": sum(p.numel() for p in sat.parameters()),
        "train": {"budget_s": None if s.steps else s.seconds, "probe_s_per_step": per_step, "steps": fit.step,
                  "seconds": train_s, "final": {k: v for k, v in fit.metrics.items() if isinstance(v, (int, float))}},
        "heldout": summary(scores["per_clip"], kinds) | {k: scores[k] for k in ("mean_usage", "mean_perplexity")},
        "per_scale": scores["per_scale"], "per_clip": scores["per_clip"], "skipped": scores["skipped"],
        **coding_speed(model_dir, s),
    }
    atomic_write_json(done, {"settings": dataclasses.asdict(s), "result": result})
    return result


# ---------------------------------------------------------------- Opus

def opus_unavailable() -> str | None:
    """Why this soundfile / libsndfile cannot write Opus at a chosen bitrate, or None when it can."""
    import soundfile as sf

    if "OPUS" not in sf.available_subtypes("OGG"):
        return f"libsndfile {sf.__libsndfile_version__} was built without Ogg/Opus"
    if "compression_level" not in inspect.signature(sf.write).parameters:
        return f"soundfile {sf.__version__} cannot set compression_level (needs soundfile >= 0.13)"
    return None


def opus_encode(wav: np.ndarray, sample_rate: int, level: float) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wav, sample_rate, format="OGG", subtype="OPUS", compression_level=level)
    return buf.getvalue()


def opus_decode(data: bytes, sample_rate: int, length: int) -> np.ndarray:
    """Mono float32 at `sample_rate` (resampled when the decoder runs at another rate), `length` samples."""
    import soundfile as sf

    from nextscale.audio import resample

    wav, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    if rate != sample_rate:
        wav = resample(wav, rate, sample_rate)
    out = np.zeros(length, dtype=np.float32)
    n = min(length, len(wav))
    out[:n] = wav[:n, 0]
    return out


def run_opus(s: Settings, heldout: str, n_eval: int, kinds: dict[str, str], progress: bool) -> dict[str, Any]:
    """Every held-out clip through Opus and back, scored as `evaluate_tokenizer` scores a tokenizer."""
    import torch
    from tqdm.auto import tqdm

    from nextscale.bench.measure import summarize, time_repeats
    from nextscale.eval.recon import score_pair
    from nextscale.eval.recon_run import iter_clips

    header = len(opus_encode(np.zeros(0, np.float32), SAMPLE_RATE, s.opus_level))
    length = int(SAMPLE_RATE * CLIP_SECONDS)
    skipped: list[dict] = []
    rows, audio_s, file_bytes = [], 0.0, 0
    clips = iter_clips(heldout, n_eval, EVAL_SEED, SAMPLE_RATE, CLIP_SECONDS, skipped)
    for name, wav in tqdm(clips, total=n_eval, desc="Opus", unit="clip", disable=not progress):
        x = wav[0, :length].numpy()
        data = opus_encode(x, SAMPLE_RATE, s.opus_level)
        y = opus_decode(data, SAMPLE_RATE, len(x))
        seconds = len(x) / SAMPLE_RATE
        rows.append({"path": name, **score_pair(torch.from_numpy(x)[None], torch.from_numpy(y)[None], SAMPLE_RATE),
                     "kbps": (len(data) - header) * 8 / seconds / 1000})
        audio_s, file_bytes = audio_s + seconds, file_bytes + len(data)
    cpu = torch.device("cpu")
    clip = 0.1 * np.random.default_rng(s.seed).standard_normal(length).astype(np.float32)
    data = opus_encode(clip, SAMPLE_RATE, s.opus_level)
    enc = time_repeats(lambda: opus_encode(clip, SAMPLE_RATE, s.opus_level), cpu, warmup=1, repeats=s.timing_repeats)
    dec = time_repeats(lambda: opus_decode(data, SAMPLE_RATE, length), cpu, warmup=1, repeats=s.timing_repeats)
    return {
        "name": OPUS, "codec": "opus", "compression_level": s.opus_level,
        "kbps": (file_bytes - header * len(rows)) * 8 / audio_s / 1000, "file_kbps": file_bytes * 8 / audio_s / 1000,
        "header_bytes": header, "tokens_per_second": None, "parameters": None, "train": None,
        "heldout": summary(rows, kinds) | {"mean_usage": None, "mean_perplexity": None},
        "per_clip": rows, "skipped": skipped,
        "encode_s_per_audio_s": summarize(enc)["median_s"] / CLIP_SECONDS,
        "decode_s_per_audio_s": summarize(dec)["median_s"] / CLIP_SECONDS,
    }


# ---------------------------------------------------------------- report

def example_clips(heldout: str, n_eval: int, kinds: dict[str, str], work: Path, results: list[dict[str, Any]],
                  s: Settings) -> list[tuple[str, list[Any]]]:
    """The first held-out clip of each kind (four clips for synthetic data), as (kind, [original, then the clip
    as heard through every contender in `results`' order]): what the spectrogram grid and the listening page show."""
    import torch

    from nextscale.eval.recon_run import iter_clips
    from nextscale.tokenizer.model import SAT

    length = int(SAMPLE_RATE * CLIP_SECONDS)
    picked: dict[str, torch.Tensor] = {}
    for name, wav in iter_clips(heldout, n_eval, EVAL_SEED, SAMPLE_RATE, CLIP_SECONDS, []):
        picked.setdefault(kinds.get(name, f"clip {len(picked)}"), wav[:, :length])
        if not kinds and len(picked) == 4:
            break
    sats = {r["run"]: SAT.from_pretrained(str(work / r["run"] / "tokenizer")).eval()     # on the CPU
            for r in results if r["codec"] != "opus"}
    rows = []
    for kind, x in sorted(picked.items()):
        clips = [x]
        for r in results:
            if r["codec"] == "opus":
                clips.append(torch.from_numpy(opus_decode(opus_encode(x[0].numpy(), SAMPLE_RATE, s.opus_level),
                                                          SAMPLE_RATE, length))[None])
                continue
            sat = sats[r["run"]]
            with torch.inference_mode():
                clips.append(sat.decode(sat.encode(x[None]))[0])
        rows.append((kind, clips))
    return rows


def plot_examples(examples: list[tuple[str, list[Any]]], results: list[dict[str, Any]], s: Settings,
                  path: Path) -> Path:
    """Spectrograms a person can check: each example through every contender, on the original's colour scale."""
    from nextscale.plots import plot_comparison

    return plot_comparison(examples, ["original", *(r["name"] for r in results)], SAMPLE_RATE, path,
                           title=f"held-out {s.data} clips through each tokenizer")


def write_listening_page(examples: list[tuple[str, list[Any]]], results: list[dict[str, Any]], s: Settings,
                         spectrograms: Path, out_dir: Path) -> Path:
    """An HTML page (out_dir/index.html + assets) with a player for each example through every contender, beside
    its mel distance to the original, and the spectrogram grid: what the table's numbers sound like."""
    from nextscale.eval.recon import score_pair
    from nextscale.eval.report import Audio, Image, Section, Table, write_report

    names = ["original", *(r["name"] for r in results)]
    table = Table([{"tokenizer": r["name"], "kbps": r["kbps"], "mel distance": r["heldout"]["mel_distance"],
                    **{f"mel {kind}": v["mel_distance"] for kind, v in r["heldout"].get("per_kind", {}).items()}}
                   for r in results], title="held-out means (the JSON has every clip)")
    grid = Image(spectrograms, caption="log-mel spectrograms on the original's colour scale")
    sections = [Section("Scores", [table, grid])]
    for kind, clips in examples:
        original = clips[0]
        items = []
        for name, wav in zip(names, clips):
            mel = None if wav is original else score_pair(original, wav, SAMPLE_RATE)["mel_distance"]
            caption = "" if mel is None else f"mel distance {mel:.3f}"
            items.append(Audio(name, wav=wav[0], sample_rate=SAMPLE_RATE, caption=caption, spectrogram=False))
        what = "the first held-out clip of this kind" if s.data == "recorded" else "a held-out synthetic clip"
        sections.append(Section(kind, items, text=f"{what}, 1 s at 24 kHz"))
    budget = f"{s.steps} steps" if s.steps else f"{s.seconds:.0f} s of training"
    return write_report(out_dir, f"Tokenizers vs Opus: held-out {s.data} clips ({budget} per tokenizer)", sections)


def _fmt(value: Any, spec: str, missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def markdown_table(report: dict[str, Any]) -> str:
    s, results = report["settings"], report["results"]
    budget = f"{s['steps']} steps" if s["steps"] else f"{s['seconds']:.0f} s of training"
    corpus = f"{s['n_train']} synthetic clips" if s["data"] == "synth" else "recorded train.csv"
    lines = [f"Tokenizers vs Opus on {results[0]['heldout']['n']} held-out {s['data']} clips "
             f"({report['machine']['device']}, size {s['size']}, {budget} per tokenizer x batch {s['batch']}, "
             f"trained on {corpus})", "",
             "| tokenizer | kbps | tokens/s | mel dist ↓ | STFT dist ↓ | SI-SDR dB ↑ | codebook usage "
             "| encode s/s | decode s/s | params | steps | train s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        h, t = r["heldout"], r["train"] or {}
        lines.append(f"| {r['name']} | {r['kbps']:.2f} | {_fmt(r['tokens_per_second'], '.0f')} | "
                     f"{h['mel_distance']:.3f} | {h['stft_distance']:.3f} | {h['si_sdr']:.2f} | "
                     f"{_fmt(h['mean_usage'], '.1%', 'n/a')} | {r['encode_s_per_audio_s']:.4f} | "
                     f"{r['decode_s_per_audio_s']:.4f} | {_fmt(r['parameters'], ',')} | {_fmt(t.get('steps'), 'd')} | "
                     f"{_fmt(t.get('seconds'), '.0f')} |")
    for r in results:
        if r["codec"] == "opus":
            lines += ["", f"Opus: libsndfile compression level {r['compression_level']}, measured {r['kbps']:.2f} "
                          f"kbps of payload ({r['file_kbps']:.2f} kbps as Ogg files with {r['header_bytes']} header "
                          "bytes each)."]
    if "per_kind" in results[0]["heldout"]:
        lines += ["", "Per kind of sound:", "",
                  "| tokenizer | kind | clips | kbps | mel dist ↓ | STFT dist ↓ | SI-SDR dB ↑ |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for r in results:
            for kind, k in r["heldout"]["per_kind"].items():
                lines.append(f"| {r['name']} | {kind} | {k['n']} | {k.get('kbps', r['kbps']):.2f} | "
                             f"{k['mel_distance']:.3f} | {k['stft_distance']:.3f} | {k['si_sdr']:.2f} |")
    return "\n".join(lines) + "\n"


def run_benchmark(s: Settings, out: Path, runs: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Train and score the learned contenders, score Opus; training runs go to `runs` (default: a temporary folder)."""
    import tempfile

    import soundfile as sf
    import torch

    from nextscale.io import atomic_write_json
    from nextscale.bench.measure import machine_info, versions
    from nextscale.runtime import resolve_device

    device = resolve_device(s.device)
    if s.threads:
        torch.set_num_threads(s.threads)
    skipped = []
    with tempfile.TemporaryDirectory(prefix="tokenizer_quality_") as tmp:
        work = Path(runs or tmp)
        heldout, n_eval, kinds = held_out_clips(s, work)
        results = [run_contender(name, s, work, heldout, n_eval, kinds, progress) for name in CONTENDERS]
        reason = opus_unavailable()
        if reason:
            print(f"[{OPUS}] skipped: {reason}", file=sys.stderr)
            skipped.append({"name": OPUS, "reason": reason})
        else:
            results.append(run_opus(s, heldout, n_eval, kinds, progress))
        name = f"tokenizer_quality_{device.type}{'_recorded' if s.data == 'recorded' else ''}"
        out.mkdir(parents=True, exist_ok=True)
        examples = example_clips(heldout, n_eval, kinds, work, results, s)
        spectrograms = plot_examples(examples, results, s, out / f"{name}_spectrograms.png")
        page = write_listening_page(examples, results, s, spectrograms, out / f"{name}_listen")
    report = {"benchmark": "tokenizer_quality", "machine": {"device": device.type, **machine_info(device)},
              "versions": versions() | {"soundfile": sf.__version__, "libsndfile": sf.__libsndfile_version__},
              "settings": dataclasses.asdict(s) | {"timing_threads": 1}, "eval_seed": EVAL_SEED,
              "heldout": "synth" if s.data == "synth" else str(Path(s.recorded) / "heldout.csv"), "results": results,
              "skipped": skipped, "spectrograms": spectrograms.name,
              "listening_page": page.relative_to(out).as_posix()}
    atomic_write_json(out / f"{name}.json", report)
    table = markdown_table(report)
    (out / f"{name}.md").write_text(table)
    print(table)
    return report


def main(device: str = typer.Option("cpu", help="cpu or cuda"),
         data: str = typer.Option("synth", help="synth: synthetic corpus; recorded: the manifests in --recorded"),
         recorded: Path = typer.Option(RECORDED, help="folder with train.csv and heldout.csv "
                                                      "(benchmarks/recorded_corpus.py writes them)"),
         seconds: float = typer.Option(0.0, min=0.0, help="training seconds per tokenizer (0: 240 CPU, 1800 CUDA)"),
         steps: int = typer.Option(0, min=0, help="fixed training steps for every tokenizer instead of --seconds"),
         batch: int = typer.Option(0, min=0, help="batch size (0: 4 on CPU, 32 on CUDA)"),
         n_train: int = typer.Option(0, "--n-train", min=0, help="synthetic training clips (0: 2400 CPU, 20000 CUDA)"),
         n_eval: int = typer.Option(0, "--n-eval", min=0, help="held-out clips scored (0: 32 synthetic, all recorded)"),
         size: str = typer.Option("", help="tiny or d128 (default: tiny on CPU, d128 on CUDA)"),
         adversarial: bool = typer.Option(None, help="train with the STFT discriminator (default: only on CUDA)"),
         threads: int = typer.Option(-1, min=-1, help="torch CPU threads for training (-1: 2 on CPU, default on CUDA)"),
         seed: int = typer.Option(0, min=0),
         out: Path = typer.Option(RESULTS, help="folder for the JSON and the tables"),
         runs: Path = typer.Option(None, help="keep the training runs (checkpoints, metrics) here"),
         progress: bool = typer.Option(True, help="progress bars")) -> None:
    """Train SAT-455 (SEANet, Fourier) and RVQ-750 (Fourier) on one time budget each; compare with Opus."""
    from nextscale.errors import ConfigError

    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device: expected cpu or cuda, got {device!r}")
    if data not in ("synth", "recorded"):
        raise ConfigError(f"--data: expected synth or recorded, got {data!r}")
    if data == "recorded":
        missing = [f for f in ("train.csv", "heldout.csv") if not (recorded / f).is_file()]
        if missing:
            raise ConfigError(f"--recorded: {recorded} lacks {' and '.join(missing)}; "
                              "build them with python benchmarks/recorded_corpus.py")
    cuda = device == "cuda"
    size = size or ("d128" if cuda else "tiny")
    if size not in SIZES:
        raise ConfigError(f"--size: expected one of {sorted(SIZES)}, got {size!r}")
    s = Settings(device=device, size=size, data=data, recorded=str(recorded),
                 seconds=seconds or (1800.0 if cuda else 240.0), steps=steps, batch=batch or (32 if cuda else 4),
                 n_train=n_train or (20000 if cuda else 2400), n_eval=n_eval or (32 if data == "synth" else 0),
                 adversarial=cuda if adversarial is None else adversarial,
                 threads=(0 if cuda else 2) if threads < 0 else threads, seed=seed)
    run_benchmark(s, out, runs, progress)


if __name__ == "__main__":
    from nextscale.cli import run_script

    run_script(main)
