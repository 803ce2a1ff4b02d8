"""Multi-scale STFT discriminator (EnCodec): one 2-D conv net per STFT resolution.

Each sub-discriminator sees the real and imaginary parts of a normalised STFT as two channels
and returns a map of logits plus its intermediate feature maps (for feature matching).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


class STFTDiscriminator(nn.Module):
    """Convs over (time, frequency) of one STFT resolution; strides only along frequency."""

    def __init__(self, window: int, filters: int = 32, dilations: Sequence[int] = (1, 2, 4)):
        super().__init__()
        self.window, self.hop = window, window // 4
        layers = [weight_norm(nn.Conv2d(2, filters, (3, 9), padding=(1, 4)))]
        for d in dilations:
            layers.append(weight_norm(nn.Conv2d(filters, filters, (3, 9), stride=(1, 2), dilation=(d, 1),
                                                padding=(d, 4))))
        layers.append(weight_norm(nn.Conv2d(filters, filters, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(layers)
        self.out = weight_norm(nn.Conv2d(filters, 1, (3, 3), padding=(1, 1)))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = torch.stft(wav.reshape(-1, wav.shape[-1]), self.window, self.hop, self.window,
                          window=torch.hann_window(self.window, device=wav.device), center=False,
                          normalized=True, return_complex=True)
        x = torch.stack([spec.real, spec.imag], 1).transpose(2, 3)   # (B, 2, frames, freq)
        features = []
        for conv in self.convs:
            x = self.act(conv(x))
            features.append(x)
        return self.out(x), features


class MultiScaleSTFTDiscriminator(nn.Module):
    """Sub-discriminators over STFT windows [1024, 2048, 512, 256, 128] (hop = window / 4)."""

    def __init__(self, windows: Sequence[int] = (1024, 2048, 512, 256, 128), filters: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList([STFTDiscriminator(w, filters) for w in windows])

    def forward(self, wav: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """(B, 1, S) -> (logits per sub-discriminator, feature maps per sub-discriminator)."""
        logits, features = [], []
        for disc in self.discriminators:
            out, feats = disc(wav)
            logits.append(out)
            features.append(feats)
        return logits, features
