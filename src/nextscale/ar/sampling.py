"""Token sampling: temperature, top-k, then top-p, then one inverse-CDF draw — all on device, no host sync.

The sampler needs the k largest *values* of each row, never their indices: it walks the cumulative
probabilities of those values (top-k survivors, then the top-p nucleus, renormalised, as VAR and the
published AAR do) to the value a uniform draw lands on, then takes the token that holds that value
(the n-th of several equal logits for the n-th of their ranks, so ties keep their own shares).
Values only is what makes it cheap on a CPU: numpy's vectorised sort orders 455 rows of 1024 logits
in ~3 ms on one thread where `torch.topk` (values and indices) takes ~8 ms, and a tiny AAR spends
about a quarter of a generation in its sampler. `largest_values` is an operator of its own in a
compiled graph (`nextscale::largest_values`), so compiled generation calls numpy without a graph
break. Without top-k and top-p nothing is sorted.

The only random draw is one uniform per row (`uniform_noise`; `noise_width` gives the shape in
advance). A caller may draw it itself and pass it as `noise`: that is how the compiled generation
stays one graph (dynamo cannot trace a draw from a `torch.Generator`), with the same numbers, hence
the same tokens.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError


def largest_values(x: Tensor, k: int) -> Tensor:
    """The k largest values of each row of `x` (..., V) in descending order, (..., k); values only.

    Eager calls run the implementation directly (a dispatcher round trip costs a few microseconds more);
    a compiled graph calls the op."""
    return torch.ops.nextscale.largest_values(x, k) if torch.compiler.is_compiling() else _largest_values(x, k)


# When numpy's full sort beats `topk` on a CPU (one thread, top 200 of 1024: 16 rows 98 vs 63 us, 24 rows 143 vs
# 196, 32 rows 193 vs 435; `topk` slows sharply from ~20 rows on). Rows of 4096 are level or faster through `topk`.
SORT_ROWS = 20
SORT_MAX_VOCAB = 2048


def _largest_values(x: Tensor, k: int) -> Tensor:
    rows = x.numel() // max(x.shape[-1], 1)
    if (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and rows >= SORT_ROWS
            and x.shape[-1] <= SORT_MAX_VOCAB):
        ascending = np.sort(x.detach().contiguous().numpy(), axis=-1)
        return torch.from_numpy(ascending[..., :-k - 1:-1].copy())
    return x.topk(k, dim=-1).values


# Registered through the plain operator library rather than `torch.library.custom_op`: inference only, so no
# autograd or aliasing checks, and a call from a compiled graph costs ~2 us more than a direct one where the
# custom-op wrapper cost 20-140 us (16 calls in a tiny AAR's 19 ms generation).
_LIBRARY = torch.library.Library("nextscale", "DEF")
_LIBRARY.define("largest_values(Tensor x, int k) -> Tensor")
_LIBRARY.impl("largest_values", _largest_values, "CompositeExplicitAutograd")


@torch.library.register_fake("nextscale::largest_values")
def _largest_values_shape(x: Tensor, k: int) -> Tensor:
    return x.new_empty((*x.shape[:-1], k))


def uniform_noise(shape: tuple[int, ...] | torch.Size, device: torch.device,
                  generator: torch.Generator | None) -> Tensor:
    """The sampler's one draw: float32 uniforms of `shape` (rows of `noise_width` columns)."""
    return torch.rand(shape, device=device, dtype=torch.float32, generator=generator)


def noise_width(vocab: int, top_k: int = 0, top_p: float = 0.0, temperature: float = 1.0) -> int:
    """Columns of uniform noise `sample_logits` uses per row: 1 when it samples, 0 when greedy."""
    return 0 if temperature == 0 or top_k == 1 else 1


def nucleus_size(probs: Tensor, cdf: Tensor, top_p: float) -> Tensor:
    """For probabilities sorted in descending order (..., k) and their cumulative sums: how many ranks the
    nucleus holds, (..., 1). The nucleus is the smallest prefix whose probability mass is >= top_p (never empty)."""
    p = torch.full((*probs.shape[:-1], 1), top_p, dtype=probs.dtype, device=probs.device)
    return torch.searchsorted(cdf - probs, p).clamp(min=1)         # ranks whose mass before them is < top_p


def sample_logits(logits: Tensor, top_k: int = 0, top_p: float = 0.0, temperature: float = 1.0,
                  generator: torch.Generator | None = None, noise: Tensor | None = None) -> Tensor:
    """Sample one token per row of `logits` (..., V) -> LongTensor (...).

    top_k <= 0 or >= V disables top-k; top_p outside (0, 1) disables top-p; temperature 0
    means greedy (argmax). A `generator` makes the draw reproducible; `noise` (..., 1) of uniforms
    in [0, 1) replaces the draw (then `generator` is not used).
    """
    V = logits.shape[-1]
    if temperature < 0:
        raise ConfigError(f"sampling: temperature must be >= 0, got {temperature}")
    if top_k < 0:
        raise ConfigError(f"sampling: top_k must be >= 0, got {top_k}")
    if temperature == 0 or top_k == 1:
        return logits.argmax(dim=-1)
    logits = logits.float() if temperature == 1 else logits.float() / temperature
    shape = (*logits.shape[:-1], noise_width(V, top_k, top_p, temperature))
    if noise is None:
        noise = uniform_noise(shape, logits.device, generator)
    elif tuple(noise.shape) != shape:
        raise ConfigError(f"sampling: noise must have shape {shape}, got {tuple(noise.shape)}")
    if not (0 < top_k < V or 0.0 < top_p < 1.0):              # plain sampling: no order needed
        cdf = logits.softmax(dim=-1).cumsum(dim=-1)
        return _first_above(cdf, noise * cdf[..., -1:]).squeeze(-1)
    values = largest_values(logits, top_k if 0 < top_k < V else V)        # (..., k), descending
    probs = values.softmax(dim=-1)
    cdf = probs.cumsum(dim=-1)
    # the nucleus is a prefix: its mass is the cdf at its last rank
    mass = cdf.gather(-1, nucleus_size(probs, cdf, top_p) - 1) if 0.0 < top_p < 1.0 else cdf[..., -1:]
    rank = _first_above(cdf, noise * mass)                                # the draw lands inside the nucleus
    value = values.gather(-1, rank)
    # The token holding that value; among equal logits (frequent in bf16) the n-th copy in rank order is
    # the n-th in token order, so each keeps its own probability.
    copies_before = rank - _first_above(-values, -value, strictly=False)
    return _first_above((logits == value).cumsum(dim=-1), copies_before).squeeze(-1)


def _first_above(ascending: Tensor, bound: Tensor, strictly: bool = True) -> Tensor:
    """Per row, the first index whose entry is > `bound` (>= with strictly=False), at most the last one;
    `ascending` (..., n) is sorted along its last dim, `bound` (..., 1)."""
    index = torch.searchsorted(ascending, bound.to(ascending.dtype), right=strictly)
    return index.clamp(max=ascending.shape[-1] - 1)
