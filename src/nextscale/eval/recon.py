"""Reconstruction metrics for a tokenizer: how close decode(encode(x)) is to x, and how codes are used.

- multi-resolution mel distance: mean L1 between log-mels over several FFT sizes (lower is better);
- multi-resolution STFT distance: spectral convergence + L1 of log magnitudes (Parallel WaveGAN);
- SI-SDR in dB (higher is better), scale-invariant so gain differences do not count;
- level in dB: the reconstruction's energy against the input's (0 is right; a decoder whose frames' phases
  disagree cancels itself in the overlap-add and comes out quieter, which the scale-free figures miss);
- per-scale codebook usage (fraction of the V entries seen) and perplexity (exp of the code entropy).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..tokenizer.losses import stft_distance_sum
from .embeddings.mel import log_mel

MEL_RESOLUTIONS = ((2048, 512, 128), (1024, 256, 64), (512, 128, 64), (256, 64, 32), (128, 32, 16))  # n_fft, hop, n_mels
STFT_RESOLUTIONS = ((2048, 240, 1200), (1024, 120, 600), (512, 50, 240))  # n_fft, hop, window


def _check_pair(ref: torch.Tensor, est: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if ref.shape != est.shape:
        raise ValueError(f"reference {tuple(ref.shape)} and estimate {tuple(est.shape)} must have the same shape")
    return ref.float(), est.float()


def mel_distance(ref: torch.Tensor, est: torch.Tensor, sample_rate: int,
                 resolutions: Sequence[tuple[int, int, int]] = MEL_RESOLUTIONS) -> torch.Tensor:
    """Per-clip mean over resolutions of L1(log-mel(ref), log-mel(est)); (..., S) → (...)."""
    ref, est = _check_pair(ref, est)
    total = 0.0
    for n_fft, hop, n_mels in resolutions:
        a = log_mel(ref, sample_rate, n_fft, hop, n_mels)
        b = log_mel(est, sample_rate, n_fft, hop, n_mels)
        total = total + (a - b).abs().mean(dim=(-2, -1))
    return total / len(resolutions)


def stft_distance(ref: torch.Tensor, est: torch.Tensor,
                  resolutions: Sequence[tuple[int, int, int]] = STFT_RESOLUTIONS) -> torch.Tensor:
    """Per-clip mean over resolutions of spectral convergence + mean |log|X| − log|Y||."""
    ref, est = _check_pair(ref, est)
    return stft_distance_sum(ref, est, resolutions, floor=1e-7) / len(resolutions)


def si_sdr(ref: torch.Tensor, est: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB, per clip: 10·log10(‖αs‖² / ‖αs − ŝ‖²), α = <ŝ,s>/‖s‖², zero-mean."""
    ref, est = _check_pair(ref, est)
    ref = ref.double() - ref.double().mean(-1, keepdim=True)
    est = est.double() - est.double().mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / ((ref * ref).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return (10 * torch.log10(((target ** 2).sum(-1) + eps) / ((noise ** 2).sum(-1) + eps))).float()


def level_db(ref: torch.Tensor, est: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per clip, 10·log10(‖ŝ‖² / ‖s‖²): how much louder (+) or quieter (−) the estimate is, in dB."""
    ref, est = _check_pair(ref, est)
    return (10 * torch.log10(((est.double() ** 2).sum(-1) + eps) / ((ref.double() ** 2).sum(-1) + eps))).float()


PAIR_METRICS = ("mel_distance", "stft_distance", "si_sdr", "level_db")   # what score_pair gives per clip


def score_pair(ref: torch.Tensor, est: torch.Tensor, sample_rate: int) -> dict[str, float]:
    """Mel distance, STFT distance, SI-SDR and level of one clip and its reconstruction, both (1, S)."""
    return {"mel_distance": float(mel_distance(ref, est, sample_rate)), "stft_distance": float(stft_distance(ref, est)),
            "si_sdr": float(si_sdr(ref, est)), "level_db": float(level_db(ref, est))}


class CodebookUsage:
    """Accumulates code histograms per scale; `summary()` gives usage and perplexity per scale."""

    def __init__(self, num_scales: int, codebook_size: int):
        self.codebook_size = codebook_size
        self.counts = np.zeros((num_scales, codebook_size), dtype=np.int64)

    def update(self, codes: Sequence[torch.Tensor]) -> None:
        if len(codes) != self.counts.shape[0]:
            raise ValueError(f"expected codes for {self.counts.shape[0]} scales, got {len(codes)}")
        for k, c in enumerate(codes):
            self.counts[k] += np.bincount(c.reshape(-1).cpu().numpy(), minlength=self.codebook_size)[: self.codebook_size]

    def summary(self) -> list[dict[str, float]]:
        rows = []
        for k, counts in enumerate(self.counts):
            total = counts.sum()
            p = counts[counts > 0] / max(total, 1)
            rows.append({"scale": k, "tokens": int(total), "usage": float((counts > 0).mean()),
                         "perplexity": float(np.exp(-(p * np.log(p)).sum())) if total else 0.0})
        return rows
