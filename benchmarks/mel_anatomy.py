"""Where a tokenizer's mel distance comes from: per resolution, per class, quantised or not, loud or quiet cells.

    python benchmarks/mel_anatomy.py nextscale-demo               # a finished demo: its SAT and held-out clips
    python benchmarks/mel_anatomy.py --model RUN/tokenizer --manifest CLIPS/manifest.jsonl

For every held-out clip, the mel distance of the eval metric (`eval.recon.mel_distance`) split by resolution, for:

- the round trip (encode -> decode);
- the codec without MSRQ (encoder -> project_in -> project_out -> decoder): what the codes cost is the gap;
- for a Fourier codec, the clip's true STFT magnitudes (the codec's own frames) with uniform random phases: what a
  perfect magnitude with no phase at all would score; and the round trip's magnitudes and phases (the STFT of its
  output at the same frames) each joined with the input's other half: is the decoder's phase or its magnitude
  what costs the distance.

Then, at the coarsest and finest resolution, how much of the round trip's distance lies in the log-mel cells near each
clip's peak and in the quiet ones (> 40 / 80 dB under it), and whether it is too loud or too quiet there; and the share
of cells where the output is under the metric's floor while the input is above it (a clamped log gives those no
gradient). Writes RESULTS/mel_anatomy_<device>.json and a PNG (input | round trip | log-mel error) of one clip of each
of the worst kinds.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

RESULTS = Path(__file__).resolve().parent / "results"
FLOOR = 1e-5                       # the metric's log-mel floor (tokenizer.mel.log_mel_spectrogram)
SWAPS = ("true_magnitude_random_phase", "true_magnitude_decoded_phase", "decoded_magnitude_true_phase")  # Fourier codecs
BANDS = {"loud": (0.0, 40.0), "mid": (40.0, 80.0), "quiet": (80.0, math.inf)}   # dB under each clip's peak


def reconstructions(sat, wav, seed: int = 0) -> dict[str, Any]:
    """(1, 1, S) clip -> {name: (1, 1, S) audio} for the round trip, the unquantised codec and (Fourier) random phase."""
    import torch

    with torch.no_grad():
        out = {"round_trip": sat.decode(sat.encode(wav)),
               "not_quantised": sat.decode_latent(sat.quantizer.project_in(sat.encode_latent(wav)))}
        if sat.config.codec == "fourier":
            stft = sat.decoder.stft.parts[0]
            spec, decoded = stft(wav), stft(out["round_trip"][..., : wav.shape[-1]])
            phase = torch.rand(spec.shape, generator=torch.Generator().manual_seed(seed)) * 2 * math.pi
            out["true_magnitude_random_phase"] = stft.inverse(torch.polar(spec.abs(), phase))
            # the round trip's magnitudes and phases (its own codec frames) each with the input's other half:
            # which of the two its distance comes from
            out["true_magnitude_decoded_phase"] = stft.inverse(torch.polar(spec.abs(), decoded.angle()))
            out["decoded_magnitude_true_phase"] = stft.inverse(torch.polar(decoded.abs(), spec.angle()))
    return {k: v[..., : wav.shape[-1]] for k, v in out.items()}


def cell_split(ref, est, sample_rate: int, resolution: tuple[int, int, int]) -> dict[str, float]:
    """Mean |log-mel error| of one clip at one resolution, split by how far each cell of the input is under its peak
    (BANDS) and by sign (too loud / too quiet), plus the output-under-floor cells; every part is a share of the mean."""
    from nextscale.eval.embeddings.mel import log_mel

    n_fft, hop, n_mels = resolution
    a, b = (log_mel(x.reshape(-1), sample_rate, n_fft, hop, n_mels) for x in (ref, est))
    diff, under_peak = b - a, (a.max() - a) * 20 / math.log(10)    # natural-log magnitudes -> dB
    count = diff.numel()
    parts: dict[str, float] = {}
    for name, (lo, hi) in BANDS.items():
        cells = (under_peak >= lo) & (under_peak < hi)
        parts[f"{name}_cells"] = float(cells.sum()) / count
        parts[f"{name}_too_loud"] = float(diff[cells].clamp(min=0).sum()) / count
        parts[f"{name}_too_quiet"] = float((-diff[cells]).clamp(min=0).sum()) / count
    floor = math.log(FLOOR) + 1e-6
    stuck = (b <= floor) & (a > floor)
    parts["output_under_floor_cells"] = float(stuck.sum()) / count
    parts["output_under_floor_distance"] = float(diff[stuck].abs().sum()) / count
    return parts


def anatomy(sat, clips: list[tuple[str, Any]]) -> dict[str, Any]:
    """[(label, (1, 1, S) clip)] -> per-resolution and per-class mel distances of every reconstruction, and the round
    trip's cell split at the coarsest and finest resolution."""
    import numpy as np

    from nextscale.eval.recon import MEL_RESOLUTIONS, mel_distance

    rows: dict[str, list[tuple[str, list[float]]]] = {}
    splits: dict[int, list[dict[str, float]]] = {MEL_RESOLUTIONS[0][0]: [], MEL_RESOLUTIONS[-1][0]: []}
    for i, (label, wav) in enumerate(clips):
        for name, est in reconstructions(sat, wav, seed=i).items():
            per_res = [float(mel_distance(wav[0], est[0], sat.sample_rate, [r])) for r in MEL_RESOLUTIONS]
            rows.setdefault(name, []).append((label, per_res))
            if name == "round_trip":
                for r in MEL_RESOLUTIONS:
                    if r[0] in splits:
                        splits[r[0]].append(cell_split(wav, est, sat.sample_rate, r))
    out: dict[str, Any] = {}
    for name, items in rows.items():
        table = np.array([r for _, r in items])
        labels = sorted({label for label, _ in items})
        out[name] = {"mel_distance": float(table.mean()),
                     "per_resolution": {str(r[0]): float(v) for r, v in zip(MEL_RESOLUTIONS, table.mean(0))},
                     "per_class": {c: float(np.mean([np.mean(r) for label, r in items if label == c])) for c in labels}}
    out["round_trip_cells"] = {str(n): {k: float(np.mean([s[k] for s in parts])) for k in parts[0]}
                               for n, parts in splits.items() if parts}
    return out


def plot_worst(sat, clips: list[tuple[str, Any]], per_class: dict[str, float], path: Path, kinds: int = 4) -> None:
    """input | round trip | their log-mel difference (n_fft 2048) for the first clip of each of the worst kinds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from nextscale.eval.embeddings.mel import log_mel
    from nextscale.eval.recon import mel_distance

    worst = sorted(per_class, key=per_class.get, reverse=True)[:kinds]
    picked = [next((label, wav) for label, wav in clips if label == kind) for kind in worst]
    fig, axes = plt.subplots(len(picked), 3, figsize=(15, 3.2 * len(picked)), layout="constrained", squeeze=False)
    for row, (label, wav) in zip(axes, picked):
        with torch.no_grad():
            est = sat.decode(sat.encode(wav))[..., : wav.shape[-1]]
        a, b = (log_mel(x.reshape(-1), sat.sample_rate, 2048, 512, 128).numpy() for x in (wav, est))
        extent = [0, wav.shape[-1] / sat.sample_rate, 0, 128]
        level = row[0].imshow(a, origin="lower", aspect="auto", vmin=math.log(FLOOR), vmax=4, extent=extent, cmap="magma")
        row[1].imshow(b, origin="lower", aspect="auto", vmin=math.log(FLOOR), vmax=4, extent=extent, cmap="magma")
        error = row[2].imshow(b - a, origin="lower", aspect="auto", vmin=-6, vmax=6, extent=extent, cmap="RdBu_r")
        row[0].set_title(f"{label}: input")
        row[1].set_title(f"round trip (mel distance {float(mel_distance(wav[0], est[0], sat.sample_rate)):.2f})")
        row[2].set_title("round trip - input, nats (red: too loud)")
        row[0].set_ylabel("mel band")
    for ax in axes[-1]:
        ax.set_xlabel("seconds")
    fig.colorbar(level, ax=axes[:, :2].ravel().tolist(), shrink=0.6, location="bottom", label="log mel (floor -11.5)")
    fig.colorbar(error, ax=axes[:, 2].ravel().tolist(), shrink=0.6, location="bottom", label="nats")
    fig.savefig(path, dpi=55)
    plt.close(fig)


def main(demo: Path = typer.Argument(None, help="a finished `nextscale demo` folder (its SAT and held-out clips)"),
         model: Path = typer.Option(None, help="a saved SAT folder (instead of DEMO's)"),
         manifest: Path = typer.Option(None, help="held-out clips with one label each (instead of DEMO's)"),
         threads: int = typer.Option(2, help="torch intra-op threads"),
         out: Path = typer.Option(RESULTS)) -> None:
    import torch

    from nextscale.audio import crop_or_pad, load_audio
    from nextscale.bench.measure import machine_info, versions
    from nextscale.data.manifest import read_manifest
    from nextscale.errors import ConfigError
    from nextscale.io import atomic_write_json
    from nextscale.tokenizer.model import SAT

    if demo is not None:
        model = model or demo / "tokenizer" / "tokenizer"
        manifest = manifest or demo / "corpus" / "heldout" / "manifest.jsonl"
    if model is None or manifest is None:
        raise ConfigError("mel_anatomy: give a demo folder, or both --model and --manifest")
    torch.set_num_threads(threads)
    sat = SAT.from_pretrained(model).eval()
    clips = [(entry.labels[0] if entry.labels else "", crop_or_pad(load_audio(entry.path, sat.sample_rate),
                                                                     sat.clip_samples)[0][None])
             for entry in read_manifest(manifest).entries]
    result = anatomy(sat, clips)
    out.mkdir(parents=True, exist_ok=True)
    png = out / "mel_anatomy_cpu.png"
    plot_worst(sat, clips, result["round_trip"]["per_class"], png)
    atomic_write_json(out / "mel_anatomy_cpu.json", {
        "benchmark": "mel_anatomy", "model": str(model), "manifest": str(manifest), "clips": len(clips),
        "machine": machine_info(torch.device("cpu")), "versions": versions(), **result, "spectrograms": png.name})
    for name in ("round_trip", "not_quantised", *SWAPS):
        if name in result:
            print(f"{name}: mel distance {result[name]['mel_distance']:.3f}")
    print(f"wrote {out / 'mel_anatomy_cpu.json'} and {png}")


if __name__ == "__main__":
    from nextscale.cli import run_script

    run_script(main)
