"""Log-mel spectrograms in plain torch (no torchaudio), shared by the SAT losses and evaluation.

HTK mel scale, triangular filters interpolated in Hz between mel-spaced corner frequencies,
no area normalisation, magnitude (not power) spectra, centred Hann-windowed STFT with reflect
padding: the conventions of EnCodec's multi-resolution mel loss.
"""
from __future__ import annotations

import functools
import math

import torch

from ..errors import ConfigError


def _hz_to_mel(hz: float | torch.Tensor):
    return 2595.0 * (torch.log10(1.0 + hz / 700.0) if isinstance(hz, torch.Tensor) else math.log10(1.0 + hz / 700.0))


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.lru_cache(maxsize=64)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels) float32 triangular filters on the HTK mel scale."""
    fmax = sample_rate / 2.0 if fmax is None else fmax
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
        raise ConfigError(f"mel filterbank: need 0 <= fmin < fmax <= {sample_rate / 2}, got {fmin}, {fmax}")
    freqs = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    corners = _mel_to_hz(torch.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2, dtype=torch.float64))
    widths = corners[1:] - corners[:-1]
    slopes = corners[None, :] - freqs[:, None]                  # (F, n_mels + 2)
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


class _Magnitude(torch.autograd.Function):
    """|z| of a complex tensor through `torch.hypot` of its parts, with `abs`'s gradient (z / |z|, 0 at 0)."""

    @staticmethod
    def forward(ctx, spec: torch.Tensor) -> torch.Tensor:
        level = torch.hypot(spec.real, spec.imag)
        ctx.save_for_backward(spec, level)
        return level

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        spec, level = ctx.saved_tensors
        scale = torch.where(level > 0, grad / level, torch.zeros_like(grad))
        return torch.complex(spec.real * scale, spec.imag * scale)


def magnitude(spec: torch.Tensor) -> torch.Tensor:
    """`spec.abs()` for a complex spectrum, forward and backward, in about half the time on CPU: ATen's complex
    abs and its backward are slow there (forward + backward of an (8, 513, 94) spectrum, one AVX2 thread: 6.4 ms vs
    11.8 ms), and the SAT's losses take a dozen of them per step."""
    return _Magnitude.apply(spec) if spec.is_complex() else spec.abs()


def centred_magnitude(flat: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """(N, S) audio -> (N, n_fft // 2 + 1, frames) |STFT|: Hann window of n_fft, centred frames, reflect padding
    (zeros for clips too short to reflect)."""
    pad_mode = "reflect" if flat.shape[-1] > n_fft // 2 else "constant"
    spec = torch.stft(flat, n_fft, hop_length=hop, win_length=n_fft, window=torch.hann_window(n_fft, device=flat.device),
                      center=True, pad_mode=pad_mode, return_complex=True)
    return magnitude(spec)


def log_mel_from_magnitude(spec: torch.Tensor, sample_rate: int, n_fft: int, n_mels: int = 64, fmin: float = 0.0,
                           fmax: float | None = None, floor: float = 1e-5) -> torch.Tensor:
    """(N, n_fft // 2 + 1, frames) magnitudes -> (N, n_mels, frames) natural-log mel magnitudes, clamped at `floor`."""
    mel = torch.einsum("bft,fm->bmt", spec, mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax).to(spec.device))
    return torch.log(mel.clamp(min=floor))


def log_mel_spectrogram(wav: torch.Tensor, sample_rate: int, n_fft: int, hop: int, n_mels: int = 64,
                        fmin: float = 0.0, fmax: float | None = None, floor: float = 1e-5) -> torch.Tensor:
    """(..., S) audio -> (..., n_mels, frames) natural-log mel magnitudes, clamped at `floor`."""
    if wav.shape[-1] < 1:
        raise ConfigError("log_mel_spectrogram: empty audio")
    lead = wav.shape[:-1]
    spec = centred_magnitude(wav.reshape(-1, wav.shape[-1]).float(), n_fft, hop)
    mel = log_mel_from_magnitude(spec, sample_rate, n_fft, n_mels, fmin, fmax, floor)
    return mel.reshape(*lead, n_mels, mel.shape[-1])
