"""What `nextscale generate` leaves on disk: one WAV and spectrogram PNG per clip (plus the coarse-to-fine
scale grid with previews) and a settings.json that says how to make them again."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import torch


def clip_stem(prompt: str, index: int) -> str:
    """File stem for clip `index` of `prompt`: a short, filesystem-safe slug plus the index."""
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40].rstrip("-") or "clip"
    return f"{slug}_{index:02d}"


def write_clips(out: str | Path, audio: torch.Tensor, sample_rate: int, text: str, seed: int,
                previews: Sequence[torch.Tensor] | None = None, scales: Sequence[int] = ()) -> list[dict[str, Any]]:
    """audio (N, 1, S) as OUT/<stem>.wav + .png (+ <stem>_scales.png from `previews`); one entry per clip
    with its file names, peak and RMS."""
    from .audio import save_audio
    from .plots import plot_scale_previews, plot_spectrogram

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, clip in enumerate(audio):
        stem = clip_stem(text, i)
        save_audio(out / f"{stem}.wav", clip, sample_rate)
        plot_spectrogram(clip, sample_rate, out / f"{stem}.png", title=f"{text!r} #{i} (seed {seed})")
        entry = {"wav": f"{stem}.wav", "spectrogram": f"{stem}.png"}
        if previews:
            plot_scale_previews([p[i].cpu() for p in previews], sample_rate, out / f"{stem}_scales.png", scales=scales,
                                title=f"{text!r} #{i}: coarse to fine")
            entry["previews"] = f"{stem}_scales.png"
        entries.append(entry | {"peak": float(clip.abs().max()), "rms": float(clip.pow(2).mean().sqrt())})
    return entries


def write_settings(out: str | Path, settings: dict[str, Any]) -> Path:
    """OUT/settings.json (atomic, readable by all), with the library versions added."""
    from . import __version__
    from .io import atomic_write_json
    from .plots import readable_by_all

    path = Path(out) / "settings.json"
    atomic_write_json(path, settings | {"nextscale_version": __version__, "torch_version": torch.__version__})
    readable_by_all(path)
    return path
