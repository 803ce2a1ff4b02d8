"""The suite's ratios and its markdown: figures derived from the rows, one table per section.

Derived, never measured: next-scale's speed-up over each baseline at the same size, mode, batch and
scope, and each mode's speed-up over eager for the same model, size, batch and scope: from the row's own
paired timing (the mode and eager timed in turn) where it has one, else from the two rows.
"""
from __future__ import annotations

from typing import Any

from .generation import MODEL_LABELS
from .table import fmt_bytes, fmt_ms, fmt_params


def _generation(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in report["rows"].items() if k.startswith("generation/") and "error" not in r}


def _field(key: str, index: int) -> str:
    return key.split("/")[index]


def derived(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Speed-ups from the generation rows: next-scale over each baseline, and each mode over eager."""
    rows = _generation(report)
    over_baselines, over_eager = [], []
    for key, r in rows.items():
        _, depth, model, batch, mode, scope = key.split("/")
        if model != "next_scale":
            ref = rows.get(f"generation/{depth}/next_scale/{batch}/{mode}/{scope}")
            if ref is not None:
                over_baselines.append(dict(depth=depth, baseline=model, batch=r["batch"], mode=mode, scope=scope,
                                           speedup=r["median_s"] / ref["median_s"]))
        eager = rows.get(f"generation/{depth}/{model}/{batch}/eager/{scope}")
        if mode != "eager" and "speedup_over_eager_paired" in r:      # timed in turn with eager: drift-free
            over_eager.append(dict(depth=depth, model=model, batch=r["batch"], mode=mode, scope=scope,
                                   speedup=r["speedup_over_eager_paired"], paired=True))
        elif mode != "eager" and eager is not None:
            over_eager.append(dict(depth=depth, model=model, batch=r["batch"], mode=mode, scope=scope,
                                   speedup=eager["median_s"] / r["median_s"], paired=False))
    return {"next_scale_over_baselines": over_baselines, "mode_over_eager": over_eager}


def _table(columns: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|",
            *("| " + " | ".join(row) + " |" for row in rows), ""]


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}×"


def _share(x: float | None) -> str:
    return "unknown" if x is None else f"{100 * x:.1f} %"


def generation_table(report: dict[str, Any]) -> list[str]:
    d = derived(report)
    vs_ns = {(x["depth"], x["baseline"], x["batch"], x["mode"], x["scope"]): x["speedup"]
             for x in d["next_scale_over_baselines"]}
    vs_eager = {(x["depth"], x["model"], x["batch"], x["mode"], x["scope"]): x["speedup"] for x in d["mode_over_eager"]}
    out = []
    for key, r in _generation(report).items():
        depth, model, mode, scope = _field(key, 1), r["model"], _field(key, 4), r["scope"]
        at = (depth, model, r["batch"], mode, scope)
        out.append([depth, fmt_params(r["parameters"]), MODEL_LABELS.get(model, model), str(r["steps"]), str(r["batch"]),
                    mode, scope.replace("_", " "), f"{fmt_ms(r['median_s'])} ± {fmt_ms(r['iqr_s'])}",
                    f"{r['rtf']:.3f}", _ratio(vs_ns.get(at)), _ratio(vs_eager.get(at)),
                    fmt_ms(r["first_call_s"]) if r.get("first_call_s") is not None else "—",
                    fmt_ms(r["weight_floor_s"]), fmt_ms(r["flops_floor_s"]), fmt_bytes(r["peak_memory_bytes"])])
    columns = ["size", "params", "model", "steps", "batch", "mode", "timed", "time (median ± IQR)", "RTF",
               "next-scale speed-up", "speed-up over eager", "first call", "weight floor", "FLOPs floor", "peak memory"]
    return ["### Generation of 1 s", "", *_table(columns, out)]


def codec_table(report: dict[str, Any]) -> list[str]:
    out = [[r["config"], r["codec"], fmt_params(r["parameters"]), str(r["batch"]), fmt_ms(r["encode_s"]),
            fmt_ms(r["decode_s"]), f"{r['encode_s_per_audio_s']:.4f}", f"{r['decode_s_per_audio_s']:.4f}"]
           for k, r in report["rows"].items() if k.startswith("codec/") and "error" not in r]
    columns = ["config", "codec", "params", "batch", "encode", "decode", "encode s per s of audio",
               "decode s per s of audio"]
    return ["### SAT encode and decode", "", *_table(columns, out)]


def training_table(report: dict[str, Any]) -> list[str]:
    ar = [[r["size"], fmt_params(r["parameters"]), str(r["batch"]), _field(k, 3), r["attention_kernel_used"],
           f"{fmt_ms(r['median_s'])} ± {fmt_ms(r['iqr_s'])}", f"{r['steps_per_s']:.2f}", f"{r['tokens_per_s']:,.0f}",
           f"{fmt_ms(r['loader_s'])} ({_share(r['loader_share'])})", fmt_bytes(r["peak_memory_bytes"]),
           f"{r['flops_per_s'] / 1e12:.3f}", _share(r["mfu"]), fmt_ms(r["floor_s"]), fmt_ms(r["warmup_s"])]
          for k, r in report["rows"].items() if k.startswith("train_ar/") and "error" not in r]
    ar_columns = ["size", "params", "batch", "path", "attention", "step (median ± IQR)", "steps/s", "tokens/s",
                  "loader per step", "peak memory", "TFLOP/s", "MFU", "FLOPs floor", "warm-up"]
    sat = [[r["config"], r["codec"], str(r["batch"]), r["precision"], f"{fmt_ms(r['median_s'])} ± {fmt_ms(r['iqr_s'])}",
            f"{r['clips_per_s']:.2f}", f"{fmt_ms(r['loader_s'])} ({_share(r['loader_share'])})",
            fmt_bytes(r["peak_memory_bytes"])]
           for k, r in report["rows"].items() if k.startswith("train_sat/") and "error" not in r]
    sat_columns = ["config", "codec", "batch", "precision", "step (median ± IQR)", "clips/s", "loader per step",
                   "peak memory"]
    return ["### AR training (AAR)", "", *_table(ar_columns, ar), "### SAT training", "", *_table(sat_columns, sat)]


def header(report: dict[str, Any]) -> list[str]:
    m, v, s = report["machine"], report["versions"], report["settings"]
    where = m["gpu"] or f"{m['cpu']} ({m['cpu_cores_usable']} cores usable)"
    loads = [r["load_average_1min"] for r in report["rows"].values() if r.get("load_average_1min") is not None]
    peak, bandwidth = m["peak_flops"], m["memory_bandwidth_bytes_per_s"]
    peak_text = "unknown" if peak is None else f"{peak / 1e12:.0f} TFLOP/s dense"
    bandwidth_text = "unknown" if bandwidth is None else f"{bandwidth / 1e12:.2f} TB/s"
    lines = [f"_suite, budget {s['budget']}, device {s['device']}: {where}; {m['torch_threads']} torch threads_  ",
             f"_torch {v['torch']}, nextscale {v['nextscale']}, python {v['python']}; precision {s['precision']}; "
             f"random weights; generation: CFG on, top-k 200, top-p 0.95; updated {report['updated']}_  ",
             f"_peak: {peak_text}; memory bandwidth: {bandwidth_text} (the floors and MFU need them)_  "]
    if loads:
        lines.append(f"_1-min load average while measuring: {min(loads):.1f}–{max(loads):.1f}_  ")
    return lines + [""]


def errors(report: dict[str, Any]) -> list[str]:
    failed = [f"- `{k}`: {r['error']}" for k, r in report["rows"].items() if "error" in r]
    return ["### Rows that failed (a re-run tries them again)", "", *failed, ""] if failed else []


def markdown(report: dict[str, Any]) -> str:
    """Every section of the report as GitHub markdown."""
    return "\n".join(header(report) + generation_table(report) + codec_table(report) + training_table(report)
                     + errors(report))
