"""Scale-boundary coherence: how the sound changes as a token map's scales are added, coarse to fine.

Decoding scales 0..k of a token map for every k gives K previews. The change a scale makes is the
mean absolute difference of the log-mel spectrograms of two consecutive previews,

    d_k = mean |logmel(preview_k) - logmel(preview_{k-1})|,   k = 1 .. K-1,

averaged over bands, frames and clips. For real audio encoded by MSRQ each scale quantises a
smaller residual, so d_k shrinks from scale to scale (coarse-to-fine monotonicity). A token map
whose later scales disagree with its earlier ones (a generated scale that contradicts the coarse
picture, a transition that adds energy instead of detail) makes some d_k larger than the one
before it. Two summaries:

    non_monotone = sum_k max(0, d_k - d_{k-1}) / sum_k d_k     (0: every scale changes less than the last)
    final_share  = d_{K-1} / sum_k d_k                         (how much the last scale still moves)

Compare them between real token maps (held-out audio encoded) and generated ones of the same
tokenizer: the paper measures neither.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError
from ..tokenizer.mel import log_mel_spectrogram

N_FFT, HOP, N_MELS = 1024, 256, 64


def scale_changes(log_mels: Sequence[Tensor]) -> Tensor:
    """K previews' log-mels (each (B, n_mels, frames)) -> (K-1, B): the mean |change| each added scale makes."""
    if len(log_mels) < 2:
        raise ConfigError(f"scale coherence: needs at least two scales' previews, got {len(log_mels)}")
    shapes = {tuple(m.shape) for m in log_mels}
    if len(shapes) != 1:
        raise ConfigError(f"scale coherence: previews differ in shape: {sorted(shapes)}")
    stacked = torch.stack([m.double() for m in log_mels])            # (K, B, M, F)
    return (stacked[1:] - stacked[:-1]).abs().flatten(2).mean(dim=2)


def coherence_summary(changes: Tensor) -> dict[str, Any]:
    """(K-1, B) changes -> per-scale means and the two summaries (see the module docstring)."""
    d = changes.double().mean(dim=1)
    total = float(d.sum())
    rises = float((d[1:] - d[:-1]).clamp(min=0).sum()) if len(d) > 1 else 0.0
    return {"changes": [float(v) for v in d],
            "non_monotone": rises / total if total > 0 else 0.0,
            "final_share": float(d[-1]) / total if total > 0 else 0.0}


@torch.no_grad()
def prefix_log_mels(sat: Any, codes: Sequence[Tensor], batch_size: int = 16) -> list[Tensor]:
    """Log-mels (B, n_mels, frames) of `sat.decode(codes[:k + 1])` for every k (float32, on the CPU)."""
    out = []
    for k in range(len(codes)):
        parts = []
        for start in range(0, codes[0].shape[0], batch_size):
            audio = sat.decode([c[start:start + batch_size] for c in codes[:k + 1]])[:, 0]
            parts.append(log_mel_spectrogram(audio.float().cpu(), sat.sample_rate, N_FFT, HOP, N_MELS))
        out.append(torch.cat(parts))
    return out


def scale_coherence(sat: Any, codes: Sequence[Tensor], batch_size: int = 16) -> dict[str, Any]:
    """The metric for a batch of token maps of `sat` (a list of K (B, n_k) code tensors)."""
    return coherence_summary(scale_changes(prefix_log_mels(sat, codes, batch_size)))
