"""The paper's comparisons as one resumable run (`benchmarks/paper_claims.py`).

Every contender gets the same data, steps, batch, optimiser, sampling and seeds; the only
differences are the ones under test:

    generation   AAR (K steps) vs the next-token baseline on the same SAT tokens (scale order,
                 L steps) vs the next-token baseline on RVQ tokens (T x levels steps), seeds 0..S-1
    schedules    quadratic / linear / log at K scales, quadratic at fewer and more scales (SAT + AAR)
    phi          none / shared / partial / unshared Phi (SAT + AAR); partial is the base tokenizer
    audio types  the schedules trained and scored on the recorded corpus, per kind of sound
    utilisation  per-scale codebook usage and perplexity beside every tokenizer's reconstruction
    coherence    how much each added scale changes the log-mel, real vs generated token maps

Stages (`nextscale.stages.StageRunner`) leave markers in OUT/stages; training stages also resume
from their checkpoints, so a killed run continues where it stopped. `write_results` can be called at
any point and reports whatever has finished.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import read_yaml
from ..demo import SAMPLING, RunSizes, has_checkpoint, sample_names, train_section, write_labelled
from ..errors import ConfigError
from ..stages import StageRunner

SEED = 0
HELDOUT_SEED = 7_777
GENERATION_TRIO = (("aar", "quadratic"), ("next_token_scale", "quadratic"), ("next_token_rvq", "rvq"))
MODEL_KINDS = {"aar": ("aar", "scale"), "next_token_scale": ("next_token", "scale"), "next_token_rvq": ("next_token", "rvq")}


@dataclasses.dataclass
class PaperBudget(RunSizes):
    """Sizes of one run. `small` fits 2 CPU cores in about 90 minutes; `full` is the paper-size GPU recipe."""

    coherence_clips: int = 24                       # token maps scored for scale coherence, per model
    seeds: int = 3                                  # of the generation comparison
    scales: tuple[int, int, int] = (16, 8, 32)      # base, fewer, more (all quadratic)
    rvq_levels: int = 10
    sat_recipe: str = "sat-fourier-tiny"
    ar_recipe: str = "aar-synth"
    timing_repeats: int = 3


BUDGETS = {
    "small": PaperBudget("small", n_train=1200, n_heldout=120, sat_steps=400, sat_batch=8, ar_steps=480, ar_batch=16,
                         classifier_steps=400, classifier_n=1200, samples_per_class=8, coherence_clips=24, seeds=3),
    "full": PaperBudget("full", n_train=24_000, n_heldout=480, sat_steps=20_000, sat_batch=32, ar_steps=20_000,
                        ar_batch=64, classifier_steps=2000, classifier_n=4800, samples_per_class=32, coherence_clips=96,
                        seeds=3, sat_recipe="sat-fourier",
                        ar_model={"depth": 16, "width": 1024, "heads": 16, "mlp_ratio": 4.0}, timing_repeats=10),
    "smoke": PaperBudget("smoke", n_train=24, n_heldout=24, sat_steps=2, sat_batch=4, ar_steps=2, ar_batch=8,
                         classifier_steps=2, classifier_n=48, samples_per_class=1, coherence_clips=4, seeds=2,
                         scales=(4, 3, 6), rvq_levels=3,
                         sat_model={"convnext_width": 32, "convnext_layers": 1, "codebook_size": 32, "kmeans_iters": 2},
                         ar_model={"depth": 1, "width": 32, "heads": 1, "cond_dim": 16}, timing_repeats=1),
}


# ---------------------------------------------------------------------- contenders
def base_sat_model(budget: PaperBudget) -> dict[str, Any]:
    return read_yaml(budget.sat_recipe)["model"] | budget.sat_model


def tokenizer_specs(budget: PaperBudget) -> dict[str, dict[str, Any]]:
    """Tokenizer name -> overrides of the base model section. `quadratic` (K scales, partial Phi) is the base;
    schedules whose early scales collide at this T are spread apart (`spread_schedule`) and stored explicitly."""
    from ..tokenizer.model import SATConfig
    from ..tokenizer.schedules import spread_schedule

    K, fewer, more = budget.scales
    T = SATConfig(**base_sat_model(budget)).num_frames

    def schedule(kind: str, n: int) -> dict[str, Any]:
        return {"schedule": "explicit", "num_scales": n, "scales": spread_schedule(kind, T, n), "schedule_kind": kind}

    return {
        "quadratic": schedule("quadratic", K) | {"phi": "partial"},
        "linear": schedule("linear", K) | {"phi": "partial"},
        "log": schedule("log", K) | {"phi": "partial"},
        f"quadratic_{fewer}": schedule("quadratic", fewer) | {"phi": "partial"},
        f"quadratic_{more}": schedule("quadratic", more) | {"phi": "partial"},
        "phi_none": schedule("quadratic", K) | {"phi": "none"},
        "phi_shared": schedule("quadratic", K) | {"phi": "shared"},
        "phi_unshared": schedule("quadratic", K) | {"phi": "unshared"},
        "rvq": {"schedule": "rvq", "num_scales": budget.rvq_levels, "phi": "none", "scales": None, "schedule_kind": "rvq"},
    }


SCHEDULE_GROUP = ("quadratic", "linear", "log")       # + quadratic_<fewer>, quadratic_<more>
PHI_GROUP = ("phi_none", "phi_shared", "quadratic", "phi_unshared")   # quadratic = partial
RECORDED_GROUP = ("quadratic", "linear", "log")


def sat_model_section(budget: PaperBudget, name: str) -> dict[str, Any]:
    spec = {k: v for k, v in tokenizer_specs(budget)[name].items() if k != "schedule_kind"}
    return base_sat_model(budget) | spec


def ar_run_name(model: str, tokenizer: str, seed: int) -> str:
    return f"ar_{model}_{tokenizer}_s{seed}"


# ---------------------------------------------------------------------- the runner
class PaperRun(StageRunner):
    """One paper-claims directory; `run()` goes through every stage in priority order."""

    def __init__(self, out: str | Path, budget: str = "small", device: str = "cpu", progress: bool = True,
                 recorded: str | Path | None = None, log: Callable[[str], None] = print):
        if budget not in BUDGETS:
            raise ConfigError(f"paper benchmark budget {budget!r}: unknown; choose one of {', '.join(BUDGETS)}")
        super().__init__(out, budget, log)
        self.budget = BUDGETS[budget]
        self.device = device
        self.progress = progress
        self.recorded = Path(recorded) if recorded else None

    # ---- plan ------------------------------------------------------------------------------
    def plan(self) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
        """(stage, function) in the order they run: the generation comparison first, the ablations after."""
        b = self.budget
        steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [("heldout", self.stage_heldout),
                                                                  ("classifier", self.stage_classifier)]
        for name in ("quadratic", "rvq"):
            steps += self.tokenizer_stages(name)
        for seed in range(b.seeds):
            for model, tok in GENERATION_TRIO:
                steps += self.ar_stages(model, tok, seed)
        steps.append(("speed", self.stage_speed))
        _, fewer, more = b.scales
        for name in ("linear", "log", f"quadratic_{fewer}", f"quadratic_{more}", "phi_none", "phi_shared", "phi_unshared"):
            steps += self.tokenizer_stages(name) + self.ar_stages("aar", name, SEED)
        if self.recorded_manifests():
            for name in RECORDED_GROUP:
                steps.append((f"recorded_{name}", lambda name=name: self.stage_recorded(name)))
        return steps

    def tokenizer_stages(self, name: str) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
        return [(f"sat_{name}", lambda: self.stage_sat(name)), (f"recon_{name}", lambda: self.stage_recon(name)),
                (f"tokens_{name}", lambda: self.stage_tokens(name))]

    def ar_stages(self, model: str, tokenizer: str, seed: int) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
        run = ar_run_name(model, tokenizer, seed)
        return [(run, lambda: self.stage_ar(model, tokenizer, seed)),
                ("gen" + run[2:], lambda: self.stage_generate(model, tokenizer, seed))]

    def run(self, after_stage: Callable[[PaperRun], None] | None = None) -> None:
        """Run (or reuse) every stage; `after_stage(self)` after each (e.g. to rewrite the results JSON)."""
        self.out.mkdir(parents=True, exist_ok=True)
        for name, fn in self.plan():
            torch.manual_seed(SEED)
            self.run_stage(name, fn)
            if after_stage is not None:
                after_stage(self)

    def recorded_manifests(self) -> tuple[Path, Path] | None:
        if self.recorded is None:
            return None
        train, heldout = self.recorded / "train.csv", self.recorded / "heldout.csv"
        return (train, heldout) if train.is_file() and heldout.is_file() else None

    # ---- shared stages ------------------------------------------------------------------------
    def stage_heldout(self) -> dict[str, Any]:
        from ..data.export import export_corpus
        from ..data.synth import KINDS

        manifest = export_corpus(self.out / "heldout", self.budget.n_heldout, HELDOUT_SEED)
        return {"manifest": str(manifest), "classes": list(KINDS)}

    def stage_classifier(self) -> dict[str, Any]:
        from ..eval.train_classifier import train_classifier

        b = self.budget
        summary = train_classifier(self.out / "classifier", n_train=b.classifier_n, n_heldout=max(48, b.classifier_n // 4),
                                   steps=b.classifier_steps, device=self.device, progress=self.progress)
        return {"classifier": str(self.out / "classifier"), "accuracy": summary.get("heldout_accuracy")}

    def backend(self) -> Any:
        from ..eval.embeddings import get_embedding

        return get_embedding("synth", classifier=self.results["classifier"]["classifier"])

    def score_set(self, folder: Path) -> dict[str, Any]:
        """FAD(synth), class accuracy and inception score of the WAVs in `folder` against the held-out clips."""
        from ..eval.evaluate import evaluate_sets

        scores = evaluate_sets(self.results["heldout"]["manifest"], folder, self.backend(),
                               self.out / "embedding-cache", progress=self.progress)
        return {"fad": scores.get("fad"), "accuracy": scores.get("accuracy_generated"),
                "accuracy_real": scores.get("accuracy_real"), "inception_score": scores.get("inception_score")}

    # ---- tokenizers ---------------------------------------------------------------------------
    def sat_config(self, name: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        b = self.budget
        recipe = read_yaml(b.sat_recipe)
        return {"model": sat_model_section(b, name), "data": data or {"source": "synth", "n": b.n_train, "seed": SEED},
                "loss": recipe.get("loss", {}), "optim": recipe.get("optim", {}) | {"warmup_steps": max(1, b.sat_steps // 20)},
                "train": train_section(b.sat_steps, b.sat_batch, self.device, self.progress) | recipe.get("train", {})}

    def train_sat(self, run: Path, config: dict[str, Any]) -> dict[str, Any]:
        from ..train.tokenizer import load_sat_train_config, train_tokenizer

        cfg = load_sat_train_config(config)
        result = train_tokenizer(cfg, run, resume=has_checkpoint(run))
        return {"model": str(run / "tokenizer"), "steps": result.step, "metrics": str(run / "metrics.jsonl")}

    def stage_sat(self, name: str) -> dict[str, Any]:
        spec = tokenizer_specs(self.budget)[name]
        return self.train_sat(self.out / "tokenizers" / name, self.sat_config(name)) | {
            "schedule_kind": spec["schedule_kind"], "phi": spec["phi"]}

    def load_sat(self, name: str) -> Any:
        from ..tokenizer.model import SAT

        return SAT.from_pretrained(self.results[f"sat_{name}"]["model"], map_location=self.device).eval()

    def heldout_clips(self, sat: Any, n: int) -> torch.Tensor:
        """The first `n` held-out clips (B, 1, S) at `sat`'s rate and length, every class in turn (clip i has
        class i mod 12)."""
        from ..audio import crop_or_pad, load_audio
        from ..data.manifest import read_manifest

        entries = read_manifest(Path(self.results["heldout"]["manifest"])).entries[:n]
        return torch.stack([crop_or_pad(load_audio(e.path, sat.sample_rate), sat.clip_samples)[0] for e in entries])

    @torch.no_grad()
    def stage_recon(self, name: str) -> dict[str, Any]:
        from ..eval.recon_run import evaluate_tokenizer, write_reconstructions
        from ..eval.scale_coherence import scale_coherence

        sat = self.load_sat(name)
        manifest = self.results["heldout"]["manifest"]
        rec = evaluate_tokenizer(self.results[f"sat_{name}"]["model"], manifest, n=self.budget.n_heldout,
                                 device=self.device, progress=self.progress)
        folder = write_reconstructions(sat, manifest, self.out / "samples" / f"recon_{name}")
        codes = sat.encode(self.heldout_clips(sat, self.budget.coherence_clips).to(self.device))
        return {"scales": sat.scales, "tokens": sum(sat.scales), "parameters": sat.num_parameters(),
                **{k: rec[k] for k in ("mel_distance", "stft_distance", "si_sdr", "mean_usage", "mean_perplexity", "per_scale")},
                "round_trip": self.score_set(folder), "coherence_real": scale_coherence(sat, codes)}

    def stage_tokens(self, name: str) -> dict[str, Any]:
        from ..data import DataConfig, build_dataset, collate_batch
        from ..train.token_cache import build_token_cache

        sat = self.load_sat(name)
        dataset = build_dataset(DataConfig(source="synth", n=self.budget.n_train, seed=SEED), "train")
        index = build_token_cache(sat, dataset, self.out / "tokens" / name, collate_batch,
                                  tokenizer_path=self.results[f"sat_{name}"]["model"], batch_size=32,
                                  device=self.device, progress=self.progress)
        return {"tokens": str(index.parent)}

    # ---- AR models ----------------------------------------------------------------------------
    def stage_ar(self, model: str, tokenizer: str, seed: int) -> dict[str, Any]:
        from ..ar.config import tokenizer_fit
        from ..data.synth import KINDS
        from ..train.ar import load_ar_train_config, train_ar

        b = self.budget
        kind, order = MODEL_KINDS[model]
        recipe = read_yaml(b.ar_recipe)
        section = recipe["model"] | b.ar_model | tokenizer_fit(self.load_sat(tokenizer)) | {
            "kind": kind, "num_classes": len(KINDS)} | ({"order": order} if kind == "next_token" else {})
        cfg = load_ar_train_config({"model": section, "data": {"tokens": self.results[f"tokens_{tokenizer}"]["tokens"]},
                                    "optim": recipe.get("optim", {}) | {"warmup_steps": max(1, b.ar_steps // 20)},
                                    "train": train_section(b.ar_steps, b.ar_batch, self.device, self.progress, seed=seed)})
        run = self.out / "ar" / ar_run_name(model, tokenizer, seed)
        result = train_ar(cfg, run, resume=has_checkpoint(run))
        return {"pipeline": str(run / "pipeline"), "steps": result.step, "metrics": str(run / "metrics.jsonl")}

    def load_pipeline(self, model: str, tokenizer: str, seed: int) -> Any:
        from ..pipeline import Pipeline

        return Pipeline.from_pretrained(self.results[ar_run_name(model, tokenizer, seed)]["pipeline"], device=self.device)

    @torch.no_grad()
    def stage_generate(self, model: str, tokenizer: str, seed: int) -> dict[str, Any]:
        from ..eval.scale_coherence import scale_coherence

        pipe = self.load_pipeline(model, tokenizer, seed)
        per_class = self.budget.samples_per_class
        prompts = [c for c in pipe.conditioner.classes for _ in range(per_class)]
        out = pipe.generate(prompts, seed=seed, batch_size=64, progress=self.progress, **SAMPLING)
        folder = write_labelled(self.out / "samples" / ("gen" + ar_run_name(model, tokenizer, seed)[2:]),
                                sample_names(prompts, per_class), prompts, out.audio, pipe.sample_rate)
        # coherence on clips spread over the classes, as many as the real maps it is compared with
        pick = torch.linspace(0, len(prompts) - 1, min(self.budget.coherence_clips, len(prompts))).long()
        ar = pipe.ar
        return {"n": len(prompts), "parameters": ar.num_parameters(), "steps_per_clip": ar_steps_per_clip(ar),
                **self.score_set(folder), "coherence": scale_coherence(pipe.sat, [c[pick.to(c.device)] for c in out.codes])}

    def stage_speed(self) -> dict[str, Any]:
        """Generation time per clip (tokens and decoding, batch 1 and 8) of the seed-0 trio, timed in turns."""
        from ..eval.long_form import interleaved_times

        runs: dict[str, Callable[[], Any]] = {}
        for model, tok in GENERATION_TRIO:
            pipe = self.load_pipeline(model, tok, SEED)
            for batch in (1, 8):
                prompts = pipe.conditioner.classes[:1] * batch
                runs[f"{model}|{batch}"] = (lambda pipe=pipe, prompts=prompts:
                                            pipe.generate(prompts, seed=0, batch_size=len(prompts), progress=False, **SAMPLING))
        for fn in runs.values():     # warm-up: first calls allocate caches
            fn()
        _, best = interleaved_times(runs, self.budget.timing_repeats)
        rows = []
        for key, seconds in best.items():
            model, batch = key.split("|")
            rows.append({"model": model, "batch": int(batch), "seconds": seconds, "seconds_per_clip": seconds / int(batch)})
        return {"rows": rows, "threads": torch.get_num_threads(), "repeats": self.budget.timing_repeats}

    # ---- audio types (open question 2) -------------------------------------------------------
    def stage_recorded(self, name: str) -> dict[str, Any]:
        from ..data.manifest import read_manifest
        from ..eval.recon_run import evaluate_tokenizer

        train, heldout = self.recorded_manifests()
        trained = self.train_sat(self.out / "recorded" / name,
                                 self.sat_config(name, data={"source": "manifest", "path": str(train)}))
        entries = read_manifest(heldout).entries
        rec = evaluate_tokenizer(trained["model"], str(heldout), n=len(entries), device=self.device, progress=self.progress)
        kinds = {str(Path(e.path).resolve()): (e.labels[0] if e.labels else "unlabelled") for e in entries}
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in rec["per_clip"]:
            groups.setdefault(kinds.get(str(Path(row["path"]).resolve()), "unlabelled"), []).append(row)
        metrics = ("mel_distance", "stft_distance", "si_sdr")
        per_kind = {kind: {"n": len(rows), **{m: sum(r[m] for r in rows) / len(rows) for m in metrics}}
                    for kind, rows in sorted(groups.items())}
        return trained | {"n": rec["n"], **{m: rec[m] for m in metrics + ("mean_usage", "mean_perplexity")},
                          "per_kind": per_kind}


def ar_steps_per_clip(ar: Any) -> int:
    """Forward passes one clip takes: K scales for AAR, one per token for the next-token baseline."""
    return len(ar.config.scales) if ar.config.kind == "aar" else ar.config.num_tokens
