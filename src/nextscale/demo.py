"""`nextscale demo`: the whole system on the built-in synthetic corpus, on a laptop CPU.

Stages run in order and each leaves `OUT/stages/<name>.json` when it finished; a re-run with the
same `--out` skips finished stages, so an interrupted demo loses at most the stage in progress.

    corpus      held-out clips written as WAVs (+ manifest); training clips are rendered on the fly
    tokenizer   a small Fourier-codec SAT trained with mel, time and compressed-magnitude losses
    tokens      the training corpus encoded once with it (token cache, class labels)
    ar          a small class-conditioned AAR trained on the cached tokens → a pipeline directory
    classifier  the `synth` log-mel classifier (FAD features, class accuracy)
    generate    samples for every class with a fixed seed, plus random-token decodes as a floor
    evaluate    reconstruction metrics, FAD(synth), class accuracy (generated / real / random), speed
    long        10 s: event sequences through SAT and independent generated windows, joins, accuracy, cost
    report      report/index.html and a one-screen summary
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from .config import read_yaml
from .errors import NextscaleError
from .io import atomic_write_json
from .stages import StageRunner

if TYPE_CHECKING:
    from .eval.report import Section

SEED = 0
HELDOUT_SEED = 7_777      # held-out clips come from another seed than the training corpus
REFERENCE_SEED = 8_888    # as many real clips again, scored like the samples: the FAD a perfect model would get


@dataclasses.dataclass
class RunSizes:
    """What every train-and-score run on the synthetic corpus sizes: clips, steps and batches of the two
    models and the classifier, samples per class, and overrides of the recipes' model sections."""

    name: str
    n_train: int
    n_heldout: int
    sat_steps: int
    sat_batch: int
    ar_steps: int
    ar_batch: int
    classifier_steps: int
    classifier_n: int
    samples_per_class: int
    sat_model: dict = dataclasses.field(default_factory=dict)    # overrides of the SAT recipe's model section
    ar_model: dict = dataclasses.field(default_factory=dict)     # overrides of the AR recipe's model section


@dataclasses.dataclass
class DemoPreset(RunSizes):
    """Sizes of one demo run; `default` fits in ~15 min on 2 CPU cores, `quick` in ~3, `long` in ~1 h,
    `smoke` is for tests."""

    bench_repeats: int = 3
    # Wall-clock budgets (0: none). A stage with one trains for that many seconds (train.time_budget_s: its
    # LR decay follows the clock), never fewer than sat_steps / ar_steps steps: a faster CPU gets a better
    # model in the same minutes, a slower one keeps the preset's quality and takes longer.
    sat_seconds: float = 0.0
    ar_seconds: float = 0.0


PRESETS = {
    # SAT batch 8: 65.7 % round trip over three 1000-step runs vs 60.0 % for batch 4 x 1400; the step count is
    # the lever (2100 steps: 82 %; width, head, lr, data and loss variants at that length all 80-82 %,
    # benchmarks/results/tokenizer_recipe_demo_cpu.json), so both models train as long as ~12 minutes allow
    # AAR batch 16: in the same 270 s, 2400 steps of 16 clips gave 73.8 % generated class accuracy against 68.3 % for
    # 1100 steps of 32 (batch 8: 71.2 %; lr 1e-3: 43.8 %; depth 3 or width 192: 63.7 / 65.0 %; 240 samples each,
    # benchmarks/ar_recipe.py, results/ar_recipe_demo_cpu.json); aar-synth's per-scale loss weighting added ~10 points
    "default": DemoPreset("default", n_train=2400, n_heldout=240, sat_steps=1000, sat_batch=8, ar_steps=1200,
                          ar_batch=16, classifier_steps=400, classifier_n=1200, samples_per_class=8,
                          sat_seconds=480.0, ar_seconds=270.0),
    # what the shipped nextscale-synth-small model is trained with (~1 h on 2 CPU cores); batch 8 as in
    # `default`, and twice the clips and AR steps of its first version (AR 3000 steps: 69 % generated)
    # scale 1 (4 tokens: which way a chirp goes) 4/11 of the AR loss: 89.2 % generated (FAD 134) against 85.0 % (139)
    # for equal shares, one classifier (benchmarks/results/shipped_model_cpu.json, coarse_share_retrains); the shipped
    # AR is this recipe retrained for 12000 steps (92.9 %, FAD 120; its README has the command)
    "long": DemoPreset("long", n_train=19200, n_heldout=240, sat_steps=5000, sat_batch=8, ar_steps=6000,
                       ar_batch=32, classifier_steps=400, classifier_n=1200, samples_per_class=8,
                       ar_model={"scale_loss_shares": [1, 4, 1, 1, 1, 1, 1, 1]}),
    # quick keeps batch 4: batch 8 for 200 steps measured 45.8 % vs 46.9 %, in 3.4 vs 3.1 min; its SAT budget
    # (115 s) has the 25 s its smaller long-audio stage saves: 400 steps gave a 57.3 % round trip, 500 64.6 %
    "quick": DemoPreset("quick", n_train=480, n_heldout=96, sat_steps=300, sat_batch=4, ar_steps=150, ar_batch=32,
                        classifier_steps=200, classifier_n=480, samples_per_class=4,
                        ar_model={"depth": 2, "width": 96, "heads": 2}, sat_seconds=115.0, ar_seconds=40.0),
    "smoke": DemoPreset("smoke", n_train=48, n_heldout=24, sat_steps=4, sat_batch=4, ar_steps=4, ar_batch=8,
                        classifier_steps=4, classifier_n=48, samples_per_class=1,
                        sat_model={"num_scales": 4, "codebook_size": 32, "convnext_width": 32, "convnext_layers": 1},
                        ar_model={"depth": 1, "width": 32, "heads": 1, "cond_dim": 16}, bench_repeats=1,
                        sat_seconds=1e-3, ar_seconds=1e-3),   # timed runs whose floors win
}


class Demo(StageRunner):
    """Runs the stages of one demo directory (`StageRunner`, tagged with the preset's name); each stage
    returns a JSON-able dict of results."""

    def __init__(self, out: str | Path, preset: str = "default", device: str = "cpu", progress: bool = True,
                 log: Callable[[str], None] = print):
        if preset not in PRESETS:
            raise NextscaleError(f"demo preset {preset!r}: unknown; choose one of {', '.join(PRESETS)}")
        super().__init__(out, preset, log)
        self.preset = PRESETS[preset]
        self.device = device
        self.progress = progress

    def run(self) -> dict[str, Any]:
        """Run (or reuse) every stage, then write the report and summary.json; returns the summary."""
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(SEED)
        for name in STAGES:
            self.run_stage(name, lambda name=name: STAGE_FUNCTIONS[name](self))
        page = write_demo_report(self)
        summary = summarize(self, page)
        atomic_write_json(self.out / "summary.json", summary)
        return summary


# ---------------------------------------------------------------------- the stages
# The demo's models are packaged configs (`nextscale configs`): a small Fourier-codec SAT (8 quadratic
# scales, 234 tokens per second; the recipe measured in benchmarks/tokenizer_recipe.py) and a
# class-conditioned AAR of the paper's family at depth 2 (width 128), sized to train on 2 CPU cores in
# minutes. A preset's sat_model / ar_model override their model sections.
SAT_CONFIG = "sat-fourier-tiny"   # model, loss (mel + time + compressed-magnitude spectrum) and optim.lr
AR_CONFIG = "aar-synth"           # model; scales, codebook and latent width come from the trained SAT
SAMPLING = dict(cfg=3.0, top_k=8, top_p=0.95, temperature=1.0)   # top-k 8 vs 32: 42 % vs 27 % class accuracy (288 samples)


def demo_ar_model(preset: DemoPreset) -> dict[str, Any]:
    """The AR model section: AR_CONFIG's, with the preset's overrides."""
    return read_yaml(AR_CONFIG)["model"] | preset.ar_model


def train_section(steps: int, batch: int, device: str, progress: bool, seed: int = SEED,
                  budget_s: float = 0.0, precision: str = "auto") -> dict[str, Any]:
    """The `train:` section of a benchmark-style run: no TensorBoard or periodic evaluation, a checkpoint
    every quarter of `steps` (so a killed run resumes), one kept; with `budget_s`, as many steps as
    fit in that many seconds of training, at least `steps` (train.time_budget_s)."""
    return dict(steps=steps, batch_size=batch, device=device, progress=progress, tensorboard=False,
                log_every=max(1, steps // 100), ckpt_every=max(1, steps // 4), eval_every=0, keep_last=1, seed=seed,
                time_budget_s=budget_s, precision=precision)


def training_precision(device: str) -> str:
    """The demo's train.precision: bf16 autocast on a CPU that multiplies bf16 natively (the SAT step 1.17x
    and the AAR step ~1.3x faster there, equal quality per step: round 12), else the device's default."""
    from .runtime import cpu_has_native_bf16

    return "bf16" if str(device) == "cpu" and cpu_has_native_bf16() else "auto"


def _train_common(demo: Demo, steps: int, batch: int, budget_s: float = 0.0) -> dict[str, Any]:
    return train_section(steps, batch, demo.device, demo.progress, budget_s=budget_s,
                         precision=training_precision(demo.device))


def has_checkpoint(run_dir: Path) -> bool:
    from .train.checkpoints import CheckpointManager

    return CheckpointManager(run_dir).latest() is not None


def stage_corpus(demo: Demo) -> dict[str, Any]:
    from .data.export import export_corpus
    from .data.synth import KINDS

    manifest = export_corpus(demo.out / "corpus" / "heldout", demo.preset.n_heldout, HELDOUT_SEED)
    return {"heldout_manifest": str(manifest), "n_heldout": demo.preset.n_heldout, "n_train": demo.preset.n_train,
            "classes": list(KINDS)}


def _train_data(demo: Demo) -> dict[str, Any]:
    return dict(source="synth", n=demo.preset.n_train, seed=SEED)


def trained_budget(floor: int, seconds: float, result: Any) -> dict[str, Any]:
    """What a training stage was asked for (`seconds` of training, 0: none; at least `floor` steps) and what its
    run (a FitResult) did: steps and seconds of training."""
    return {"floor": floor, "budget_s": seconds or None, "steps": result.step, "train_s": result.train_seconds}


def tokenizer_stage_config(demo: Demo, steps: int | None = None) -> dict[str, Any]:
    """The tokenizer stage's training config: SAT_CONFIG with the preset's sizes, for the preset's budget
    (at least its sat_steps); with `steps`, exactly that many steps (the recipe benchmark's `--base demo`)."""
    p = demo.preset
    budget_s = 0.0 if steps else p.sat_seconds
    steps = steps or p.sat_steps
    recipe = read_yaml(SAT_CONFIG)
    return {"model": recipe["model"] | p.sat_model, "data": _train_data(demo), "loss": recipe.get("loss", {}),
            "optim": recipe.get("optim", {}) | {"warmup_steps": max(1, steps // 20)},
            "train": _train_common(demo, steps, p.sat_batch, budget_s) | {"adversarial": False}}


def stage_tokenizer(demo: Demo) -> dict[str, Any]:
    from .train.tokenizer import load_sat_train_config, train_tokenizer

    p = demo.preset
    cfg = load_sat_train_config(tokenizer_stage_config(demo))
    run = demo.out / "tokenizer"
    result = train_tokenizer(cfg, run, resume=has_checkpoint(run))
    return {"run": str(run), "model": str(run / "tokenizer"), "steps": result.step,
            "budget": trained_budget(p.sat_steps, p.sat_seconds, result), "precision": cfg.train.precision,
            "metrics": str(run / "metrics.jsonl")}


def stage_tokens(demo: Demo) -> dict[str, Any]:
    from .data import DataConfig, build_dataset, collate_batch
    from .tokenizer.model import SAT
    from .train.token_cache import build_token_cache

    model_dir = Path(demo.results["tokenizer"]["model"])
    sat = SAT.from_pretrained(model_dir, map_location=demo.device)
    dataset = build_dataset(DataConfig(**_train_data(demo)), "train")
    index = build_token_cache(sat, dataset, demo.out / "tokens", collate_batch, tokenizer_path=model_dir,
                              batch_size=32, device=demo.device, progress=demo.progress)
    return {"tokens": str(index.parent), "clips": len(dataset), "tokens_per_clip": sat.num_tokens}


def stage_ar(demo: Demo) -> dict[str, Any]:
    from .ar.config import tokenizer_fit
    from .data.synth import KINDS
    from .tokenizer.model import SAT
    from .train.ar import load_ar_train_config, train_ar

    p = demo.preset
    sat = SAT.from_pretrained(demo.results["tokenizer"]["model"])

    cfg = load_ar_train_config({
        "model": demo_ar_model(p) | tokenizer_fit(sat) | {"num_classes": len(KINDS)},
        "data": {"tokens": demo.results["tokens"]["tokens"]},
        "optim": read_yaml(AR_CONFIG).get("optim", {}) | {"warmup_steps": max(1, p.ar_steps // 20)},
        "train": _train_common(demo, p.ar_steps, p.ar_batch, p.ar_seconds)})
    run = demo.out / "ar"
    result = train_ar(cfg, run, resume=has_checkpoint(run))
    from .pipeline import set_pipeline_sampling

    set_pipeline_sampling(run / "pipeline", SAMPLING)     # `nextscale generate -c` then samples like the demo
    return {"run": str(run), "pipeline": str(run / "pipeline"), "steps": result.step,
            "budget": trained_budget(p.ar_steps, p.ar_seconds, result), "precision": cfg.train.precision,
            "metrics": str(run / "metrics.jsonl")}


def stage_classifier(demo: Demo) -> dict[str, Any]:
    from .eval.train_classifier import train_classifier

    p = demo.preset
    summary = train_classifier(demo.out / "classifier", n_train=p.classifier_n, n_heldout=max(48, p.classifier_n // 4),
                               steps=p.classifier_steps, device=demo.device, progress=demo.progress)
    return {"classifier": str(demo.out / "classifier"), **{k: v for k, v in summary.items() if _plain(v)}}


def _plain(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool, list)) or value is None


def sample_names(prompts: list[str], per_class: int) -> list[str]:
    """`<class>_<k>.wav` for the k-th sample of each class (prompts grouped by class, `per_class` each)."""
    return [f"{prompt}_{i % per_class:02d}.wav" for i, prompt in enumerate(prompts)]


def write_labelled(folder: Path, names: list[str], prompts: list[str], audio: torch.Tensor, sample_rate: int) -> Path:
    """Clips as WAVs plus labels.json (file name -> intended class): the layout `evaluate_sets` scores."""
    from .audio import save_audio
    from .io import atomic_write_bytes

    for name, wav in zip(names, audio):
        save_audio(folder / name, wav.cpu(), sample_rate)
    atomic_write_bytes(folder / "labels.json", json.dumps(dict(zip(names, prompts)), indent=1).encode("utf-8"))
    return folder


def score_samples(pipe: Any, backend: Any, real_manifest: str | Path, per_class: int, seed: int,
                  **sampling: Any) -> dict[str, Any]:
    """Generate `per_class` samples of every class with `sampling` and score them as the demo does (class
    accuracy, per class, and FAD(synth) against the held-out clips); what the sampling and AR-recipe
    benchmarks compare."""
    import tempfile

    from .eval.evaluate import evaluate_sets

    prompts = [c for c in pipe.conditioner.classes for _ in range(per_class)]
    generated = pipe.generate(prompts, seed=seed, batch_size=64, progress=False, **sampling)
    with tempfile.TemporaryDirectory() as folder:
        write_labelled(Path(folder), sample_names(prompts, per_class), prompts, generated.audio, pipe.sample_rate)
        scores = evaluate_sets(real_manifest, folder, backend, None, progress=False)
    return {"accuracy": scores["accuracy_generated"], "fad": scores["fad"], "n": len(prompts),
            "accuracy_by_class": scores["accuracy_by_class_generated"]}


def stage_generate(demo: Demo) -> dict[str, Any]:
    from .pipeline import Pipeline
    from .plots import plot_scale_previews

    pipe = Pipeline.from_pretrained(demo.results["ar"]["pipeline"], device=demo.device)
    classes = pipe.conditioner.classes
    prompts = [c for c in classes for _ in range(demo.preset.samples_per_class)]
    out = pipe.generate(prompts, seed=SEED, previews=True, batch_size=64, progress=demo.progress, **SAMPLING)
    gen_dir = write_labelled(demo.out / "samples" / "generated", sample_names(prompts, demo.preset.samples_per_class),
                             prompts, out.audio, pipe.sample_rate)
    preview_dir = demo.out / "samples" / "previews"
    previews = {}
    for c, cls in enumerate(classes):       # the first sample of each class, coarse → fine
        i = c * demo.preset.samples_per_class
        path = preview_dir / f"{cls}.png"
        plot_scale_previews([p[i].cpu() for p in out.previews], pipe.sample_rate, path, scales=pipe.sat.scales,
                            title=f"{cls}: coarse → fine")
        previews[cls] = str(path)
    # The floor: uniformly random tokens decoded by the same tokenizer, labelled like the samples.
    g = torch.Generator().manual_seed(SEED)
    sat = pipe.sat
    with torch.no_grad():
        codes = [torch.randint(sat.codebook_size, (len(prompts), n), generator=g).to(pipe.device) for n in sat.scales]
        audio = sat.decode(codes)
    rand_dir = write_labelled(demo.out / "samples" / "random", [f"random_{i:03d}.wav" for i in range(len(prompts))],
                              prompts, audio, pipe.sample_rate)
    from .eval.recon_run import write_reconstructions

    recon_dir = write_reconstructions(sat, demo.results["corpus"]["heldout_manifest"],
                                      demo.out / "samples" / "reconstructed")
    return {"generated": str(gen_dir), "random": str(rand_dir), "reconstructed": str(recon_dir), "n": len(prompts),
            "previews": previews, "sampling": SAMPLING, "seed": SEED}


def stage_evaluate(demo: Demo) -> dict[str, Any]:
    from .eval.embeddings import get_embedding
    from .eval.evaluate import evaluate_sets
    from .eval.recon import PAIR_METRICS
    from .eval.recon_run import evaluate_tokenizer

    r = demo.results
    real = r["corpus"]["heldout_manifest"]
    recon = evaluate_tokenizer(r["tokenizer"]["model"], real, n=demo.preset.n_heldout, device=demo.device,
                               progress=demo.progress)
    backend = get_embedding("synth", classifier=r["classifier"]["classifier"])
    cache = demo.out / "eval" / "embedding-cache"
    keys = ("fad", "accuracy_generated", "accuracy_real", "accuracy_by_class_generated", "confusions_generated",
            "inception_score", "label_kl",
            "n_real", "n_generated")
    generated = evaluate_sets(real, r["generate"]["generated"], backend, cache, progress=demo.progress)
    random_floor = evaluate_sets(real, r["generate"]["random"], backend, cache, progress=demo.progress)
    reconstructed = evaluate_sets(real, r["generate"]["reconstructed"], backend, cache, progress=demo.progress)
    reference = evaluate_sets(real, real_reference(demo), backend, cache, progress=demo.progress)
    speed = _speed_table(demo)
    return {
        "reconstruction": {k: recon[k] for k in ("n", *PAIR_METRICS, "mean_usage", "mean_perplexity", "per_scale")},
        "generated": {k: generated.get(k) for k in keys},
        "random": {k: random_floor.get(k) for k in keys},
        "reconstructed": {k: reconstructed.get(k) for k in keys},
        "real_reference": {k: reference.get(k) for k in keys},
        "speed": speed,
    }


def real_reference(demo: Demo) -> Path:
    """OUT/corpus/reference: as many real clips as the held-out set, from another seed. Their FAD against the
    held-out clips is what sampling noise alone gives at this set size (~5-8 with 240 clips): the floor
    every other FAD row is read against, where the held-out set against itself would read 0."""
    from .data.export import export_corpus

    folder = demo.out / "corpus" / "reference"
    manifest = folder / "manifest.jsonl"
    return manifest if manifest.is_file() else export_corpus(folder, demo.preset.n_heldout, REFERENCE_SEED)


def _speed_table(demo: Demo) -> dict[str, Any]:
    """Next-scale vs the 455- and 750-step next-token baselines at the demo AR's depth (paper schedule)."""
    from .bench.generation import BenchSettings, run_benchmark, write_json

    depth = str(demo_ar_model(demo.preset)["depth"])
    settings = BenchSettings(depths=["tiny"] if demo.preset.name == "smoke" else [depth], batch_sizes=[1],
                             device=demo.device, repeats=demo.preset.bench_repeats, warmup=1,
                             note="nextscale demo, random weights at the demo's AR size")
    report = run_benchmark(settings, progress=demo.progress)
    write_json(report, demo.out / "eval" / "speed.json")
    return {"rows": [{k: row[k] for k in ("model", "steps", "batch", "width", "ar_depth", "parameters", "median_s",
                                          "rtf", "speedup_of_next_scale")} for row in report["results"]],
            "machine": report["machine"].get("cpu") or report["machine"].get("gpu")}


@dataclasses.dataclass(frozen=True)
class LongAudio:
    """Sizes of the `long` stage: clip length, clips per class, timing turns (the fastest counts)."""

    seconds: float = 10.0
    per_class: int = 4
    repeats: int = 3


# 10 s x 48 clips: ~28 s on 2 CPU cores for the default preset; quick: 5 s x 24 clips timed once (its 34 s at
# the default sizes went to its SAT budget instead); smoke: 3 windows, one clip per class
LONG_AUDIO: dict[str, LongAudio] = {"quick": LongAudio(seconds=5.0, per_class=2, repeats=1),
                                    "smoke": LongAudio(seconds=2.5, per_class=1, repeats=1)}


def stage_long(demo: Demo) -> dict[str, Any]:
    """Audio longer than one window, though the demo AAR makes single windows: real event sequences coded by
    the demo's SAT with the default crossfade vs side by side, and long clips generated as independent windows
    crossfaded (`eval.long_form`): joins, per-window class accuracy and cost per second against one window."""
    from .ar.windows import default_overlap
    from .audio import save_audio
    from .eval.embeddings import get_embedding
    from .eval.long_form import coded_joins, independent_window_figures, join_ratios
    from .pipeline import Pipeline

    spec = LONG_AUDIO.get(demo.preset.name, LongAudio())
    pipe = Pipeline.from_pretrained(demo.results["ar"]["pipeline"], device=demo.device)
    sat, overlap = pipe.sat, default_overlap(pipe.sat.num_frames)
    real = long_sequences(len(pipe.conditioner.classes), pipe.sample_rate, spec.seconds)
    coded_figures, coded = coded_joins(sat, real.to(pipe.device), [overlap, 0])
    reconstruction = {"original": join_ratios(real, sat.sample_rate, sat.window_samples), **coded_figures}
    backend = get_embedding("synth", classifier=demo.results["classifier"]["classifier"])
    prompts = [c for c in pipe.conditioner.classes for _ in range(spec.per_class)]
    generated, audio = independent_window_figures(pipe, backend, prompts, spec.seconds, seed=SEED, overlap=overlap,
                                                  repeats=spec.repeats, **SAMPLING)
    out = demo.out / "samples" / "long"
    wavs = {"generated": save_audio(out / f"generated_{prompts[0]}.wav", audio["long"][0].cpu(), pipe.sample_rate),
            "real": save_audio(out / "real_sequence.wav", real[0], pipe.sample_rate),
            "reconstructed": save_audio(out / "real_sequence_through_sat.wav", coded[overlap][0], pipe.sample_rate)}
    return {"seconds": spec.seconds, "overlap_frames": overlap, "window_seconds": sat.window_samples / sat.sample_rate,
            "reconstruction": reconstruction, "generated": generated, "wavs": {k: str(v) for k, v in wavs.items()}}


def long_sequences(n: int, sample_rate: int, seconds: float) -> torch.Tensor:
    """(n, 1, S) synthetic event sequences from the held-out seed, item i of class i."""
    from .data.synth import synth_sequence

    return torch.stack([torch.from_numpy(synth_sequence(i, HELDOUT_SEED, sample_rate, seconds).audio)[None]
                        for i in range(n)])


STAGES: tuple[str, ...] = ("corpus", "tokenizer", "tokens", "ar", "classifier", "generate", "evaluate", "long")
STAGE_FUNCTIONS: dict[str, Callable[[Demo], dict[str, Any]]] = {
    "corpus": stage_corpus, "tokenizer": stage_tokenizer, "tokens": stage_tokens, "ar": stage_ar,
    "classifier": stage_classifier, "generate": stage_generate, "evaluate": stage_evaluate, "long": stage_long,
}


# ---------------------------------------------------------------------- report and summary
def summarize(demo: Demo, page: Path) -> dict[str, Any]:
    """The numbers a person wants first, JSON-able (also written to OUT/summary.json)."""
    from .bench.measure import machine_info
    from .eval.recon import PAIR_METRICS

    ev = demo.results["evaluate"]
    speed = {row["model"]: row for row in ev["speed"]["rows"]}
    ns = speed.get("next_scale", {})
    return {
        "report": str(page), "preset": demo.preset.name, "device": demo.device,
        "machine": machine_info(torch.device(demo.device)),   # the budgets buy steps: which machine bought them
        "stage_seconds": demo.stage_seconds(), "total_seconds": sum(demo.stage_seconds().values()),
        "classes": len(demo.results["corpus"]["classes"]),
        "class_accuracy": {"generated": ev["generated"]["accuracy_generated"], "real_heldout": ev["generated"]["accuracy_real"],
                           "random_tokens": ev["random"]["accuracy_generated"],
                           "sat_reconstruction": ev["reconstructed"]["accuracy_generated"],
                           "chance": 1.0 / len(demo.results["corpus"]["classes"]),
                           "real_reference": ev["real_reference"]["accuracy_generated"]},
        "fad_synth": {"generated": ev["generated"]["fad"], "random_tokens": ev["random"]["fad"],
                      "sat_reconstruction": ev["reconstructed"]["fad"], "real_reference": ev["real_reference"]["fad"]},
        "reconstruction": {k: ev["reconstruction"][k] for k in (*PAIR_METRICS, "mean_usage")},
        "speed": {name: {"steps": row["steps"], "seconds": row["median_s"], "slower_than_next_scale": row["speedup_of_next_scale"]}
                  for name, row in speed.items()},
        "speed_model": {k: ns.get(k) for k in ("ar_depth", "width", "parameters")},
        "training_steps": {"tokenizer": demo.results["tokenizer"]["steps"], "ar": demo.results["ar"]["steps"]},
        "training_precision": demo.results["ar"].get("precision", "auto"),
        "long_audio": long_summary(demo.results["long"]),
    }


def long_summary(long: dict[str, Any]) -> dict[str, Any]:
    """The `long` stage's headline figures: mean join ratios (~1: joins not detectable) of real sequences
    and their reconstructions, of generated clips, per-window class accuracy, and cost per second."""
    rec, gen, o = long["reconstruction"], long["generated"], long["overlap_frames"]
    side = gen.get("join_ratio_side_by_side", gen["join_ratio"])
    return {"seconds": long["seconds"], "overlap_frames": o,
            "reconstruction_join_ratio": {"original": rec["original"]["mean"], "crossfaded": rec[f"overlap_{o}"]["mean"],
                                          "side_by_side": rec["overlap_0"]["mean"]},
            "generated_join_ratio": {"crossfaded": gen["join_ratio"]["mean"], "side_by_side": side["mean"]},
            "accuracy": {"one_window": gen["accuracy_one_window"], "per_window_mean": gen["accuracy_long_mean"],
                         "worst_window": min(gen["accuracy_per_window"])},
            "seconds_per_audio_second": {"one_window": gen["seconds_per_audio_second_one_window"],
                                         "long": gen["seconds_per_audio_second_long"]},
            "cost_ratio": gen["cost_ratio"]}


def print_summary(summary: dict[str, Any]) -> None:
    """One screen: where the report is, accuracy vs real and random, FAD, reconstruction, speed."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    acc, fad, rec = summary["class_accuracy"], summary["fad_synth"], summary["reconstruction"]
    table = Table(title=f"nextscale demo ({summary['preset']}, {summary['device']}, "
                        f"{summary['total_seconds'] / 60:.1f} min of stages)")
    table.add_column("audio")
    table.add_column("class accuracy", justify="right")
    table.add_column("FAD (synth)", justify="right")
    table.add_row("real held-out clips", f"{acc['real_heldout']:.1%}", "0 (reference)")
    table.add_row("other real clips (another seed)", f"{acc['real_reference']:.1%}", f"{fad['real_reference']:.2f}")
    table.add_row("the same clips through SAT", f"{acc['sat_reconstruction']:.1%}", f"{fad['sat_reconstruction']:.2f}")
    table.add_row("generated by AAR", f"{acc['generated']:.1%}", f"{fad['generated']:.2f}")
    table.add_row("random tokens, same decoder", f"{acc['random_tokens']:.1%}", f"{fad['random_tokens']:.2f}")
    table.add_row("chance", f"{acc['chance']:.1%}", "")
    console.print(table)
    console.print(f"SAT reconstruction on held-out clips: mel distance {rec['mel_distance']:.3f}, "
                  f"SI-SDR {rec['si_sdr']:.1f} dB, level {rec['level_db']:+.1f} dB, codebook usage {rec['mean_usage']:.0%}")
    steps = summary["training_steps"]
    precision = {"bf16": ", bf16 autocast: this CPU multiplies bf16 natively"}.get(summary.get("training_precision"), "")
    console.print(f"trained here: SAT {steps['tokenizer']} steps, AAR {steps['ar']} steps (as many as the preset's "
                  f"budget buys on this machine{precision})")
    speed = Table(title=f"generation of 1 s, batch 1 (random weights, AR depth {summary['speed_model']['ar_depth']}, "
                        f"width {summary['speed_model']['width']})")
    for col in ("model", "steps", "seconds", "× next-scale time"):
        speed.add_column(col, justify="right" if col != "model" else "left")
    for name, row in summary["speed"].items():
        speed.add_row(name, str(row["steps"]), f"{row['seconds']:.3f}", f"{row['slower_than_next_scale']:.1f}")
    console.print(speed)
    print_long_summary(console, summary["long_audio"])
    console.print(f"report: [bold]{summary['report']}[/]")


def print_long_summary(console: Any, long: dict[str, Any]) -> None:
    """Two lines on long audio: joins of coded and generated clips, per-window accuracy and cost."""
    rec, gen, acc = long["reconstruction_join_ratio"], long["generated_join_ratio"], long["accuracy"]
    console.print(f"long audio ({long['seconds']:g} s, windows crossfaded over {long['overlap_frames']} frames; join "
                  f"ratio ~1 = joins not detectable): real sequences through SAT {rec['crossfaded']:.2f} (side by side "
                  f"{rec['side_by_side']:.2f}, original {rec['original']:.2f}); generated as independent windows "
                  f"{gen['crossfaded']:.2f} (side by side {gen['side_by_side']:.2f})")
    console.print(f"  class accuracy per window {acc['per_window_mean']:.1%} (worst {acc['worst_window']:.1%}) vs "
                  f"{acc['one_window']:.1%} for 1 s; {long['seconds_per_audio_second']['long']:.4f} s per second of "
                  f"audio, {long['cost_ratio']:.2f}x the 1 s figure")



def _taken_for(scores: dict[str, Any], name: str) -> str:
    """'chord ×3, noise_burst ×1': what the classifier heard instead of class `name`."""
    wrong = scores.get("confusions_generated", {}).get(name, {})
    return ", ".join(f"{other} ×{n}" for other, n in wrong.items())


def write_demo_report(demo: Demo) -> Path:
    from .data.manifest import read_manifest
    from .eval.recon import PAIR_METRICS
    from .eval.report import Audio, Curves, Image, Section, Table, write_report

    r = demo.results
    ev = r["evaluate"]
    classes = r["corpus"]["classes"]
    acc = [{"audio": "real held-out", "class accuracy": ev["generated"]["accuracy_real"], "FAD (synth)": 0.0},
           {"audio": "other real clips (another seed: the FAD floor)",
            "class accuracy": ev["real_reference"]["accuracy_generated"], "FAD (synth)": ev["real_reference"]["fad"]},
           {"audio": "held-out through SAT", "class accuracy": ev["reconstructed"]["accuracy_generated"],
            "FAD (synth)": ev["reconstructed"]["fad"]},
           {"audio": "generated (AAR)", "class accuracy": ev["generated"]["accuracy_generated"],
            "FAD (synth)": ev["generated"]["fad"]},
           {"audio": "random tokens", "class accuracy": ev["random"]["accuracy_generated"],
            "FAD (synth)": ev["random"]["fad"]},
           {"audio": "chance", "class accuracy": 1 / len(classes), "FAD (synth)": None}]
    by_class = [{"class": c, "held-out through SAT": ev["reconstructed"].get("accuracy_by_class_generated", {}).get(c),
                 "SAT: taken for": _taken_for(ev["reconstructed"], c),
                 "generated (AAR)": ev["generated"].get("accuracy_by_class_generated", {}).get(c),
                 "AAR: taken for": _taken_for(ev["generated"], c)} for c in classes]
    rec = ev["reconstruction"]
    # one real held-out clip per class, and the first generated sample of each class
    manifest = Path(r["corpus"]["heldout_manifest"])
    first_real: dict[str, Path] = {}
    for entry in read_manifest(manifest).entries:
        if entry.labels and entry.labels[0] not in first_real:
            first_real[entry.labels[0]] = Path(entry.path)
    gen_dir = Path(r["generate"]["generated"])
    real_items = [Audio(c, path=first_real[c]) for c in classes if c in first_real]
    recon_dir = Path(r["generate"]["reconstructed"])
    recon_items = [Audio(c, path=recon_dir / first_real[c].name) for c in classes
                   if c in first_real and (recon_dir / first_real[c].name).is_file()]
    gen_items = [Audio(c, path=gen_dir / f"{c}_00.wav") for c in classes if (gen_dir / f"{c}_00.wav").is_file()]
    preview_items = [Image(path, caption=c) for c, path in r["generate"]["previews"].items()]
    speed_rows = [{"model": row["model"], "steps": row["steps"], "seconds": row["median_s"],
                   "× next-scale": row["speedup_of_next_scale"], "parameters": row["parameters"]}
                  for row in ev["speed"]["rows"]]
    sections = [
        Section("Summary", text=f"Preset '{demo.preset.name}' on {demo.device}. Class accuracy is the synth "
                                "classifier's verdict on each clip's intended class.",
                items=[Table(acc), Table(by_class, title="class accuracy by class"),
                       Table([{"stage": k, "seconds": v} for k, v in demo.stage_seconds().items()], title="stage times")]),
        Section("Real held-out clips (one per class)", items=real_items),
        Section("The same clips encoded and decoded by SAT", items=recon_items),
        Section("Generated by AAR (first sample of each class)", items=gen_items),
        Section("Coarse-to-fine: each scale adds detail", items=preview_items),
        Section("Tokenizer reconstruction (held-out)", items=[
            Table([{k: rec[k] for k in ("n", *PAIR_METRICS, "mean_usage", "mean_perplexity")}]),
            Table(rec["per_scale"], title="per-scale codebook usage")]),
        Section("Generation speed (1 s of audio, batch 1, random weights)", items=[Table(speed_rows)]),
        long_section(r["long"]),
        Section("Training curves", items=[Curves(r["tokenizer"]["metrics"], title="SAT"),
                                          Curves(r["ar"]["metrics"], title="AAR")]),
    ]
    return write_report(demo.out / "report", "nextscale demo", sections)


def long_section(long: dict[str, Any]) -> Section:
    """The report's "Long audio" section: join ratios of real and generated long clips, per-window accuracy
    and cost per second, and players for a generated clip and a real sequence before and after SAT."""
    from .eval.report import Audio, Section, Table

    s, o = long_summary(long), long["overlap_frames"]
    rec, gen = long["reconstruction"], long["generated"]
    joins = [{"audio": "real event sequences", "join ratio": s["reconstruction_join_ratio"]["original"]},
             {"audio": f"real, through SAT, crossfaded over {o} frames", "join ratio": rec[f"overlap_{o}"]["mean"],
              "at crossfade centres": rec[f"overlap_{o}"]["centre_mean"]},
             {"audio": "real, through SAT, windows side by side", "join ratio": rec["overlap_0"]["mean"]},
             {"audio": f"generated, independent windows crossfaded over {o} frames", "join ratio": gen["join_ratio"]["mean"],
              "at crossfade centres": gen["join_ratio"]["centre_mean"]},
             {"audio": "generated, independent windows side by side", "join ratio": s["generated_join_ratio"]["side_by_side"]}]
    per_second = s["seconds_per_audio_second"]
    generation = [{"clips": "one window", "class accuracy": s["accuracy"]["one_window"],
                   "s per s of audio": per_second["one_window"], "× one window": 1.0},
                  {"clips": f"{long['seconds']:g} s ({gen['generated_windows']} windows)",
                   "class accuracy": s["accuracy"]["per_window_mean"], "worst window": s["accuracy"]["worst_window"],
                   "s per s of audio": per_second["long"], "× one window": s["cost_ratio"]}]
    wavs = long["wavs"]
    return Section(f"Long audio ({long['seconds']:g} s)", text=(
        "Join ratio: log-mel frame change across window joins over the change elsewhere (~1: joins not detectable; "
        f"{long['window_seconds']:g} s windows). The demo AAR was trained without window context, so its long clips "
        "are independent windows crossfaded (the chunked floor; benchmarks/long_generation.py trains an AAR that "
        "continues the previous window). Class accuracy per window is the synth classifier's, per second of audio."),
        items=[Table(joins, title="joins"), Table(generation, title="generation, batch of every class",
                     columns=["clips", "class accuracy", "worst window", "s per s of audio", "× one window"]),
               Audio("generated, independent windows crossfaded", path=wavs["generated"]),
               Audio("real event sequence through SAT, crossfaded", path=wavs["reconstructed"])])
