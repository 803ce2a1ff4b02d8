"""Signal primitives for the synthetic corpus, all whole-array numpy (no per-sample Python loops).

Oscillators read a precomputed single-cycle wavetable at a running phase instead of calling
`np.sin` per partial: a clip with a dozen harmonics then costs one table lookup, which keeps
generation to a few milliseconds per clip. Everything is float64 and driven only by the
`numpy.random.Generator` passed in, so a (seed, index) pair gives the same clip on any machine.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.signal import lfilter

TABLE_SIZE = 16384  # nearest-sample lookup error ≈ 2π/16384 → noise floor near −68 dB
_SINE = np.sin(2.0 * np.pi * np.arange(TABLE_SIZE) / TABLE_SIZE)


@dataclass
class Canvas:
    """The clip being drawn: sample rate, length and the time axis, shared by every primitive."""

    sample_rate: int
    length: int
    t: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.t = np.arange(self.length) / self.sample_rate

    @property
    def seconds(self) -> float:
        return self.length / self.sample_rate

    @property
    def nyquist(self) -> float:
        return self.sample_rate / 2

    def index(self, seconds: float | np.ndarray) -> np.ndarray:
        return np.clip(np.round(np.asarray(seconds) * self.sample_rate).astype(np.int64), 0, self.length - 1)


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def harmonic_table(amplitudes: np.ndarray) -> np.ndarray:
    """One cycle of Σ_h a_h·sin(2π h x), scaled to peak 1 (amplitudes[0] is the fundamental)."""
    spectrum = np.zeros(TABLE_SIZE // 2 + 1, dtype=np.complex128)
    spectrum[1:len(amplitudes) + 1] = -1j * np.asarray(amplitudes, dtype=np.float64)
    table = np.fft.irfft(spectrum, TABLE_SIZE)
    return table / np.abs(table).max()


def phase(freq: np.ndarray | float, canvas: Canvas) -> np.ndarray:
    """Running phase in cycles of a (possibly time-varying) frequency in Hz."""
    freq = np.broadcast_to(np.asarray(freq, dtype=np.float64), (canvas.length,))
    return np.cumsum(freq) / canvas.sample_rate


def oscillate(cycles: np.ndarray, table: np.ndarray = _SINE) -> np.ndarray:
    """Read a wavetable at a phase given in cycles."""
    return table[(np.floor(cycles * TABLE_SIZE)).astype(np.int64) & (TABLE_SIZE - 1)]


def max_harmonics(f0_max: float, canvas: Canvas, limit: int) -> int:
    """How many harmonics of a pitch reaching `f0_max` stay below 0.45·sample_rate (no aliasing)."""
    return int(max(1, min(limit, 0.45 * canvas.sample_rate // max(f0_max, 1.0))))


def envelope(canvas: Canvas, onset: float, attack: float, hold: float, release: float,
             sustain: float = 1.0) -> np.ndarray:
    """Piecewise-linear attack / decay-to-sustain / release, zero before `onset`."""
    a = onset + attack
    h = a + max(hold, 0.0)
    times = [0.0, onset, a, h, h + release]
    return np.interp(canvas.t, times, [0.0, 0.0, 1.0, sustain, 0.0])


def decays(canvas: Canvas, times: np.ndarray, tau: float, amplitudes: np.ndarray | None = None) -> np.ndarray:
    """Sum of exponential decays exp(−(t − t_i)/tau) starting at each `times[i]` (a one-pole filter
    driven by impulses, so the cost does not depend on the number of hits)."""
    impulses = np.zeros(canvas.length)
    np.add.at(impulses, canvas.index(times), 1.0 if amplitudes is None else amplitudes)
    pole = np.exp(-1.0 / (tau * canvas.sample_rate))
    return lfilter([1.0], [1.0, -pole], impulses)


@lru_cache(maxsize=8)
def _frequencies(length: int, sample_rate: int) -> np.ndarray:
    return np.fft.rfftfreq(length, 1.0 / sample_rate)


def shaped_noise(rng: np.random.Generator, canvas: Canvas, gain) -> np.ndarray:
    """Gaussian noise with magnitude response `gain(frequencies_hz)`, normalised to unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(canvas.length))
    freqs = _frequencies(canvas.length, canvas.sample_rate)
    noise = np.fft.irfft(spectrum * gain(freqs), canvas.length)
    return noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)


def band_gain(center: float, octaves: float):
    """Gaussian band on a log-frequency axis: `octaves` is the standard deviation in octaves."""
    def gain(f: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / center) / octaves) ** 2)
    return gain


def highpass_gain(cutoff: float, order: int = 4):
    def gain(f: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + (cutoff / np.maximum(f, 1.0)) ** order)
    return gain


def pink_gain(f: np.ndarray) -> np.ndarray:
    return 1.0 / np.sqrt(np.maximum(f, 20.0))


def brown_gain(f: np.ndarray) -> np.ndarray:
    return 1.0 / np.maximum(f, 40.0)


def karplus_strong(excitation: np.ndarray, period: int, loss: float) -> np.ndarray:
    """Plucked string: y[n] = x[n] + loss·(y[n−P] + y[n−P−1])/2, computed one period at a time
    (each block depends only on the previous one, so a block is a single vector operation)."""
    y = np.concatenate([[0.0], excitation])
    half = 0.5 * loss
    for start in range(period + 1, y.size, period):
        stop = min(start + period, y.size)
        n = stop - start
        y[start:stop] += half * (y[start - period:start - period + n] + y[start - period - 1:start - period - 1 + n])
    return y[1:]
