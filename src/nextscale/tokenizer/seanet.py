"""SEANet encoder/decoder (the EnCodec family), non-causal, weight-normalised, reflect-padded.

Layer indices inside `model` (an nn.Sequential) follow the published SAT, so its checkpoints load
with a plain key rename (see published.py). Convs pad so that a length-S input gives exactly
ceil(S / hop) frames, and the decoder gives back hop * frames samples.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def reflect_pad(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Reflect padding that also works when the input is shorter than the pad (zeros first)."""
    length = x.shape[-1]
    widest = max(left, right)
    extra = 0
    if length <= widest:
        extra = widest - length + 1
        x = F.pad(x, (0, extra))
    x = F.pad(x, (left, right), mode="reflect")
    return x[..., : x.shape[-1] - extra]


def variance_preserving(conv: nn.Conv1d | nn.ConvTranspose1d) -> nn.Conv1d | nn.ConvTranspose1d:
    """Zero bias and N(0, 1/fan_in) weights, so the signal neither vanishes nor explodes through ~20 layers.

    PyTorch's default init shrinks the variance ~3x per conv and draws biases of ±1/sqrt(fan_in):
    at SEANet depth the output ends up set by biases alone (identical for every input, ~1e-7
    apart), and a small model trained on CPU collapses to near-silence before it learns anything.
    Initialisation only: loaded checkpoints are unaffected.
    """
    weight = conv.weight
    fan_in = weight.shape[1] * weight.shape[2]
    if isinstance(conv, nn.ConvTranspose1d):   # (cin, cout, k): each output sample sees cin * k / stride inputs
        fan_in = weight.shape[0] * max(1, weight.shape[2] // conv.stride[0])
    nn.init.normal_(weight, 0.0, fan_in ** -0.5)
    nn.init.zeros_(conv.bias)
    return conv


class Conv(nn.Module):
    """Weight-normalised Conv1d with 'same'-style reflect padding for any stride.

    The right side gets whatever extra padding makes the last window complete, so the output
    has ceil(length / stride) frames.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = weight_norm(variance_preserving(nn.Conv1d(cin, cout, kernel_size, stride=stride, dilation=dilation)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        kernel = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
        stride = conv.stride[0]
        total = kernel - stride
        length = x.shape[-1]
        frames = (length - kernel + total) / stride + 1
        extra = (math.ceil(frames) - 1) * stride + (kernel - total) - length
        right = total // 2
        return conv(reflect_pad(x, total - right, right + extra))


class ConvTranspose(nn.Module):
    """Weight-normalised ConvTranspose1d that trims kernel - stride samples (split as in Conv)."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int):
        super().__init__()
        self.convtr = weight_norm(variance_preserving(nn.ConvTranspose1d(cin, cout, kernel_size, stride=stride)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convtr(x)
        total = self.convtr.kernel_size[0] - self.convtr.stride[0]
        right = total // 2
        left = total - right
        return y[..., left: y.shape[-1] - right]


class ResidualBlock(nn.Module):
    """ELU -> conv k3 -> ELU -> conv k1 (hidden = dim / compress), plus a 1x1-conv shortcut."""

    def __init__(self, dim: int, kernel_size: int = 3, dilation: int = 1, compress: int = 2):
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(nn.ELU(), Conv(dim, hidden, kernel_size, dilation=dilation),
                                   nn.ELU(), Conv(hidden, dim, 1))
        self.shortcut = Conv(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


class LSTM(nn.Module):
    """Multi-layer LSTM over time with a skip connection, on (B, C, T)."""

    def __init__(self, dim: int, num_layers: int = 2):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)
        for name, param in self.lstm.named_parameters():
            if name.startswith("bias"):     # a bias-driven output would swamp the skip's signal at init
                nn.init.zeros_(param)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.permute(2, 0, 1)
        out, _ = self.lstm(seq)
        return (out + seq).permute(1, 2, 0)


class SEANetEncoder(nn.Module):
    """(B, channels, S) -> (B, dimension, ceil(S / prod(ratios)))."""

    def __init__(self, channels: int = 1, dimension: int = 128, n_filters: int = 32, ratios: Sequence[int] = (8, 5, 4, 2),
                 n_residual_layers: int = 1, lstm_layers: int = 2, kernel_size: int = 7, last_kernel_size: int = 7,
                 residual_kernel_size: int = 3, dilation_base: int = 2, compress: int = 2):
        super().__init__()
        mult = 1
        layers: list[nn.Module] = [Conv(channels, n_filters, kernel_size)]
        for ratio in reversed(list(ratios)):
            dim = mult * n_filters
            layers += [ResidualBlock(dim, residual_kernel_size, dilation_base ** j, compress)
                       for j in range(n_residual_layers)]
            layers += [nn.ELU(), Conv(dim, dim * 2, ratio * 2, stride=ratio)]
            mult *= 2
        if lstm_layers:
            layers.append(LSTM(mult * n_filters, lstm_layers))
        layers += [nn.ELU(), Conv(mult * n_filters, dimension, last_kernel_size)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SEANetDecoder(nn.Module):
    """(B, dimension, T) -> (B, channels, T * prod(ratios)); mirrors the encoder with transposed convs."""

    def __init__(self, channels: int = 1, dimension: int = 128, n_filters: int = 32, ratios: Sequence[int] = (8, 5, 4, 2),
                 n_residual_layers: int = 1, lstm_layers: int = 2, kernel_size: int = 7, last_kernel_size: int = 7,
                 residual_kernel_size: int = 3, dilation_base: int = 2, compress: int = 2):
        super().__init__()
        mult = 2 ** len(ratios)
        layers: list[nn.Module] = [Conv(dimension, mult * n_filters, kernel_size)]
        if lstm_layers:
            layers.append(LSTM(mult * n_filters, lstm_layers))
        for ratio in ratios:
            dim = mult * n_filters
            layers += [nn.ELU(), ConvTranspose(dim, dim // 2, ratio * 2, stride=ratio)]
            layers += [ResidualBlock(dim // 2, residual_kernel_size, dilation_base ** j, compress)
                       for j in range(n_residual_layers)]
            mult //= 2
        layers += [nn.ELU(), Conv(n_filters, channels, last_kernel_size)]
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)
