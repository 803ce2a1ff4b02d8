"""Encode / decode time of one second of audio for every shipped SAT config, on one CPU thread.

    python benchmarks/codec_speed.py            # -> results/codec_speed_cpu.json and .md

Decode cost does not depend on the weights, so random ones do: this puts the Fourier codec's
cost beside the SEANet sizes that reach a given quality at some budget (the tiny demo SEANet, the
d128 SEANet the published AR is trained on, the published SEANet). Batch 1, median of repeats.
"""
from __future__ import annotations

from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("sat-fourier-tiny", "sat-fourier", "sat-tiny", "sat-paper-d128", "sat-paper")


def main(threads: int = typer.Option(1), repeats: int = typer.Option(7),
         out: Path = typer.Option(ROOT / "benchmarks" / "results")) -> None:
    """Time encode and decode of 1 s for each config in CONFIGS."""
    import torch

    from nextscale.bench.codec import codec_times, random_codec
    from nextscale.bench.measure import machine_info, versions
    from nextscale.io import atomic_write_json

    torch.set_num_threads(threads)
    device, rows = torch.device("cpu"), []
    for name in CONFIGS:
        times = codec_times(random_codec(name, device), 1, device, warmup=2, repeats=repeats)
        rows.append({"config": name, "codec": times["codec"], "parameters": times["parameters"],
                     "encode_ms": 1000 * times["encode_s"], "decode_ms": 1000 * times["decode_s"]})
        print(f"{name:16s} {rows[-1]['codec']:8s} {rows[-1]['parameters']:>11,d} params  "
              f"encode {rows[-1]['encode_ms']:7.1f} ms  decode {rows[-1]['decode_ms']:7.1f} ms", flush=True)
    report = {"benchmark": "codec_speed", "machine": {"device": "cpu", "threads": threads, **machine_info(device)},
              "versions": versions(), "audio_seconds": 1.0, "batch": 1, "results": rows}
    atomic_write_json(out / "codec_speed_cpu.json", report)
    lines = [f"Encode / decode of 1 s at 24 kHz, batch 1, {threads} CPU thread(s), random weights", "",
             "| config | codec | parameters | encode ms | decode ms |", "|---|---|---:|---:|---:|"]
    lines += [f"| {r['config']} | {r['codec']} | {r['parameters']:,} | {r['encode_ms']:.1f} | {r['decode_ms']:.1f} |"
              for r in rows]
    (out / "codec_speed_cpu.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    from nextscale.cli import run_script

    run_script(main)
