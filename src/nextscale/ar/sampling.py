"""Token sampling: temperature, top-k, then top-p, then Gumbel-max — all on device, no host sync.

Top-k runs first with `torch.topk`, so the vocabulary is never fully sorted when k is set;
top-p then works on the k survivors (renormalised), as VAR and the published AAR do.

The only random draw is one uniform tensor per call (`uniform_noise`), whose shape `noise_width`
gives in advance. A caller may draw it itself and pass it as `noise`: that is how the compiled
generation step stays one graph (dynamo cannot trace a draw from a `torch.Generator`, and a draw
inside the step splits it into five graphs), with the same numbers, hence the same tokens.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError


def uniform_noise(shape: tuple[int, ...] | torch.Size, device: torch.device,
                  generator: torch.Generator | None) -> Tensor:
    """The sampler's one draw: float32 uniforms of `shape` (rows of `noise_width` columns)."""
    return torch.rand(shape, device=device, dtype=torch.float32, generator=generator)


def noise_width(vocab: int, top_k: int = 0, top_p: float = 0.0, temperature: float = 1.0) -> int:
    """Columns of uniform noise `sample_logits` uses per row: k with top-k, V otherwise, 0 when greedy."""
    if temperature == 0 or top_k == 1:
        return 0
    return top_k if 0 < top_k < vocab else vocab


def _gumbel(u: Tensor) -> Tensor:
    return -torch.log(-torch.log(u.clamp(min=1e-20, max=1.0 - 1e-7)))


def top_p_mask(sorted_logits: Tensor, top_p: float) -> Tensor:
    """For logits sorted in descending order: True where a token falls outside the nucleus.

    The nucleus is the smallest prefix whose probability mass is >= top_p (never empty).
    """
    probs = sorted_logits.float().softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs
    return mass_before >= top_p


def sample_logits(logits: Tensor, top_k: int = 0, top_p: float = 0.0, temperature: float = 1.0,
                  generator: torch.Generator | None = None, noise: Tensor | None = None) -> Tensor:
    """Sample one token per row of `logits` (..., V) -> LongTensor (...).

    top_k <= 0 or >= V disables top-k; top_p outside (0, 1) disables top-p; temperature 0
    means greedy (argmax). A `generator` makes the draw reproducible; `noise` (..., noise_width)
    replaces the draw (then `generator` is not used).
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
    shape = (*logits.shape[:-1], noise_width(V, top_k, top_p, temperature))
    if noise is None:
        noise = uniform_noise(shape, logits.device, generator)
    elif tuple(noise.shape) != shape:
        raise ConfigError(f"sampling: noise must have shape {shape}, got {tuple(noise.shape)}")
    if use_k:
        values, index = logits.topk(top_k, dim=-1)          # sorted, descending
    elif use_p:
        values, index = logits.sort(dim=-1, descending=True)
    else:
        return (logits + _gumbel(noise)).argmax(dim=-1)
    if use_p:
        values = values.masked_fill(top_p_mask(values, top_p), float("-inf"))
    choice = (values + _gumbel(noise)).argmax(dim=-1, keepdim=True)
    return index.gather(-1, choice).squeeze(-1)
