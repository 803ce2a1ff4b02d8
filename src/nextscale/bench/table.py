"""Human-readable views of a speed-benchmark report: a rich table for the terminal, markdown for READMEs."""
from __future__ import annotations

from typing import Any

from .generation import MODEL_LABELS

COLUMNS = ["depth", "params", "model", "steps", "batch", "time (median ± IQR)", "clips/s", "RTF",
           "next-scale speed-up", "peak memory", "floor"]


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.2f} s"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def fmt_params(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.0f} k"


def rows(report: dict[str, Any]) -> list[list[str]]:
    out = []
    for r in report["results"]:
        ratio = r.get("speedup_of_next_scale")
        speedup = "—" if r["model"] == "next_scale" or ratio is None else f"{ratio:.1f}×"
        n = len(r["times_s"])
        time = f"{fmt_ms(r['median_s'])} ± {fmt_ms(r['iqr_s'])}" if n > 1 else f"{fmt_ms(r['median_s'])} (1 run)"
        out.append([str(r["depth"]), fmt_params(r["parameters"]), MODEL_LABELS.get(r["model"], r["model"]),
                    str(r["steps"]), str(r["batch"]), time, f"{r['clips_per_s']:.2f}", f"{r['rtf']:.3f}",
                    speedup, fmt_bytes(r["peak_memory_bytes"]), fmt_ms(r["floor_s"])])
    return out


def header_lines(report: dict[str, Any]) -> list[str]:
    m, v, s = report["machine"], report["versions"], report["settings"]
    where = m["gpu"] or f"{m['cpu']} ({m['cpu_cores_usable']} cores, {m['torch_threads']} torch threads)"
    mode = "+".join(x for x, on in (("compile", s["compile"]), ("cuda-graph", s["cuda_graph"])) if on) or "eager"
    lines = [f"device: {s['device']} — {where}",
             f"torch {v['torch']}, nextscale {v['nextscale']}, python {v['python']}; precision {s['precision']}, {mode}",
             f"{s['seconds']} s of audio, CFG {s['cfg']}, top-k {s['top_k']}, top-p {s['top_p']}; "
             f"transformer + sampling + SAT decoder; conditioner excluded; random weights"]
    if m["memory_bandwidth_bytes_per_s"] is None and not s.get("bandwidth"):
        lines.append("floor: memory bandwidth of this device unknown (CPU or unlisted GPU); pass --bandwidth")
    loads = [r["load_average_1min"] for r in report["results"] if r.get("load_average_1min") is not None]
    if loads:
        lines.append(f"1-min load average during the run: {min(loads):.1f}–{max(loads):.1f} "
                     f"on {m['cpu_cores_usable']} usable cores")
    if s.get("note"):
        lines.append(f"note: {s['note']}")
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The table as GitHub markdown, with the setting lines above it."""
    lines = [f"_{line}_  " for line in header_lines(report)] + [""]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "|".join("---" for _ in COLUMNS) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows(report)]
    return "\n".join(lines) + "\n"


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="nextscale generation speed", title_justify="left")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("depth", "model") else "right")
    for row in rows(report):
        table.add_row(*row)
    console = Console() if Console().is_terminal else Console(width=200)   # no wrapping in logs
    for line in header_lines(report):
        console.print(line, highlight=False, markup=False)
    console.print(table)
