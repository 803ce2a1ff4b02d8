"""Multi-scale residual quantization (MSRQ), the core of SAT.

The latent (B, C, T) is quantized coarse to fine: scale k area-down-samples the current residual
to n_k frames, looks up its own codebook, linearly up-samples back to T, refines with Phi and
subtracts. Summing the K refined maps gives f_hat. The AR model predicts scale k+1 from
area_down(f_hat_k, n_{k+1}), so the helpers `embed`, `next_input` and `teacher_forcing_inputs`
are written with the very operations `encode` uses: what the AR model sees during teacher
forcing is exactly what it rebuilds step by step at generation time.
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .codebook import EMACodebook

PhiMode = Literal["partial", "unshared", "shared", "none"]


def area_down(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, T) -> (B, C, size) by averaging (identity when size == T)."""
    return x if x.shape[-1] == size else F.interpolate(x, size=size, mode="area")


def linear_up(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, n) -> (B, C, size) by linear interpolation, align_corners=False as published."""
    return x if x.shape[-1] == size else F.interpolate(x, size=size, mode="linear", align_corners=False)


class Phi(nn.Conv1d):
    """(1 - ratio) * q + ratio * conv1d(q): a learned, mostly-identity smoothing of an up-sampled scale."""

    def __init__(self, dim: int, kernel_size: int = 9, ratio: float = 0.5):
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2)
        self.ratio = abs(ratio)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return q.mul(1 - self.ratio) + super().forward(q).mul_(self.ratio)


def phi_ticks(count: int) -> np.ndarray:
    """Positions in [0, 1] the shared Phis sit at; scale k uses the nearest to k / (K - 1).

    With exactly 4 Phis VAR (and the published SAT) place them at 1/12 .. 11/12; otherwise at
    1/(2P) .. 1 - 1/(2P). Kept for checkpoint compatibility.
    """
    if count == 4:
        return np.linspace(1 / 3 / count, 1 - 1 / 3 / count, count)
    return np.linspace(1 / 2 / count, 1 - 1 / 2 / count, count)


def phi_assignment(mode: str, num_scales: int, count: int) -> list[int | None]:
    """Which Phi conv each scale uses (None: no refinement)."""
    if mode == "none":
        return [None] * num_scales
    if mode == "shared":
        return [0] * num_scales
    if mode == "unshared":
        return list(range(num_scales))
    ticks = phi_ticks(count)
    positions = [k / (num_scales - 1) if num_scales > 1 else 0.0 for k in range(num_scales)]
    return [int(np.argmin(np.abs(ticks - p))) for p in positions]


@dataclasses.dataclass
class QuantizerOutput:
    """What one MSRQ pass produces (training or eval)."""

    quantized: torch.Tensor          # (B, D, T) decoder input, straight-through in training
    codes: list[torch.Tensor]        # K LongTensors (B, n_k)
    commit_loss: torch.Tensor        # scalar, mean over scales
    usage: torch.Tensor              # (K,) fraction of codebook entries used in this batch
    perplexity: torch.Tensor         # (K,) exp(entropy) of each scale's code histogram


class MSRQ(nn.Module):
    """Multi-scale residual quantizer with per-scale EMA codebooks and Phi refinement."""

    def __init__(self, dimension: int, latent_dim: int, scales: Sequence[int], codebook_size: int = 1024,
                 phi: PhiMode = "partial", phi_count: int = 6, phi_kernel: int = 9, phi_ratio: float = 0.5,
                 decay: float = 0.99, epsilon: float = 1e-5, dead_threshold: float = 2.0, kmeans_iters: int = 50):
        super().__init__()
        if phi not in ("partial", "unshared", "shared", "none"):
            raise ConfigError(f"phi: expected partial, unshared, shared or none, got {phi!r}")
        self.scales = [int(s) for s in scales]
        self.num_frames = self.scales[-1]
        self.dimension, self.latent_dim, self.codebook_size = dimension, latent_dim, codebook_size
        self.proj_in = nn.Linear(dimension, latent_dim) if dimension != latent_dim else nn.Identity()
        self.proj_out = nn.Linear(latent_dim, dimension) if dimension != latent_dim else nn.Identity()
        n_phi = {"partial": phi_count, "unshared": len(self.scales), "shared": 1, "none": 0}[phi]
        self.phis = nn.ModuleList([Phi(latent_dim, phi_kernel, phi_ratio) for _ in range(n_phi)])
        self.phi_index = phi_assignment(phi, len(self.scales), n_phi)
        self.codebooks = nn.ModuleList([
            EMACodebook(latent_dim, codebook_size, decay, epsilon, dead_threshold, kmeans_iters)
            for _ in self.scales])

    @property
    def num_scales(self) -> int:
        return len(self.scales)

    # ---- the pieces every path shares -------------------------------------------------------
    def refine(self, k: int, q: torch.Tensor) -> torch.Tensor:
        i = self.phi_index[k]
        return q if i is None else self.phis[i](q)

    def embed(self, k: int, idx: torch.Tensor) -> torch.Tensor:
        """Scale k's codes (B, n_k) -> its contribution to f_hat (B, C, T): lookup, linear up, Phi."""
        q = self.codebooks[k].lookup(idx).transpose(1, 2)
        return self.refine(k, linear_up(q, self.num_frames))

    def next_input(self, f_hat: torch.Tensor, k: int) -> torch.Tensor:
        """The AR input for scale k+1: area_down(f_hat after k+1 scales, n_{k+1}) as (B, n_{k+1}, C)."""
        if not 0 <= k < self.num_scales - 1:
            raise ValueError(f"next_input: scale index k must be in 0..{self.num_scales - 2}, got {k}")
        return area_down(f_hat, self.scales[k + 1]).transpose(1, 2)

    def project_in(self, z: torch.Tensor) -> torch.Tensor:
        """Encoder output (B, D, T) -> residual (B, C, T)."""
        self._check_frames(z)
        return self.proj_in(z.transpose(1, 2)).transpose(1, 2)

    def project_out(self, f_hat: torch.Tensor) -> torch.Tensor:
        """Quantized latent (B, C, T) -> decoder input (B, D, T)."""
        return self.proj_out(f_hat.transpose(1, 2)).transpose(1, 2)

    def _check_frames(self, z: torch.Tensor) -> None:
        if z.dim() != 3 or z.shape[-1] != self.num_frames:
            raise ConfigError(f"MSRQ: expected a latent (B, D, T={self.num_frames}), got {tuple(z.shape)}; "
                              f"the schedule {self.scales} is built for clips of exactly T latent frames")

    def _check_codes(self, codes: Sequence[torch.Tensor]) -> None:
        if not 1 <= len(codes) <= self.num_scales:
            raise ConfigError(f"codes: expected 1..{self.num_scales} scales, got {len(codes)}")
        for k, c in enumerate(codes):
            if c.dim() != 2 or c.shape[1] != self.scales[k]:
                raise ConfigError(f"codes[{k}]: expected shape (B, {self.scales[k]}), got {tuple(c.shape)}")
            if c.dtype not in (torch.int64, torch.int32):
                raise ConfigError(f"codes[{k}]: expected integer indices, got {c.dtype}")
            if c.numel() and (int(c.min()) < 0 or int(c.max()) >= self.codebook_size):
                raise ConfigError(f"codes[{k}]: indices must be in 0..{self.codebook_size - 1}, "
                                  f"got {int(c.min())}..{int(c.max())}")

    # ---- encode / decode ---------------------------------------------------------------------
    def encode(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Encoder output (B, D, T) -> K LongTensors (B, n_k)."""
        residual = self.project_in(z)
        codes = []
        for k, n in enumerate(self.scales):
            idx = self.codebooks[k].nearest(area_down(residual, n).transpose(1, 2))
            residual = residual - self.embed(k, idx)
            codes.append(idx)
        return codes

    def f_hat_from_codes(self, codes: Sequence[torch.Tensor]) -> torch.Tensor:
        """Sum of the first len(codes) scales' contributions, (B, C, T)."""
        self._check_codes(codes)
        f_hat = torch.zeros(())
        for k, idx in enumerate(codes):
            f_hat = f_hat + self.embed(k, idx)
        return f_hat

    def decode(self, codes: Sequence[torch.Tensor]) -> torch.Tensor:
        """Codes (any prefix of the scales) -> decoder input (B, D, T)."""
        return self.project_out(self.f_hat_from_codes(codes))

    def teacher_forcing_inputs(self, codes: Sequence[torch.Tensor]) -> torch.Tensor:
        """AR inputs for scales 1..K-1 from the running f_hat: (B, L - n_0, C)."""
        if len(codes) != self.num_scales:
            raise ConfigError(f"codes: teacher forcing needs all {self.num_scales} scales, got {len(codes)}")
        self._check_codes(codes)
        f_hat = torch.zeros(())
        inputs = []
        for k in range(self.num_scales - 1):
            f_hat = f_hat + self.embed(k, codes[k])
            inputs.append(self.next_input(f_hat, k))
        return torch.cat(inputs, dim=1)

    # ---- training / reconstruction pass ------------------------------------------------------
    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantize; in training also update the codebooks (EMA) and compute the commitment loss.

        Eval mode computes exactly what encode + decode compute. In training the decoder input
        is straight-through: proj_out(r + (f_hat - r).detach()), so the encoder gets the
        decoder's gradient once (not once per scale, as the published code does).
        """
        r0 = self.project_in(z)
        residual, f_hat = r0, torch.zeros((), device=z.device)
        codes, losses, usage, perplexity = [], [], [], []
        for k, n in enumerate(self.scales):
            book = self.codebooks[k]
            target = area_down(residual, n).transpose(1, 2)
            if self.training and not bool(book.inited.item()):
                book.init_from_batch(target)
            idx = book.nearest(target.detach())
            q = self.embed(k, idx)
            if self.training:
                book.ema_update(target, idx)
                loss = F.mse_loss(q.detach(), residual)
                if self.phi_index[k] is not None:
                    loss = loss + F.mse_loss(q, residual.detach())
                losses.append(loss)
            residual = residual - q.detach()
            f_hat = f_hat + q.detach() if self.training else f_hat + q
            codes.append(idx)
            counts = torch.bincount(idx.reshape(-1), minlength=self.codebook_size).float()
            probs = counts / counts.sum().clamp(min=1)
            usage.append((counts > 0).float().mean())
            perplexity.append(torch.exp(-(probs * torch.log(probs.clamp(min=1e-12))).sum()))
        if self.training:
            f_hat = r0 + (f_hat - r0).detach()
            commit = torch.stack(losses).mean()
        else:
            commit = torch.zeros((), device=z.device)
        return QuantizerOutput(self.project_out(f_hat), codes, commit, torch.stack(usage), torch.stack(perplexity))

    def extra_repr(self) -> str:
        return f"scales={self.scales}, codebook_size={self.codebook_size}, phi_index={self.phi_index}"
