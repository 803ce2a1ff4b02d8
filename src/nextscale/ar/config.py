"""ARConfig: one config for both AR models (next-scale AAR and the next-token baseline).

Both models share blocks, width, conditioning and attention, so a single dataclass keeps a
fair comparison a one-key change (`kind`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Sequence

import torch

from ..errors import ConfigError

FIT_FIELDS = ("scales", "codebook_size", "latent_dim")    # what an AR model must share with its tokenizer


class Quantizer(Protocol):
    """What the AR models use of a tokenizer's quantizer (MSRQ, or the RVQ baseline's)."""

    scales: list[int]
    codebook_size: int
    latent_dim: int

    def embed(self, k: int, idx: torch.Tensor) -> torch.Tensor: ...
    def next_input(self, f_hat: torch.Tensor, k: int) -> torch.Tensor: ...
    def teacher_forcing_inputs(self, codes: Sequence[torch.Tensor]) -> torch.Tensor: ...

# The paper's 16-scale quadratic schedule for one second at 75 latent frames per second.
PAPER_SCALES = [1, 2, 4, 6, 9, 12, 16, 20, 25, 31, 37, 43, 50, 58, 66, 75]


@dataclass
class ARConfig:
    kind: Literal["aar", "next_token"] = "aar"
    depth: int = 16
    width: int = 0            # 0 => 64 * depth
    heads: int = 0            # 0 => depth
    mlp_ratio: float = 4.0
    scales: list[int] = field(default_factory=lambda: list(PAPER_SCALES))
    codebook_size: int = 1024
    latent_dim: int = 32      # C, the quantizer's latent width (input of the word embedding)
    condition: Literal["vector", "class"] = "vector"
    cond_dim: int = 512       # CLAP-sized vector, or the width of the learned class table
    num_classes: int = 0      # only for condition == "class"
    cond_dropout: float = 0.1
    attention: Literal["sdpa", "cosine"] = "sdpa"
    norm_eps: float = 1e-6
    order: Literal["scale", "rvq"] = "scale"   # next_token only: token order of the flattened codes
    context_tokens: int = 0   # n_ctx: tokens summarising the previous window (0 = one window, no context)
    context_dropout: float = 0.1   # training: share of continuation windows that see the null context
    # training: "token" weighs every token alike (the paper's mean cross-entropy); "scale" gives every scale the
    # same share of the loss, so the coarse scales' few tokens (the contour: 15 of 234 in the demo) count as much
    loss_weighting: Literal["token", "scale"] = "token"
    # with "scale": each scale's relative share of the loss, K positive numbers ([] = equal shares). A larger share
    # for the first scales teaches a small model a class that only the contour tells apart (a chirp's direction,
    # benchmarks/class_gain.py), at a cost to the fine scales it takes the share from
    scale_loss_shares: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ConfigError(f"model.depth: must be >= 1, got {self.depth}")
        if self.width == 0:
            self.width = 64 * self.depth
        if self.heads == 0:
            self.heads = self.depth
        if self.width < 1 or self.heads < 1 or self.width % self.heads:
            raise ConfigError(f"model.width ({self.width}) must be a positive multiple of model.heads ({self.heads})")
        if self.mlp_ratio <= 0:
            raise ConfigError(f"model.mlp_ratio: must be > 0, got {self.mlp_ratio}")
        if not self.scales or any(n < 1 for n in self.scales):
            raise ConfigError(f"model.scales: expected a non-empty list of positive token counts, got {self.scales}")
        if self.order == "scale" and any(b <= a for a, b in zip(self.scales, self.scales[1:])):
            raise ConfigError(f"model.scales: must be strictly increasing for next-scale order, got {self.scales}")
        if self.order == "rvq" and len(set(self.scales)) != 1:
            raise ConfigError(f"model.scales: order 'rvq' needs every level at the same length T, got {self.scales}")
        if self.order == "rvq" and self.kind != "next_token":
            raise ConfigError("model.order: 'rvq' is a next_token order; the AAR model predicts scales")
        if self.codebook_size < 2:
            raise ConfigError(f"model.codebook_size: must be >= 2, got {self.codebook_size}")
        if self.latent_dim < 1 or self.cond_dim < 1:
            raise ConfigError("model.latent_dim and model.cond_dim must be >= 1")
        if self.condition == "class" and self.num_classes < 1:
            raise ConfigError("model.num_classes: condition 'class' needs num_classes >= 1")
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ConfigError(f"model.cond_dropout: must be in [0, 1), got {self.cond_dropout}")
        if self.context_tokens < 0 or (self.context_tokens and self.context_tokens > self.scales[-1]):
            raise ConfigError(f"model.context_tokens: must be in [0, {self.scales[-1]}] (the window's latent frames), "
                              f"got {self.context_tokens}")
        if not 0.0 <= self.context_dropout <= 1.0:
            raise ConfigError(f"model.context_dropout: must be in [0, 1], got {self.context_dropout}")
        if self.scale_loss_shares:
            if self.loss_weighting != "scale":
                raise ConfigError("model.scale_loss_shares: needs loss_weighting 'scale' "
                                  f"(got {self.loss_weighting!r})")
            if len(self.scale_loss_shares) != len(self.scales) or not all(w > 0 for w in self.scale_loss_shares):
                raise ConfigError(f"model.scale_loss_shares: expected {len(self.scales)} positive numbers (one per "
                                  f"scale), got {self.scale_loss_shares}")

    @property
    def num_tokens(self) -> int:
        """L, the length of the flattened token sequence."""
        return sum(self.scales)

    @property
    def sequence_length(self) -> int:
        """n_ctx + L: what the attention (and the KV cache) spans."""
        return self.context_tokens + self.num_tokens

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, **fields: Any) -> "ARConfig":
        """A config whose scales, codebook size and latent width are the tokenizer's (a SAT or its quantizer)."""
        fit = tokenizer_fit(tokenizer)
        clash = sorted(name for name in fields if name in fit and fields[name] != fit[name])
        if clash:
            raise ConfigError(f"ARConfig.for_tokenizer: {', '.join(clash)} given differently from the tokenizer's")
        return cls(**(fields | fit))


def tokenizer_fit(tokenizer: Any) -> dict[str, Any]:
    """The AR config fields a tokenizer (SAT or quantizer) dictates, for configs written as dicts."""
    return {"scales": list(tokenizer.scales), "codebook_size": int(tokenizer.codebook_size),
            "latent_dim": int(tokenizer.latent_dim)}


def fit_problems(cfg: ARConfig, tokenizer: Any) -> list[str]:
    """Every field the AR config shares with a tokenizer (SAT or quantizer) that differs, in words."""
    problems = []
    for name in FIT_FIELDS:
        have = getattr(tokenizer, name, None)
        if have is None:
            continue
        have, want = (list(have), list(cfg.scales)) if name == "scales" else (int(have), getattr(cfg, name))
        if have != want:
            problems.append(f"tokenizer {name} {have} != AR model {name} {want}")
    return problems


def check_quantizer(cfg: ARConfig, quantizer: Quantizer, where: str = "quantizer") -> None:
    """Refuse a tokenizer whose schedule, codebook size or latent width differs from the model's."""
    problems = fit_problems(cfg, quantizer)
    if problems:
        raise ConfigError(f"{where}: {'; '.join(problems)}; the tokenizer and the AR checkpoint were trained for "
                          "different settings")
