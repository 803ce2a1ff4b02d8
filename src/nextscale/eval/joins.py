"""Are the joins of window-by-window audio audible? Log-mel change across a join vs everywhere else.

Audio made window by window (a long clip coded by SAT, or generated one window at a time) can
click, jump in level or change timbre where two windows meet. The metric looks at the log-mel
spectrogram on a fine hop (5 ms at 24 kHz) and its frame-to-frame change, the mean absolute
difference of consecutive frames over the bands. A change "at a join" is one between two frames
whose analysis windows straddle a join; the join ratio is the mean change there over the mean
change everywhere else. A seamless signal scores about 1 (joins look like any other moment), a
click or jump at every join scores well above it; the same positions in the original audio give
the signal's own figure to compare with.

Windows that overlap and are crossfaded have no join instant: the join is the shared stretch, and
"at the join" is every change within reach of it (`ratio`). A crossfade spreads a jump over that
stretch, so the change at its centre (`ratio_centre`, against the change outside every stretch)
is reported as well: a jump squeezed into a short crossfade still shows there.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import ConfigError
from ..tokenizer.mel import log_mel_spectrogram

N_FFT, HOP, N_MELS, FLOOR = 512, 120, 64, 1e-4     # 21 ms windows every 5 ms at 24 kHz


def frame_changes(log_mel: torch.Tensor) -> torch.Tensor:
    """(n_mels, frames) -> (frames - 1,) mean |L[:, t] - L[:, t - 1]| over the bands."""
    return (log_mel[:, 1:] - log_mel[:, :-1]).abs().mean(dim=0)


def join_mask(num_changes: int, joins: Sequence[int], hop: int, reach: int, span: int = 0) -> np.ndarray:
    """Which changes sit at a join: change t (between frames t and t + 1, centred at (t + 0.5) * hop
    samples for centred frames) lies within `reach` samples of a join, the `span` samples from each
    join position on (0: the position alone)."""
    centres = (np.arange(num_changes) + 0.5) * hop
    mask = np.zeros(num_changes, dtype=bool)
    for j in joins:
        mask |= (centres >= j - reach) & (centres <= j + span + reach)
    return mask


def join_ratio(changes: torch.Tensor | np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Mean change at joins, elsewhere, and their ratio (nan when either side is empty or flat)."""
    changes = np.asarray(changes, dtype=np.float64)
    if changes.shape != mask.shape:
        raise ConfigError(f"join_ratio: {changes.shape[0]} changes but a mask of {mask.shape[0]}")
    at, rest = changes[mask], changes[~mask]
    at_mean = float(at.mean()) if at.size else float("nan")
    rest_mean = float(rest.mean()) if rest.size else float("nan")
    ratio = at_mean / rest_mean if at.size and rest.size and rest_mean > 0 else float("nan")
    return {"at_joins": at_mean, "elsewhere": rest_mean, "ratio": ratio, "joins_changes": int(at.size)}


def join_discontinuity(wav: torch.Tensor, sample_rate: int, window_samples: int, overlap_samples: int = 0,
                       n_fft: int = N_FFT, hop: int = HOP) -> dict[str, float]:
    """(S,) or (1, S) audio made of `window_samples`-long windows, each starting `overlap_samples` before
    the last one ends -> the join figures of `join_ratio` over the shared stretches, plus `ratio_centre`."""
    wav = wav.reshape(-1).float()
    if window_samples < 1:
        raise ConfigError(f"join_discontinuity: window_samples must be >= 1, got {window_samples}")
    if not 0 <= overlap_samples < window_samples:
        raise ConfigError(f"join_discontinuity: overlap_samples must be in [0, {window_samples}), got {overlap_samples}")
    stride = window_samples - overlap_samples
    joins = list(range(stride, wav.shape[-1] - n_fft // 2 - overlap_samples, stride))
    if not joins:
        raise ConfigError(f"join_discontinuity: {wav.shape[-1]} samples hold no join between "
                          f"{window_samples}-sample windows every {stride} samples")
    changes = frame_changes(log_mel_spectrogram(wav, sample_rate, n_fft, hop, N_MELS, floor=FLOOR)).numpy()
    spans = join_mask(changes.shape[0], joins, hop, n_fft // 2, overlap_samples)
    centres = join_mask(changes.shape[0], [j + overlap_samples // 2 for j in joins], hop, n_fft // 2)
    outside = centres | ~spans
    return join_ratio(changes, spans) | {"ratio_centre": join_ratio(changes[outside], centres[outside])["ratio"]}
