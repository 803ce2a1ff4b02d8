"""Scale schedules: how many tokens each of the K scales of MSRQ holds.

The top scale always has T tokens (one per latent frame), and T follows from the clip length,
so a longer clip is just a longer top scale. The paper's `quadratic` schedule spaces sqrt(n_k)
evenly, which puts many small scales first (cheap AR steps) and few large ones last.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import ConfigError

SCHEDULE_KINDS = ("quadratic", "linear", "log", "rvq", "explicit")


def num_frames_for(clip_seconds: float, sample_rate: int, hop_length: int) -> int:
    """Latent frames T for a clip: ceil(samples / hop), as the strided encoder produces."""
    samples = int(round(clip_seconds * sample_rate))
    if samples <= 0:
        raise ConfigError(f"clip_seconds: must give at least one sample, got {clip_seconds}")
    return math.ceil(samples / hop_length)


def quadratic_schedule(num_frames: int, num_scales: int) -> list[int]:
    """floor(linspace(1, sqrt(T), K)^2): T=75, K=16 -> 1 2 4 6 9 12 16 20 25 31 37 43 50 58 66 75."""
    roots = np.linspace(1.0, math.sqrt(num_frames), num_scales)
    scales = [int(math.floor(v * v + 1e-9)) for v in roots]
    scales[-1] = num_frames  # sqrt(T)^2 may land a hair under T in floating point
    return scales


def linear_schedule(num_frames: int, num_scales: int) -> list[int]:
    """Evenly spaced token counts from 1 to T."""
    return [int(round(v)) for v in np.linspace(1.0, num_frames, num_scales)]


def log_schedule(num_frames: int, num_scales: int) -> list[int]:
    """Geometrically spaced token counts from 1 to T (each scale a constant factor larger)."""
    return [int(round(v)) for v in np.geomspace(1.0, num_frames, num_scales)]


def check_schedule(scales: Sequence[int], num_frames: int, kind: str = "explicit") -> list[int]:
    """Reject schedules MSRQ cannot use; the message says which scale breaks which rule."""
    scales = [int(s) for s in scales]
    where = f"scale schedule '{kind}' {scales}"
    if not scales:
        raise ConfigError(f"{where}: needs at least one scale")
    if any(s < 1 for s in scales):
        raise ConfigError(f"{where}: every scale needs at least one token")
    if scales[-1] != num_frames:
        raise ConfigError(f"{where}: must end at T = {num_frames} latent frames (the clip length / hop), "
                          f"ends at {scales[-1]}")
    if kind == "rvq":
        if any(s != num_frames for s in scales):
            raise ConfigError(f"{where}: an RVQ schedule has every level at T = {num_frames}")
        return scales
    for i in range(1, len(scales)):
        if scales[i] <= scales[i - 1]:
            raise ConfigError(f"{where}: must be strictly increasing, but scale {i} ({scales[i]}) <= "
                              f"scale {i - 1} ({scales[i - 1]}); use fewer scales or a longer clip")
    return scales


def make_schedule(kind: str, num_frames: int, num_scales: int, scales: Sequence[int] | None = None) -> list[int]:
    """Token counts n_1 < ... < n_K = T for a schedule kind ('rvq': K levels all at T)."""
    if num_frames < 1:
        raise ConfigError(f"scale schedule: need at least one latent frame, got T = {num_frames}")
    if kind == "explicit":
        if not scales:
            raise ConfigError("scale schedule 'explicit': give the token counts in `scales`")
        return check_schedule(scales, num_frames, kind)
    if kind not in SCHEDULE_KINDS:
        raise ConfigError(f"scale schedule: unknown kind {kind!r}; expected one of {', '.join(SCHEDULE_KINDS)}")
    if num_scales < 1:
        raise ConfigError(f"scale schedule '{kind}': num_scales must be >= 1, got {num_scales}")
    if kind == "rvq":
        return check_schedule([num_frames] * num_scales, num_frames, kind)
    if num_scales == 1:
        return check_schedule([num_frames], num_frames, kind)
    build = {"quadratic": quadratic_schedule, "linear": linear_schedule, "log": log_schedule}[kind]
    return check_schedule(build(num_frames, num_scales), num_frames, kind)


def spread_schedule(kind: str, num_frames: int, num_scales: int) -> list[int]:
    """The kind's token counts with colliding small scales pushed apart (each at least one more than the
    last): `log` at 16 scales or `quadratic` at 32 round several early scales to the same count for
    T = 75, which `make_schedule` rejects; comparisons that need those scale counts use this instead
    (as an explicit schedule) and report the counts they got."""
    if kind not in ("quadratic", "linear", "log"):
        raise ConfigError(f"spread_schedule: kind must be quadratic, linear or log, got {kind!r}")
    if not 1 <= num_scales <= num_frames:
        raise ConfigError(f"spread_schedule: {num_scales} distinct scales cannot fit in T = {num_frames} frames")
    if num_scales == 1:
        return [num_frames]
    build = {"quadratic": quadratic_schedule, "linear": linear_schedule, "log": log_schedule}[kind]
    scales = build(num_frames, num_scales)
    for i in range(1, num_scales):                              # push collisions up ...
        scales[i] = max(scales[i], scales[i - 1] + 1)
    scales[-1] = num_frames
    for i in range(num_scales - 2, -1, -1):                     # ... and keep room under T
        scales[i] = min(scales[i], scales[i + 1] - 1)
    return check_schedule(scales, num_frames, kind)
