"""Token sampling: temperature, top-k, then top-p, then Gumbel-max — all on device, no host sync.

Top-k runs first with `torch.topk`, so the vocabulary is never fully sorted when k is set;
top-p then works on the k survivors (renormalised), as VAR and the published AAR do.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError


def _gumbel(shape: torch.Size, like: Tensor, generator: torch.Generator | None) -> Tensor:
    u = torch.rand(shape, device=like.device, dtype=torch.float32, generator=generator)
    return -torch.log(-torch.log(u.clamp_(min=1e-20, max=1.0 - 1e-7)))


def top_p_mask(sorted_logits: Tensor, top_p: float) -> Tensor:
    """For logits sorted in descending order: True where a token falls outside the nucleus.

    The nucleus is the smallest prefix whose probability mass is >= top_p (never empty).
    """
    probs = sorted_logits.float().softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs
    return mass_before >= top_p


def sample_logits(logits: Tensor, top_k: int = 0, top_p: float = 0.0, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> Tensor:
    """Sample one token per row of `logits` (..., V) -> LongTensor (...).

    top_k <= 0 or >= V disables top-k; top_p outside (0, 1) disables top-p; temperature 0
    means greedy (argmax). A `generator` makes the draw reproducible.
    """
    V = logits.shape[-1]
    if temperature < 0:
        raise ConfigError(f"sampling: temperature must be >= 0, got {temperature}")
    if top_k < 0:
        raise ConfigError(f"sampling: top_k must be >= 0, got {top_k}")
    if temperature == 0 or top_k == 1:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    use_k = 0 < top_k < V
    use_p = 0.0 < top_p < 1.0
    if use_k:
        values, index = logits.topk(top_k, dim=-1)          # sorted, descending
    elif use_p:
        values, index = logits.sort(dim=-1, descending=True)
    else:
        return (logits + _gumbel(logits.shape, logits, generator)).argmax(dim=-1)
    if use_p:
        values = values.masked_fill(top_p_mask(values, top_p), float("-inf"))
    choice = (values + _gumbel(values.shape, values, generator)).argmax(dim=-1, keepdim=True)
    return index.gather(-1, choice).squeeze(-1)
