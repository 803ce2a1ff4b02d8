"""VGGish's mel filterbank and the `mel` backend: log-mel frame statistics, no weights.

`mel_filterbank` is VGGish's construction (triangles evenly spaced *in mel*, evaluated at the FFT
bin centres' mel values, DC bin zeroed), which differs slightly from the Hz-interpolated triangles
of `nextscale.tokenizer.mel`; VGGish needs its own to be exact. Everything else in evaluation (this
backend, the synth classifier, the reconstruction metrics) uses the tokenizer's `log_mel_spectrogram`,
re-exported here as `log_mel`.
The `mel` backend is a smoke check only: it needs no download but says little about perceptual
quality, and every table that shows it says so.
"""
from __future__ import annotations

import functools
import math

import torch

from ...tokenizer.mel import log_mel_spectrogram as log_mel
from .base import EmbeddingBackend


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale: 1127·ln(1 + f/700)."""
    return 1127.0 * torch.log1p(hz / 700.0)


@functools.lru_cache(maxsize=32)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    """(n_fft//2 + 1, n_mels) float64 triangular weights; multiply a magnitude spectrogram by it."""
    nyquist = sample_rate / 2.0
    if not 0.0 <= fmin < fmax <= nyquist:
        raise ValueError(f"mel filterbank: need 0 <= fmin < fmax <= {nyquist}, got fmin={fmin}, fmax={fmax}")
    bins_mel = hz_to_mel(torch.linspace(0.0, nyquist, n_fft // 2 + 1, dtype=torch.float64))
    edges = torch.linspace(float(hz_to_mel(torch.tensor(fmin, dtype=torch.float64))),
                           float(hz_to_mel(torch.tensor(fmax, dtype=torch.float64))), n_mels + 2, dtype=torch.float64)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights[0, :] = 0.0
    return weights


class MelStats(EmbeddingBackend):
    """Each log-mel frame (64 bands at 16 kHz, 25 ms / 10 ms) is one embedding. Smoke check only."""

    name = "mel"
    smoke_only = True

    def __init__(self, sample_rate: int = 16000, n_mels: int = 64):
        self.sample_rate = int(sample_rate)
        self.dim = int(n_mels)
        self.n_fft = 2 ** math.ceil(math.log2(0.025 * sample_rate))
        self.hop = int(round(0.010 * sample_rate))

    def params(self) -> dict:
        return {**super().params(), "n_fft": self.n_fft, "hop": self.hop}

    @torch.no_grad()
    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        wav = self.check_input(wav)
        feats = log_mel(wav[:, 0], self.sample_rate, self.n_fft, self.hop, self.dim, fmin=0.0)  # (B, M, T)
        return feats.transpose(1, 2).reshape(-1, self.dim)
