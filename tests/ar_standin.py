"""A small stand-in for SAT's MSRQ quantizer (embed / next_input / teacher_forcing_inputs).

Lets the AR tests run without the tokenizer: same contract as nextscale.tokenizer.msrq, with
random codebooks, linear up-sampling, a fixed smoothing Phi and area down-sampling.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class StandInQuantizer:
    def __init__(self, scales, codebook_size=16, latent_dim=4, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.scales, self.codebook_size, self.latent_dim = list(scales), codebook_size, latent_dim
        self.codebooks = torch.randn(len(scales), codebook_size, latent_dim, generator=g)
        self.phi = torch.randn(latent_dim, latent_dim, 3, generator=g) * 0.2

    def embed(self, k, idx):
        q = self.codebooks[k][idx].transpose(1, 2)                      # (B, C, n_k)
        T = self.scales[-1]
        if q.shape[-1] != T:
            q = F.interpolate(q, size=T, mode="linear")
        return 0.5 * q + 0.5 * F.conv1d(q, self.phi, padding=1)

    def next_input(self, f_hat, k):
        return F.interpolate(f_hat, size=self.scales[k + 1], mode="area").transpose(1, 2)

    def f_hat_from_codes(self, codes):
        return sum(self.embed(k, c) for k, c in enumerate(codes))

    def teacher_forcing_inputs(self, codes):
        f_hat, out = 0, []
        for k in range(len(self.scales) - 1):
            f_hat = f_hat + self.embed(k, codes[k])
            out.append(self.next_input(f_hat, k))
        return torch.cat(out, dim=1)
