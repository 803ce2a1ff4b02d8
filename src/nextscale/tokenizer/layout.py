"""Where the windows of a long latent sit, and how their latents join into one.

The scale schedule covers one window of T latent frames, so longer audio is W windows. Side by side
(overlap 0) window w covers frames [w T, (w + 1) T) and the decoder hears a step wherever two windows
that were quantised, or generated, apart meet. With an overlap of o frames the windows start every
T - o frames and their latents are crossfaded over the o frames they share, with complementary
linear weights that sum to exactly one, so the decoder hears a short transition, not a step. (A
raised cosine, tried first, changes fastest mid-way, and the log-mel change at the crossfades'
centres showed it: 1.17 against 1.10 for linear at 12 frames; benchmarks/long_generation.py.)
The overlap is at most T // 2, so a frame is shared by two windows at most.

The weights sum to one and MSRQ's output projection is affine, so crossfading f_hat or its projection
gives the same decoder input; `SAT.decode` crossfades the projection (one window's path unchanged),
the window-by-window generator crossfades f_hat to build the next window's context.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError


@dataclass(frozen=True)
class WindowLayout:
    """W windows of `frames` latent frames each, `overlap` frames shared by neighbours."""

    frames: int
    overlap: int = 0

    def __post_init__(self) -> None:
        o, T = self.overlap, self.frames
        if isinstance(o, bool) or not isinstance(o, int):
            raise ConfigError(f"overlap: expected a whole number of latent frames, got {o!r}")
        if not 0 <= o <= T // 2:
            raise ConfigError(f"overlap: must be 0..{T // 2} latent frames for windows of {T} frames (at most half "
                              f"a window, so neighbours alone share a frame), got {o}")

    @property
    def stride(self) -> int:
        """Frames from one window's start to the next one's."""
        return self.frames - self.overlap

    def num_windows(self, num_frames: int) -> int:
        """Windows needed to cover `num_frames` latent frames (at least one; the last one padded)."""
        return 1 + max(0, math.ceil((num_frames - self.frames) / self.stride))

    def total_frames(self, windows: int) -> int:
        """Latent frames W windows span: (W - 1) strides and one whole window."""
        return (windows - 1) * self.stride + self.frames

    def start(self, window: int) -> int:
        """First latent frame of window `window`."""
        return window * self.stride

    def fade_in(self, dtype: torch.dtype = torch.float64, device: torch.device | None = None) -> Tensor:
        """(o,) weight of the later window over the shared frames: (i + 1/2) / o, rising evenly from ~0 to ~1."""
        i = torch.arange(self.overlap, dtype=torch.float64, device=device) + 0.5
        return (i / self.overlap).to(dtype)

    def weights(self, windows: int, dtype: torch.dtype = torch.float64,
                device: torch.device | None = None) -> Tensor:
        """(W, T) crossfade weight of every window frame; overlap-added they are exactly one everywhere.

        The earlier window's weight over a shared frame is 1 minus the later one's, computed in `dtype`,
        so the pair sums to one with no rounding left over."""
        w = torch.ones(windows, self.frames, dtype=dtype, device=device)
        o = self.overlap
        if o and windows > 1:
            rise = self.fade_in(dtype, device)
            w[1:, :o] = rise
            w[:-1, self.frames - o:] = 1 - rise
        return w

    def frames_text(self) -> str:
        """The frame count of W windows, in words for error messages: "W * T" or "(W - 1) * stride + T"."""
        T = self.frames
        return f"W * {T}" if not self.overlap else f"(W - 1) * {self.stride} + {T}"

    def count(self, num_frames: int) -> int | None:
        """The window count a latent of `num_frames` frames holds, or None when it is not whole windows."""
        if num_frames < self.frames or (num_frames - self.frames) % self.stride:
            return None
        return (num_frames - self.frames) // self.stride + 1

    def split(self, z: Tensor) -> Tensor:
        """(B, C, F) latent of whole windows -> (B * W, C, T): the windows as batch rows, batch-major."""
        b, c, frames = z.shape
        if self.count(frames) is None:
            raise ConfigError(f"layout.split: a latent of {frames} frames is not {self.frames_text()} frames for W "
                              f"windows (overlap {self.overlap})")
        if not self.overlap:
            return z.reshape(b, c, -1, self.frames).transpose(1, 2).reshape(-1, c, self.frames)
        return z.unfold(-1, self.frames, self.stride).transpose(1, 2).reshape(-1, c, self.frames)

    def join(self, x: Tensor, batch: int) -> Tensor:
        """(B * W, C, T) window latents -> (B, C, F): side by side, or crossfaded where they overlap."""
        _, c, frames = x.shape
        if frames != self.frames or x.shape[0] % batch:
            raise ConfigError(f"layout.join: expected ({batch} * W, C, {self.frames}) window latents, got "
                              f"{tuple(x.shape)}")
        windows = x.shape[0] // batch
        x = x.reshape(batch, windows, c, frames)
        if not self.overlap:
            return x.transpose(1, 2).reshape(batch, c, -1)
        weighted = x * self.weights(windows, x.dtype, x.device)[None, :, None, :]
        out = x.new_zeros(batch, c, self.total_frames(windows))
        for w in range(windows):
            out[..., self.start(w):self.start(w) + frames] += weighted[:, w]
        return out

    def frame_spans(self, windows: int) -> list[tuple[int, int]]:
        """The W - 1 joins as latent-frame spans [start, end): the shared frames (empty spans at overlap 0)."""
        return [(self.start(w), self.start(w) + self.overlap) for w in range(1, windows)]
