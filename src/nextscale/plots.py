"""Plot helpers shared by generation, training and evaluation: a log-mel spectrogram of a clip, a grid
of coarse-to-fine per-scale previews, and loss curves from a run's metrics.jsonl.

Figures are drawn on a bare matplotlib `Figure` (Agg canvas), never through pyplot, so nothing here
touches global backend state or leaks figures in long training runs.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from .errors import DataError, NextscaleError
from .io import atomic_write_bytes, iter_jsonl
from .tokenizer.mel import log_mel_spectrogram


def _as_mono_numpy(wav: torch.Tensor | np.ndarray) -> np.ndarray:
    x = wav.detach().float().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav, dtype=np.float32)
    x = np.squeeze(x)
    if x.ndim == 2:  # (C, S): mix down
        x = x.mean(axis=0)
    if x.ndim != 1 or x.size == 0:
        raise NextscaleError(f"expected one clip (S,), (1, S) or (1, 1, S), got shape {tuple(np.shape(wav))}")
    if not np.all(np.isfinite(x)):
        raise NextscaleError("the waveform holds NaN or infinite samples; nothing sensible to plot")
    return x


def log_mel(wav: torch.Tensor | np.ndarray, sample_rate: int, n_fft: int = 1024, hop: int = 256,
            n_mels: int = 80) -> np.ndarray:
    """Log10 mel power spectrogram (n_mels, frames) of one clip, floored at 1e-10: the losses' mel
    front-end (`tokenizer.mel`), so a plot shows what training and the metrics see."""
    magnitudes = log_mel_spectrogram(torch.from_numpy(_as_mono_numpy(wav)), sample_rate, n_fft, hop, n_mels)
    return (magnitudes * (2.0 / math.log(10.0))).numpy()


def _draw_spectrogram(ax, wav, sample_rate: int, title: str | None, vmin: float | None = None) -> None:
    spec = log_mel(wav, sample_rate)
    seconds = _as_mono_numpy(wav).size / sample_rate
    floor = spec.max() - 8.0 if vmin is None else vmin  # 80 dB of range
    top = max(float(spec.max()), floor + 1e-6)            # a clip quieter than a shared floor draws black
    ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=floor, vmax=top,
              extent=(0.0, seconds, 0, spec.shape[0]))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    if title:
        ax.set_title(title, fontsize=9)


def _save(fig: Figure, path: str | Path) -> Path:
    import io

    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    readable_by_all(path)
    return path


def readable_by_all(path: Path) -> None:
    """atomic_write_* create files through mkstemp (mode 0600); outputs meant to be shared get 0644."""
    os.chmod(path, 0o644)


def plot_spectrogram(wav: torch.Tensor | np.ndarray, sample_rate: int, path: str | Path,
                     title: str | None = None) -> Path:
    """Write a log-mel spectrogram PNG of one clip ((S,), (1, S) or (1, 1, S))."""
    fig = Figure(figsize=(6, 3))
    _draw_spectrogram(fig.add_subplot(1, 1, 1), wav, sample_rate, title)
    return _save(fig, path)


def plot_scale_previews(previews: Sequence[torch.Tensor | np.ndarray], sample_rate: int, path: str | Path,
                        scales: Sequence[int] | None = None, title: str | None = None) -> Path:
    """Grid of spectrograms of the coarse-to-fine previews (previews[k] decoded from scales ≤ k),
    on one colour scale so detail visibly appears as scales are added."""
    if len(previews) == 0:
        raise NextscaleError("no previews to plot")
    if scales is not None and len(scales) != len(previews):
        raise NextscaleError(f"{len(previews)} previews but {len(scales)} scale sizes")
    vmin = log_mel(previews[-1], sample_rate).max() - 8.0
    cols = min(4, len(previews))
    rows = math.ceil(len(previews) / cols)
    fig = Figure(figsize=(3 * cols, 2.2 * rows))
    for k, wav in enumerate(previews):
        label = ("scale 1" if k == 0 else f"scales 1–{k + 1}") + (f" (n={scales[k]})" if scales is not None else "")
        ax = fig.add_subplot(rows, cols, k + 1)
        _draw_spectrogram(ax, wav, sample_rate, label, vmin=vmin)
        ax.label_outer()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_comparison(rows: Sequence[tuple[str, Sequence[torch.Tensor | np.ndarray]]], columns: Sequence[str],
                    sample_rate: int, path: str | Path, title: str | None = None) -> Path:
    """Grid of spectrograms, one row per clip (e.g. real | tokenizer A | tokenizer B), each row on the
    colour scale of its first column so a lost harmonic or sweep shows as missing, not as rescaled."""
    if not rows or any(len(clips) != len(columns) for _, clips in rows):
        raise NextscaleError(f"comparison plot: every row needs {len(columns)} clips ({', '.join(columns)})")
    fig = Figure(figsize=(2.8 * len(columns), 2.0 * len(rows)))
    for r, (label, clips) in enumerate(rows):
        vmin = log_mel(clips[0], sample_rate).max() - 8.0
        for c, wav in enumerate(clips):
            ax = fig.add_subplot(len(rows), len(columns), r * len(columns) + c + 1)
            _draw_spectrogram(ax, wav, sample_rate, f"{label}: {columns[c]}", vmin=vmin)
            ax.label_outer()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def read_metrics(path: str | Path) -> list[dict]:
    """Rows of a metrics.jsonl (one JSON object per line); a bad line names its line number."""
    return [row for _, row in iter_jsonl(path, DataError, what="metrics file")]


def plot_loss_curve(metrics: str | Path, path: str | Path, keys: Sequence[str] = ("loss",),
                    log_y: bool = False) -> Path:
    """Plot `keys` against `step` from a metrics.jsonl; rows lacking a key are skipped for that key."""
    rows = read_metrics(metrics)
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot(1, 1, 1)
    drawn = 0
    for key in keys:
        points = [(r["step"], r[key]) for r in rows
                  if isinstance(r.get("step"), (int, float)) and isinstance(r.get(key), (int, float))]
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, label=key, linewidth=1.2)
            drawn += 1
    if not drawn:
        raise DataError(f"{metrics}: no rows with 'step' and any of {list(keys)}")
    ax.set_xlabel("step")
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)
