"""A harmonic source for the Fourier decoder: one pitch per frame and its harmonics, rendered as partials.

A 1x1 spectral head makes each frame's spectrum a mix of fixed spectra, so it can only place a
partial where one of them has a peak: a tone between two of those comes back as both, tens of
hertz off (a 530 Hz tone as 499 + 540 Hz: heard as a chord), and more training only adds peaks.
Here the pitch is a number: every harmonic h sits exactly at h * f0, whatever f0 is, so a pitched
sound keeps its harmonic series even when the pitch is slightly off. The per-bin head stays for
everything that is not one harmonic series (noise, clicks, chords' other notes, bells).

A pitch learnt only through spectral losses has no gradient once its harmonics miss the true ones
by more than a bin, so training supervises it with `estimate_pitch`, a classical harmonic-sum
pitch estimate of the input (not differentiable, not needed at inference).
"""
from __future__ import annotations

import functools
import math

import torch
from torch import nn

from .fourier import partial_shares

F_MIN, F_MAX = 40.0, 2000.0        # the pitch range of the source and of the estimator, Hz
STEPS_PER_OCTAVE = 48              # the pitch grid of the estimator and of the source's classes (25 cents)
PITCH_CLASSES = int(math.log2(F_MAX / F_MIN) * STEPS_PER_OCTAVE) + 1
NEIGHBOURS = 4                     # a class's pitch is read as the average over this many classes either side


def pitch_grid(device: torch.device | str | None = None) -> torch.Tensor:
    """log2 of the grid's frequencies, (PITCH_CLASSES,): F_MIN upwards in steps of 1/STEPS_PER_OCTAVE octave."""
    return math.log2(F_MIN) + torch.arange(PITCH_CLASSES, dtype=torch.float32, device=device) / STEPS_PER_OCTAVE


def pitch_bump(log2_f0: torch.Tensor) -> torch.Tensor:
    """(B, T) log2 f0 -> (B, PITCH_CLASSES, T): a Gaussian over the grid, one grid step wide, 1 at the pitch.
    The pitch loss's target (normalised) and the encoder's view of the input's pitch (times confidence):
    a bump, unlike a number, lets a linear layer read any function of the pitch."""
    distance = (pitch_grid(log2_f0.device)[None, :, None] - log2_f0[:, None]) * STEPS_PER_OCTAVE
    return torch.exp(-0.5 * distance.square())


def log2_pitch(logits: torch.Tensor) -> torch.Tensor:
    """(B, PITCH_CLASSES, T) logits -> log2 f0 (B, T): the probability-weighted average of the grid over the
    most likely class and its NEIGHBOURS either side, so the pitch falls between grid steps (a plain argmax
    would be 25 cents coarse: the 8th harmonic of a low tone a bin off) and a second, distant mode (an
    octave error the classes have not settled) does not pull it halfway."""
    probs = logits.float().softmax(dim=1)
    classes = torch.arange(PITCH_CLASSES, device=logits.device, dtype=probs.dtype)[None, :, None]
    near = probs * ((classes - probs.argmax(dim=1, keepdim=True)).abs() <= NEIGHBOURS)
    index = (near * classes).sum(dim=1) / near.sum(dim=1).clamp(min=1e-12)
    return math.log2(F_MIN) + index / STEPS_PER_OCTAVE


class HarmonicSource(nn.Module):
    """(B, width, T) decoder features -> (B, F, T) complex spectrum of `harmonics` partials at h * f0, and the
    pitch's logits over the grid (B, PITCH_CLASSES, T).

    The pitch is a class, not a regression: a regressed log f0 trained by its error in octaves learnt
    only to ~0.25 octaves in 2100 demo steps (round 7), far too coarse for harmonics a bin apart,
    while a distribution over pitch classes read out as a local average (`log2_pitch`, the CREPE
    recipe) has a gradient for every class at once. Only the pitch loss trains the classes: the
    partials sit at the read-out f0, detached, so the spectral losses move the harmonics' amplitudes
    only (with them on the pitch, it ran to an end of its range and stayed there). The harmonics'
    log-amplitudes come from the same 1x1 projection (harmonics at or above Nyquist minus the kernel's
    reach are silent). Each harmonic's phase is cumulative at its own frequency and it is rendered like
    `fourier.render_partials`: the windowed sinusoid's DFT spread over the five bins around it.
    """

    reach = 2
    initial_log_amplitude = math.log(1e-3)      # start quiet: the per-bin head has the spectrum at first

    def __init__(self, width: int, harmonics: int, n_fft: int, hop: int, sample_rate: int):
        super().__init__()
        self.harmonics, self.n_fft, self.hop, self.sample_rate = harmonics, n_fft, hop, sample_rate
        self.proj = nn.Conv1d(width, PITCH_CLASSES + harmonics, 1)
        nn.init.trunc_normal_(self.proj.weight, std=0.02)
        nn.init.zeros_(self.proj.bias)
        nn.init.constant_(self.proj.bias[PITCH_CLASSES:], self.initial_log_amplitude)
        self.register_buffer("numbers", torch.arange(1, harmonics + 1, dtype=torch.float32)[None, :, None],
                             persistent=False)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.proj(features).float()
        logits, log_amplitude = out[:, :PITCH_CLASSES], out[:, PITCH_CLASSES:]
        f0 = 2 ** log2_pitch(logits.detach())                       # only the pitch loss moves the pitch
        frequency = self.numbers * f0[:, None]                                            # (B, H, T) Hz
        position = frequency * self.n_fft / self.sample_rate                              # fractional bins
        bins = self.n_fft // 2 + 1
        audible = position < bins - 1 - self.reach
        amplitude = log_amplitude.clamp(max=math.log(100.0)).exp() * audible
        advance = torch.remainder(2 * math.pi * frequency * self.hop / self.sample_rate, 2 * math.pi)
        phase = torch.cumsum(advance, dim=-1)
        centre = position.round().clamp(max=bins - 1 - self.reach)
        offset = (position - centre) * audible          # [-0.5, 0.5]; 0 for the silent ones (the kernels need |.| < 1)
        return self.render(amplitude, offset, phase, centre.long(), bins), logits

    def render(self, amplitude: torch.Tensor, offset: torch.Tensor, phase: torch.Tensor, centre: torch.Tensor,
               bins: int) -> torch.Tensor:
        """Scatter each harmonic's windowed-sinusoid DFT into the bins centre - reach .. centre + reach."""
        spectrum = torch.zeros(amplitude.shape[0], bins + self.reach, amplitude.shape[-1], dtype=torch.complex64,
                               device=amplitude.device)
        for o, share in partial_shares(amplitude, offset, phase, self.n_fft, self.reach):
            # the lowest harmonics' far taps fold onto DC: negligible
            spectrum = spectrum.scatter_add(1, (centre + o).clamp(min=0), share)
        return spectrum[:, :bins]


@torch.no_grad()
def estimate_pitch(magnitude: torch.Tensor, sample_rate: int, n_fft: int, harmonics: int = 8,
                   steps_per_octave: int = STEPS_PER_OCTAVE) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, F, T) STFT magnitudes -> f0 (B, T) in Hz and a confidence (B, T) in [0, 1].

    Harmonic sum minus inter-harmonic sum: a candidate f scores sum_h (M(h f) - M((h - 1/2) f)) / h on
    square-root magnitudes read between bins by linear interpolation. The inter-harmonic term
    penalises f0 / 2 (whose odd "harmonics" fall between the true ones), the classic octave error of a
    plain harmonic sum. The best candidate of a 1/48-octave grid is refined by a parabola through its
    neighbours' scores. Confidence: the best score over the sum of |M| at the same points, 0 for silence
    and where the pitch fitted to the peaks (`refine_pitch`) lies outside [F_MIN, F_MAX] (f0 clamped).
    """
    candidates, weights = _harmonic_sum_weights(magnitude.shape[1], sample_rate, n_fft, harmonics, steps_per_octave,
                                                str(magnitude.device))
    root = magnitude.float().sqrt()
    on, between = (weights.flatten(0, 1) @ root).chunk(2, dim=1)                      # (B, C, T) each
    score = on - between
    best, index = score.max(dim=1)
    confidence = (best / (on + between).gather(1, index[:, None]).squeeze(1).clamp(min=1e-6)).clamp(min=0, max=1)
    # a parabola through the best candidate and its neighbours places the peak between grid steps
    inner = index.clamp(1, candidates.numel() - 2)
    left, centre, right = (score.gather(1, (inner + k)[:, None]).squeeze(1) for k in (-1, 0, 1))
    curvature = left - 2 * centre + right
    shift = torch.where(curvature < 0, 0.5 * (left - right) / curvature.clamp(max=-1e-9), torch.zeros_like(centre))
    shift = torch.where(index == inner, shift.clamp(-0.5, 0.5), torch.zeros_like(shift))
    f0 = F_MIN * 2 ** ((index + shift) / steps_per_octave)
    for count in (4, harmonics):
        f0 = refine_pitch(magnitude, f0, sample_rate, n_fft, count)
    # a fit can leave the grid (a tone under F_MIN drew its edge candidate down to its own peak): the
    # source cannot play it, so it is not a pitch to learn, and a pitch far off the grid has no bump
    # (every class underflows: the loss's target would be 0 / 0)
    inside = (f0 >= F_MIN) & (f0 <= F_MAX)
    return f0.clamp(F_MIN, F_MAX), confidence * inside


@functools.lru_cache(maxsize=16)
def _harmonic_sum_weights(bins: int, sample_rate: int, n_fft: int, harmonics: int, steps_per_octave: int,
                          device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The pitch grid (C,) and the (2, C, bins) weights of `estimate_pitch`'s harmonic and in-between sums:
    fixed by the sizes, so built once (a training step estimates the pitch of every batch)."""
    candidates = F_MIN * 2 ** (torch.arange(int(math.log2(F_MAX / F_MIN) * steps_per_octave) + 1,
                                            device=device, dtype=torch.float32) / steps_per_octave)
    weights = torch.zeros(2, candidates.numel(), bins, device=device)      # harmonic, between
    for h in range(1, harmonics + 1):
        for row, number in ((0, float(h)), (1, h - 0.5)):
            position = number * candidates * n_fft / sample_rate
            low = position.floor().long()
            inside = (low + 1) < bins
            frac = position - low
            c = torch.arange(candidates.numel(), device=device)[inside]
            weights[row].index_put_((c, low[inside]), (1 - frac[inside]) / h, accumulate=True)
            weights[row].index_put_((c, low[inside] + 1), frac[inside] / h, accumulate=True)
    return candidates, weights


def refine_pitch(magnitude: torch.Tensor, f0: torch.Tensor, sample_rate: int, n_fft: int,
                 harmonics: int) -> torch.Tensor:
    """(B, F, T) magnitudes and a pitch to within ~1.5 % -> the pitch fitted to its harmonics' peaks.

    The harmonic sum reads magnitudes between bins by linear interpolation, which leaves its best
    candidate up to ~1.5 % off (a fifth harmonic most of a bin away from where it sits). Here each of
    the first `harmonics` harmonics' peak (the local maximum within a bin of h f0, placed between bins
    by a parabola through the log-magnitudes around it, the classic sinusoidal-peak estimate) votes
    for h f0, and f0 is their least-squares fit weighted by each peak's magnitude. Frames with no peak
    keep their pitch.
    """
    bins = magnitude.shape[1]
    log_magnitude = magnitude.float().clamp(min=1e-8).log()

    def at(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return x.gather(1, index[:, None]).squeeze(1)

    votes = torch.zeros_like(f0)
    weight = torch.zeros_like(f0)
    for h in range(1, harmonics + 1):
        position = h * f0 * n_fft / sample_rate
        near = position.round().long().clamp(2, bins - 3)
        around = torch.stack([at(magnitude, near + o) for o in (-1, 0, 1)])
        peak = (near + around.argmax(dim=0) - 1).clamp(1, bins - 2)
        left, centre, right = (at(log_magnitude, peak + o) for o in (-1, 0, 1))
        curvature = left - 2 * centre + right
        is_peak = (centre >= left) & (centre >= right) & (curvature < 0) & (position < bins - 3)
        shift = (0.5 * (left - right) / curvature.clamp(max=-1e-9)).clamp(-0.5, 0.5)
        frequency = (peak + shift) * sample_rate / n_fft
        w = at(magnitude, peak).float() * is_peak
        votes, weight = votes + w * h * frequency, weight + w * h * h
    return torch.where(weight > 0, votes / weight.clamp(min=1e-12), f0)
