"""The paper benchmark's figures: one JSON-able dict from a run's finished stages, its tables as Markdown,
and the things a person checks by eye (an HTML page with audio, a spectrogram grid).

`collect` reads only finished stages, so it can run after every stage: a partial run reports what it has.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .paper import GENERATION_TRIO, PHI_GROUP, RECORDED_GROUP, SCHEDULE_GROUP, SEED, PaperRun, ar_run_name, tokenizer_specs

GEN_METRICS = ("fad", "accuracy", "inception_score", "non_monotone", "final_share")
LISTEN_CLASSES = ("tone", "chord", "siren", "kick")      # the listening page's and the spectrogram grid's rows
LABELS = {"aar": "AAR (next-scale)", "next_token_scale": "next-token, SAT tokens", "next_token_rvq": "next-token, RVQ tokens"}


def mean_std(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean and sample standard deviation (n - 1; None for one value)."""
    v = [float(x) for x in values if x is not None]
    if not v:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else None, "n": len(v)}


def generation_figures(gen: dict[str, Any]) -> dict[str, Any]:
    """One generation stage's result, flattened to the metrics the tables use."""
    return {"fad": gen["fad"], "accuracy": gen["accuracy"], "inception_score": gen["inception_score"],
            "non_monotone": gen["coherence"]["non_monotone"], "final_share": gen["coherence"]["final_share"]}


def tokenizer_figures(run: PaperRun, name: str) -> dict[str, Any] | None:
    r = run.results
    if f"recon_{name}" not in r:
        return None
    rec, sat = r[f"recon_{name}"], r[f"sat_{name}"]
    return {"schedule": sat["schedule_kind"], "phi": sat["phi"], "steps": sat["steps"], "scales": rec["scales"],
            "num_scales": len(rec["scales"]), "tokens": rec["tokens"],
            **{k: rec[k] for k in ("mel_distance", "stft_distance", "si_sdr", "mean_usage", "mean_perplexity")},
            "round_trip_accuracy": rec["round_trip"]["accuracy"], "round_trip_fad": rec["round_trip"]["fad"],
            "per_scale": rec["per_scale"], "coherence_real": rec["coherence_real"]}


def correlations(rows: list[dict[str, Any]], xs: Sequence[str], ys: Sequence[str]) -> dict[str, Any]:
    """Pearson and Spearman correlation of each x with each y across rows (None below three rows)."""
    from scipy.stats import pearsonr, spearmanr

    out: dict[str, Any] = {"n": len(rows)}
    for x in xs:
        for y in ys:
            a = [row[x] for row in rows]
            b = [row[y] for row in rows]
            ok = len(rows) >= 3 and np.std(a) > 0 and np.std(b) > 0
            out[f"{x}~{y}"] = {"pearson": float(pearsonr(a, b)[0]) if ok else None,
                               "spearman": float(spearmanr(a, b)[0]) if ok else None}
    return out


def collect(run: PaperRun) -> dict[str, Any]:
    """Every finished figure of the run, grouped by the issue's six comparisons."""
    r, b = run.results, run.budget
    tokenizers = {n: f for n in tokenizer_specs(b) if (f := tokenizer_figures(run, n)) is not None}
    generation: dict[str, Any] = {}
    for model, tok in GENERATION_TRIO:
        seeds = {s: r["gen" + ar_run_name(model, tok, s)[2:]] for s in range(b.seeds)
                 if "gen" + ar_run_name(model, tok, s)[2:] in r}
        if not seeds:
            continue
        figures = {s: generation_figures(g) for s, g in seeds.items()}
        first = next(iter(seeds.values()))
        generation[model] = {"tokenizer": tok, "parameters": first["parameters"], "steps_per_clip": first["steps_per_clip"],
                             "seeds": figures, **{m: mean_std([f[m] for f in figures.values()]) for m in GEN_METRICS},
                             "ceiling_accuracy": tokenizers.get(tok, {}).get("round_trip_accuracy"),
                             "coherence_real": tokenizers.get(tok, {}).get("coherence_real", {}).get("non_monotone")}

    def ablation(names: Sequence[str]) -> list[dict[str, Any]]:
        rows = []
        for name in names:
            if name not in tokenizers:
                continue
            gen = r.get("gen" + ar_run_name("aar", name, SEED)[2:])
            t = tokenizers[name]
            rows.append({"tokenizer": name, "schedule": t["schedule"], "phi": t["phi"], "num_scales": t["num_scales"],
                         "tokens": t["tokens"], "steps_per_clip": t["num_scales"],
                         **{k: t[k] for k in ("mel_distance", "si_sdr", "round_trip_accuracy", "round_trip_fad", "mean_usage")},
                         "coherence_real": t["coherence_real"]["non_monotone"],
                         **({f"aar_{k}": v for k, v in generation_figures(gen).items()} if gen else {})})
        return rows

    _, fewer, more = b.scales
    utilisation = [{"tokenizer": n, **{k: t[k] for k in ("mean_usage", "mean_perplexity", "mel_distance", "si_sdr",
                                                           "round_trip_accuracy")},
                    "per_scale_usage": [s["usage"] for s in t["per_scale"]],
                    "per_scale_perplexity": [s["perplexity"] for s in t["per_scale"]]} for n, t in tokenizers.items()]
    return {
        "tokenizers": tokenizers,
        "generation": generation,
        "speed": r.get("speed"),
        "schedules": ablation(SCHEDULE_GROUP + (f"quadratic_{fewer}", f"quadratic_{more}")),
        "phi": ablation(PHI_GROUP),
        "audio_types": {n: r[f"recorded_{n}"] for n in RECORDED_GROUP if f"recorded_{n}" in r},
        "utilisation": {"rows": utilisation,
                        "correlation": correlations(utilisation, ("mean_usage", "mean_perplexity"),
                                                    ("mel_distance", "si_sdr", "round_trip_accuracy"))},
    }


# ---------------------------------------------------------------------- Markdown
def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict) and "mean" in value:
        if value["mean"] is None:
            return "—"
        std = value.get("std")
        return _fmt(value["mean"], digits) + ("" if std is None else f" ± {_fmt(std, digits)}")
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def md_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(not run yet)\n"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown(figures: dict[str, Any]) -> str:
    """The tables of `collect`'s output, in the order of the README section."""
    gen_rows = [{"model": LABELS[m], "tokenizer": g["tokenizer"], "parameters": g["parameters"],
                 "steps / clip": g["steps_per_clip"], "seeds": g["fad"]["n"], "FAD (synth)": g["fad"],
                 "class accuracy": g["accuracy"], "tokenizer ceiling": g["ceiling_accuracy"],
                 "inception score": g["inception_score"], "non-monotone": g["non_monotone"],
                 "real maps' non-monotone": g["coherence_real"]} for m, g in figures["generation"].items()]
    speed = figures.get("speed") or {"rows": []}
    speed_rows = [{"model": LABELS.get(row["model"], row["model"]), "batch": row["batch"],
                   "s / clip": row["seconds_per_clip"]} for row in speed["rows"]]
    abl_cols = ("tokenizer", "num_scales", "tokens", "mel_distance", "si_sdr", "round_trip_accuracy", "mean_usage",
                "coherence_real", "aar_fad", "aar_accuracy", "aar_non_monotone")
    type_rows = [{"tokenizer": name, "kind": kind, **vals} for name, res in figures["audio_types"].items()
                 for kind, vals in res["per_kind"].items()]
    corr = figures["utilisation"]["correlation"]
    corr_rows = [{"pair": k, **v} for k, v in corr.items() if isinstance(v, dict)]
    tok_rows = [{"tokenizer": n, **t} for n, t in figures["tokenizers"].items()]
    return "\n".join([
        "### Tokenizers: held-out reconstruction and codebook use\n",
        md_table(tok_rows, ("tokenizer", "schedule", "phi", "num_scales", "tokens", "mel_distance", "si_sdr",
                            "round_trip_accuracy", "round_trip_fad", "mean_usage", "mean_perplexity")),
        "### Generation: AAR vs next-token (mean ± std over seeds)\n",
        md_table(gen_rows, ("model", "tokenizer", "parameters", "steps / clip", "seeds", "FAD (synth)", "class accuracy",
                            "tokenizer ceiling", "inception score", "non-monotone", "real maps' non-monotone")),
        "### Generation time per clip (tokens + decoding, timed in turns)\n",
        md_table(speed_rows, ("model", "batch", "s / clip")),
        "### Scale schedules\n", md_table(figures["schedules"], abl_cols),
        "### Phi sharing\n", md_table(figures["phi"], abl_cols),
        "### Per audio type (recorded corpus, tokenizers trained on it)\n",
        md_table(type_rows, ("tokenizer", "kind", "n", "mel_distance", "stft_distance", "si_sdr")),
        f"### Codebook utilisation vs quality (across {corr['n']} tokenizers)\n",
        md_table(corr_rows, ("pair", "pearson", "spearman")),
    ])


# ---------------------------------------------------------------------- for the eye
def write_listening_page(run: PaperRun, classes: Sequence[str] = LISTEN_CLASSES) -> Path | None:
    """OUT/report/index.html: the tables, and for a few classes a real clip, its round trips and one sample
    of each generation contender (seed 0), as players with spectrograms."""
    from ..eval.report import Audio, Section, Table, write_report

    r = run.results
    if "heldout" not in r:
        return None
    figures = collect(run)
    sections = [Section("Generation (mean over seeds)", items=[Table([
        {"model": LABELS[m], **{k: g[k]["mean"] for k in ("fad", "accuracy", "inception_score")},
         "ceiling": g["ceiling_accuracy"]} for m, g in figures["generation"].items()])])]
    heldout = Path(r["heldout"]["manifest"]).parent
    for cls in classes:
        items = []
        real = sorted(heldout.glob(f"**/{cls}*.wav"))
        if real:
            items.append(Audio("real held-out", path=real[0]))
            for tok in ("quadratic", "rvq"):
                recon = run.out / "samples" / f"recon_{tok}" / real[0].name
                if recon.is_file():
                    items.append(Audio(f"round trip: {tok}", path=recon))
        for model, tok in GENERATION_TRIO:
            sample = run.out / "samples" / ("gen" + ar_run_name(model, tok, SEED)[2:]) / f"{cls}_00.wav"
            if sample.is_file():
                items.append(Audio(LABELS[model], path=sample))
        if items:
            sections.append(Section(cls, items=items))
    return write_report(run.out / "report", "nextscale: the paper's comparisons", sections)
