"""Built-in synthetic corpus: labelled, captioned one-second sounds of twelve kinds, from a seed.

Item i has kind `KINDS[i % len(KINDS)]` and is drawn from its own random stream,
`Generator(PCG64(SeedSequence([seed, i])))`, so any item can be produced alone, in any order,
in any worker process, and the same (seed, i) gives the same clip on every machine.
No global random state is touched. `synth_sequence` strings events of one kind into multi-second
clips (what window-by-window generation learns to continue).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .synth_dsp import Canvas
from .synth_kinds import GENERATORS

KINDS: tuple[str, ...] = tuple(GENERATORS)
LEVEL_DB = (-18.0, -1.0)  # peak level range of a clip, in dB full scale


@dataclass(frozen=True)
class SynthClip:
    audio: np.ndarray  # (S,) float32, peak in [−18, −1] dBFS
    kind: str
    label: int
    caption: str
    index: int
    seed: int


def clip_rng(index: int, seed: int) -> np.random.Generator:
    """The random stream of item `index` under `seed` (independent of every other item)."""
    if index < 0 or seed < 0:
        raise DataError(f"synthetic corpus: index and seed must be non-negative, got index={index}, seed={seed}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(index)])))


def synth_clip(index: int, seed: int = 0, sample_rate: int = 24000, clip_seconds: float = 1.0) -> SynthClip:
    """Render item `index` of the corpus with `seed`: kind KINDS[index % 12], random parameters."""
    if sample_rate < 8000:
        raise DataError(f"synthetic corpus: sample_rate must be at least 8000 Hz, got {sample_rate}")
    length = int(round(clip_seconds * sample_rate))
    if length < sample_rate // 4:
        raise DataError(f"synthetic corpus: clip_seconds must be at least 0.25, got {clip_seconds}")
    label = index % len(KINDS)
    kind = KINDS[label]
    rng = clip_rng(index, seed)
    wave, caption = GENERATORS[kind](rng, Canvas(sample_rate, length))
    peak = float(np.abs(wave).max())
    if not np.isfinite(peak) or peak == 0.0:  # a generator bug, never a property of the data
        raise RuntimeError(f"synthetic {kind} clip {index} (seed {seed}) came out silent or non-finite")
    level = 10 ** (rng.uniform(*LEVEL_DB) / 20)
    audio = (wave * (level / peak)).astype(np.float32)
    return SynthClip(audio, kind, label, caption, index, seed)


SEQUENCE_GAP = (0.5, 1.0)   # event j starts this many event lengths after event j - 1
FADE_SECONDS = 0.005        # raised-cosine edges of each event, so overlapping events never click


def synth_sequence(index: int, seed: int = 0, sample_rate: int = 24000, seconds: float = 2.0,
                   event_seconds: float = 1.0) -> SynthClip:
    """`seconds` of events of item `index`'s kind, one after another.

    Event j is drawn like a clip of `event_seconds` (its own pitch, timing, timbre and level) and
    starts 0.5-1 event lengths after event j - 1, so events overlap and fall anywhere across window
    joins, as sounds in long recordings do. The whole sequence comes from one stream, (seed, index,
    "sequence"), independent of `synth_clip`'s.
    """
    if seconds < event_seconds:
        raise DataError(f"synthetic sequence: seconds ({seconds}) must be at least event_seconds ({event_seconds})")
    first = synth_clip(index, seed, sample_rate, event_seconds)   # validates the settings; event 0 is this clip
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(index), 1])))
    length, event = int(round(seconds * sample_rate)), first.audio.size
    fade = np.sin(np.linspace(0.0, np.pi / 2, max(2, int(FADE_SECONDS * sample_rate)))) ** 2
    out = np.zeros(length + event, dtype=np.float64)
    start, captions, wave = 0, [first.caption], first.audio.astype(np.float64)
    while True:
        wave = wave.copy()
        wave[:fade.size] *= fade
        wave[-fade.size:] *= fade[::-1]
        out[start:start + event] += wave
        start += int(round(event * rng.uniform(*SEQUENCE_GAP)))
        if start >= length:
            break
        wave, caption = GENERATORS[first.kind](rng, Canvas(sample_rate, event))
        wave = wave * (10 ** (rng.uniform(*LEVEL_DB) / 20) / float(np.abs(wave).max()))
        captions.append(caption)
    audio = out[:length]
    peak, ceiling = float(np.abs(audio).max()), 10 ** (LEVEL_DB[1] / 20)
    if peak > ceiling:   # overlapping events may add up past the corpus' peak level
        audio = audio * (ceiling / peak)
    caption = f"{len(captions)} {first.kind} sounds: " + "; then ".join(captions)
    return SynthClip(audio.astype(np.float32), first.kind, first.label, caption, index, seed)


class SynthDataset(Dataset):
    """`n` synthetic clips as dataset items; rendered on demand, so `n` can be anything.

    `sequence`: each item is `synth_sequence` of `clip_seconds` (events of one kind, one after another)
    instead of one event stretched over the clip.
    """

    def __init__(self, n: int, seed: int = 0, sample_rate: int = 24000, clip_seconds: float = 1.0,
                 sequence: bool = False):
        if n <= 0:
            raise DataError(f"synthetic corpus: n must be positive, got {n}")
        self.n, self.seed, self.sample_rate, self.clip_seconds = int(n), int(seed), int(sample_rate), float(clip_seconds)
        self.sequence = bool(sequence)
        self.classes: list[str] = list(KINDS)
        self.skipped: list[tuple[str, str]] = []  # nothing can fail to decode; kept for the common interface
        self.render(0)  # validate the settings now, not in a worker

    def render(self, index: int) -> SynthClip:
        if self.sequence:
            return synth_sequence(index, self.seed, self.sample_rate, self.clip_seconds)
        return synth_clip(index, self.seed, self.sample_rate, self.clip_seconds)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += self.n
        if not 0 <= index < self.n:
            raise IndexError(f"synthetic corpus has {self.n} items, index {index} is out of range")
        clip = self.render(index)
        return {"audio": torch.from_numpy(clip.audio)[None], "label": clip.label, "labels": [clip.kind],
                "caption": clip.caption, "path": f"synth://{self.seed}/{index}"}
