"""The twelve sound kinds of the synthetic corpus: one function each, returning (waveform, caption).

Each kind has its own acoustic signature (pitched and sustained, pitched and decaying,
sweeping, percussive, noisy, periodic impulses) so a small log-mel CNN can tell them apart,
while pitch, timing, envelope, timbre and number of events vary within a kind. Captions are
built from the drawn parameters, so they describe the clip actually produced.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.signal import lfilter

from .synth_dsp import (Canvas, band_gain, brown_gain, decays, envelope, harmonic_table, highpass_gain,
                        karplus_strong, log_uniform, max_harmonics, oscillate, phase, pink_gain, shaped_noise)

Rng = np.random.Generator
COUNTS = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times", 6: "six times",
          7: "seven times", 8: "eight times"}


def register(freq: float) -> str:
    return "low" if freq < 220 else ("high" if freq > 520 else "mid-pitched")


def _between(rng: Rng, low: float, high: float) -> float:
    """Uniform in [low, high], collapsing to `low` when a short clip leaves no room."""
    return rng.uniform(low, max(low, high))


def _hits(rng: Rng, canvas: Canvas, most: int, gap: tuple[float, float], tail: float) -> np.ndarray:
    """Onsets of 1..`most` evenly spaced events that all start at least `tail` seconds before the end."""
    count = int(rng.integers(1, most + 1))
    interval = rng.uniform(*gap)
    first = rng.uniform(0.0, 0.2) * canvas.seconds
    room = canvas.seconds - tail - first
    count = max(1, min(count, int(room // interval) + 1))
    return first + interval * np.arange(count)


def _sustained(rng: Rng, canvas: Canvas) -> np.ndarray:
    """A note envelope that starts in the first 30 % of the clip and lasts at least 40 % of it."""
    T = canvas.seconds
    onset = rng.uniform(0.0, 0.3) * T
    release = rng.uniform(0.03, 0.15)
    hold = _between(rng, 0.4 * T, T - onset - release - 0.08)
    return envelope(canvas, onset, rng.uniform(0.01, 0.06), hold, release, sustain=rng.uniform(0.6, 1.0))


def tone(rng: Rng, canvas: Canvas) -> tuple[np.ndarray, str]:
    f0 = log_uniform(rng, 110, 880)
    harmonics = np.arange(1, max_harmonics(f0 * 1.04, canvas, int(rng.integers(3, 13))) + 1)
    tilt = rng.uniform(0.6, 2.2)
    amplitudes = harmonics ** -tilt
    hollow = harmonics.size > 2 and rng.random() < 0.3
    if hollow:
        amplitudes[1::2] = 0.0
    style = ("steady", "vibrato", "tremolo")[int(rng.integers(3))]
    lfo = oscillate(canvas.t * rng.uniform(4.5, 9.0) + rng.random())
    freq, gain = f0, 1.0
    if style == "vibrato":
        freq = f0 * (1.0 + rng.uniform(0.012, 0.035) * lfo)
    elif style == "tremolo":
        gain = 1.0 - rng.uniform(0.5, 0.9) * 0.5 * (1.0 + lfo)
    wave = oscillate(phase(freq, canvas), harmonic_table(amplitudes)) * gain * _sustained(rng, canvas)
    timbre = "hollow" if hollow else ("bright" if tilt < 1.1 else ("soft" if tilt > 1.7 else "warm"))
    detail = {"steady": f"with {timbre} harmonics", "vibrato": "with gentle vibrato",
              "tremolo": "pulsing with tremolo"}[style]
    lead = "a steady" if style == "steady" else "a"
    return wave, f"{lead} {register(f0)} tone {detail}"


CHORDS = {"major": (0, 4, 7), "minor": (0, 3, 7), "major seventh": (0, 4, 7, 11),
          "minor seventh": (0, 3, 7, 10), "suspended": (0, 5, 7)}


def chord(rng: Rng, canvas: Canvas) -> tuple[np.ndarray, str]:
    quality = list(CHORDS)[int(rng.integers(len(CHORDS)))]
    root = log_uniform(rng, 110, 400)
    top = root * 2 ** (max(CHORDS[quality]) / 12)
    harmonics = np.arange(1, max_harmonics(top, canvas, int(rng.integers(3, 7))) + 1)
    table = harmonic_table(harmonics ** -rng.uniform(0.8, 1.8))
    strummed = rng.random() < 0.5
    T = canvas.seconds
    onset = rng.uniform(0.0, 0.25) * T
    delay = rng.uniform(0.03, 0.08) if strummed else 0.0
    hold = _between(rng, 0.4 * T, T - onset - 0.22)
    wave = np.zeros(canvas.length)
    for i, semitones in enumerate(CHORDS[quality]):
        f = root * 2 ** (semitones / 12) * (1.0 + rng.uniform(-0.002, 0.002))
        start = onset + i * delay
        env = envelope(canvas, start, 0.008 if strummed else 0.04, hold - i * delay, 0.15,
                       sustain=0.55 if strummed else 0.9)
        wave += oscillate(phase(f, canvas) + rng.random(), table) * env
    where = {"low": "low", "mid-pitched": "middle", "high": "high"}[register(root)]
    return wave, f"a {quality} chord {'strummed' if strummed else 'held'} in the {where} register"


def _sweep(rng: Rng, canvas: Canvas, upward: bool) -> tuple[np.ndarray, str]:
    T = canvas.seconds
    onset = rng.uniform(0.0, 0.25) * T
    length = _between(rng, 0.3 * T, T - onset - 0.05 * T)
    n_harm = int(rng.integers(1, 5))
    low = log_uniform(rng, 100, 500)
    high = min(low * log_uniform(rng, 2.0, 8.0), 0.45 * canvas.sample_rate / n_harm)
    exponential = rng.random() < 0.6
    x = np.clip((canvas.t - onset) / length, 0.0, 1.0)
    x = x if upward else 1.0 - x
    freq = low * (high / low) ** x if exponential else low + (high - low) * x
    table = harmonic_table(np.arange(1, n_harm + 1) ** -1.5)
    wave = oscillate(phase(freq, canvas), table) * envelope(canvas, onset, rng.uniform(0.005, 0.03), length - 0.03, 0.03)
    octaves_per_second = np.log2(high / low) / length
    speed = " quickly" if octaves_per_second > 4 else (" slowly" if octaves_per_second < 2 else "")
    start = low if upward else high
    return wave, f"a {register(start).replace('-pitched', '')} pitch sweeping {'upward' if upward else 'downward'}{speed}"


def rising_chirp(rng: Rng, canvas: Canvas) -> tuple[np.ndarray, str]:
    return _sweep(rng, canvas, upward=True)


def falling_chirp(rng: Rng, canvas: Canvas) -> tuple[np.ndarray, str]:
    return _sweep(rng, canvas, upward=False)


def plucked_string(rng: Rng, canvas: Canvas) -> tuple[np.ndarray, str]:
    f0 = log_uniform(rng, 65, 520)
    period = max(2, int(round(canvas.sample_rate / f0)))
    t60 = rng.uniform(0.3, 1.5)
    loss = 10 ** (-3.0 / (canvas.sample_rate / period * t60))
    onsets = _hits(rng, canvas, 3, (0.2, 0.4), tail=0.15)
    burst = rng.uniform(-1.0, 1.0, period)
    bright = rng.random() < 0.5
    if not bright:  # a soft pluck: low-passed excitation
        burst = np.convolve(burst, np.ones(4) / 4, mode="same")
    excitation = np.zeros(canvas.length)
    for start in canvas.index(onsets):
        n = min(period, canvas.length - start)
        excitation[start:start + n] += burst[:n]
    wave = karplus_strong(excitation, period, loss)
    return wave, f"a {'bright' if bright else 'soft'} {register(f0).replace('-pitched', '')} string plucked {COUNTS[len(onsets)]}"


def kick(rng: Rng, canvas: Canvas) -> tuple[np.ndarray, str]:
    onsets = _hits(rng, canvas, 4, (0.18, 0.35), tail=0.12)
    f_start, f_end = rng.uniform(110, 200), rng.uniform(38, 65)
    pitch_tau, amp_tau = rng.uniform(0.015, 0.05), rng.uniform(0.06, 0.25)
    wave = np.zeros(canvas.length)
    for start in canvas.index(onsets):
        t = canvas.t[: min(canvas.length - start, int(6 * amp_tau * canvas.sample_rate))]
        freq = f_end + (f_start - f_end) * np.exp(-t / pitch_tau)
        hit = oscillate(np.cumsum(freq) / canvas.sample_rate) * np.exp(-t / amp_tau)
        hit[: min(48, hit.size)] += rng.uniform(0.1, 0.4) * rng.uniform(-1, 1, min(48, hit.size))  # beater click
        wave[start:start + hit.size] += hit
    character = "deep" if f_end < 50 else "punchy"
    return wave, f"a {character} kick drum hit {COUNTS[len(onsets)]}"


def snare(rng: Rng, canvas: Canvas) -> tuple[np.ndarray, str]:
    onsets = _hits(rng, canvas, 4, (0.15, 0.3), tail=0.1)
    noise_tau = rng.uniform(0.04, 0.15)
    noise = shaped_noise(rng, canvas, band_gain(rng.uniform(2500, 5000), rng.uniform(1.0, 1.8)))
    body = oscillate(phase(rng.uniform(160, 260), canvas))
    wave = noise * decays(canvas, onsets, noise_tau) + rng.uniform(0.5, 1.2) * body * decays(canvas, onsets, rng.uniform(0.02, 0.05))
    character = "tight" if noise_tau < 0.08 else "rattling"
    return wave, f"a {character} snare drum hit {COUNTS[len(onsets)]}"


def hihat(rng: Rng, canvas: Canvas) -> tuple[np.ndarray, str]:
    open_hat = rng.random() < 0.35
    tau = rng.uniform(0.08, 0.2) if open_hat else rng.uniform(0.008, 0.03)
    onsets = _hits(rng, canvas, 8, (0.1, 0.3) if open_hat else (0.07, 0.2), tail=0.05)
    if onsets.size == 1:
        onsets = np.append(onsets, onsets[0] + 0.1)
    cutoff = min(rng.uniform(6000, 9000), 0.35 * canvas.sample_rate)
    noise = shaped_noise(rng, canvas, highpass_gain(cutoff))
    wave = noise * decays(canvas, onsets, tau)
    kind = "an open hi-hat" if open_hat else "a closed hi-hat"
    return wave, f"{kind} {'ringing' if open_hat else 'ticking'} {COUNTS[len(onsets)]}"


NOISE_COLORS = ("white", "pink", "brown", "band")


def noise_burst(rng: Rng, canvas: Canvas) -> tuple[np.ndarray, str]:
    color = NOISE_COLORS[int(rng.integers(len(NOISE_COLORS)))]
    center = log_uniform(rng, 300, min(6000, 0.3 * canvas.sample_rate))
    gain = {"white": lambda f: np.ones_like(f), "pink": pink_gain, "brown": brown_gain,
            "band": band_gain(center, rng.uniform(0.2, 0.6))}[color]
    T = canvas.seconds
    onset = rng.uniform(0.0, 0.3) * T
    length = _between(rng, 0.3 * T, T - onset - 0.03 * T)
    swell = rng.random() < 0.3
    attack = rng.uniform(0.4, 0.7) * length if swell else rng.uniform(0.005, 0.05)
    release = rng.uniform(0.02, 0.2) * length
    wave = shaped_noise(rng, canvas, gain) * envelope(canvas, onset, attack, length - attack - release, release)
    what = f"noise band-passed around {center / 1000:.1f} kHz" if color == "band" else f"{color} noise"
    return wave, f"{'a swelling hiss' if swell else 'a burst'} of {what}"


def fm_bell(rng: Rng, canvas: Canvas) -> tuple[np.ndarray, str]:
    carrier = log_uniform(rng, 300, 1500)
    ratio = (1.4, 2.76, 3.5, 1.41, 2.4)[int(rng.integers(5))]
    tau = rng.uniform(0.18, 0.6)
    onsets = _hits(rng, canvas, 3, (0.25, 0.45), tail=0.2)
    amp = decays(canvas, onsets, tau)
    # Carson's rule: sidebands reach about carrier + (index + 1)·modulator; keep them below Nyquist
    alias_free = (0.45 * canvas.sample_rate - carrier) / (carrier * ratio) - 1.0
    index = min(rng.uniform(2.0, 6.0), max(0.5, alias_free)) * decays(canvas, onsets, tau * 0.5)
    modulator = oscillate(phase(carrier * ratio, canvas))
    wave = oscillate(phase(carrier, canvas) + index * modulator / (2 * np.pi)) * amp
    return wave, f"a {register(carrier).replace('-pitched', '')} bell struck {COUNTS[len(onsets)]}"


def siren(rng: Rng, canvas: Canvas) -> tuple[np.ndarray, str]:
    center = log_uniform(rng, 450, 1200)
    rate = log_uniform(rng, 0.6, 5.0)
    depth = rng.uniform(0.2, 0.4)
    lfo = oscillate(canvas.t * rate + rng.random())
    freq = center * 2 ** (depth * 2 * lfo)  # ± 2·depth octaves around the centre
    n_harm = max_harmonics(freq.max(), canvas, 5)
    amplitudes = np.arange(1, n_harm + 1, dtype=np.float64) ** -1.0
    amplitudes[1::2] = 0.0  # odd harmonics: a square-ish horn
    T = canvas.seconds
    onset = rng.uniform(0.0, 0.1) * T
    wave = oscillate(phase(freq, canvas), harmonic_table(amplitudes)) * envelope(
        canvas, onset, 0.03, _between(rng, 0.7 * T, T - onset - 0.08), 0.04)
    return wave, f"a siren {'yelping rapidly' if rate > 2.5 else 'wailing slowly'}"


def click_train(rng: Rng, canvas: Canvas) -> tuple[np.ndarray, str]:
    T = canvas.seconds
    onset = rng.uniform(0.0, 0.25) * T
    length = _between(rng, 0.35 * T, T - onset - 0.02 * T)
    rate = log_uniform(rng, 6, 40)
    trend = ("steady", "speeding up", "slowing down")[int(rng.integers(3))]
    end_rate = rate * {"steady": 1.0, "speeding up": 2.0, "slowing down": 0.5}[trend]
    x = np.clip((canvas.t - onset) / length, 0.0, 1.0)
    inside = (canvas.t >= onset) & (canvas.t < onset + length)
    cycles = np.floor(np.cumsum((rate + (end_rate - rate) * x) * inside) / canvas.sample_rate)
    impulses = np.diff(cycles, prepend=0.0)
    impulses[canvas.index(onset)] = 1.0
    pole = np.exp(-1.0 / (rng.uniform(0.0003, 0.0015) * canvas.sample_rate))
    doublets = np.diff(impulses, prepend=0.0)  # differentiated: a sharp, bright click
    wave = lfilter([1.0], [1.0, -pole], doublets)
    speed = "fast" if rate > 18 else "slow"
    tail = "" if trend == "steady" else f" {trend}"
    return wave, f"a {speed} train of clicks{tail}"


GENERATORS: dict[str, Callable[[Rng, Canvas], tuple[np.ndarray, str]]] = {
    "tone": tone,
    "chord": chord,
    "rising_chirp": rising_chirp,
    "falling_chirp": falling_chirp,
    "plucked_string": plucked_string,
    "kick": kick,
    "snare": snare,
    "hihat": hihat,
    "noise_burst": noise_burst,
    "fm_bell": fm_bell,
    "siren": siren,
    "click_train": click_train,
}
