"""Attention kernels of full-sequence passes (training, teacher forcing): SDPA or FlexAttention.

Both AR models attend under a structured mask: block-causal over scales (AAR) or causal (next-token),
with any context tokens visible to all. SDPA takes it as a dense boolean (L, L) mask, which on a GPU
rules out its flash kernel; FlexAttention takes it as a block mask, skips the blocks with nothing
visible and compiles to one fused kernel. In this torch FlexAttention has no backward pass on CPU,
so training there falls back to SDPA (`flex_problem` says why). Cached generation steps always use
SDPA: their masks are a row or none.
"""
from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

KERNELS = ("sdpa", "flex")


def flex_problem(device: torch.device, backward: bool = True) -> str | None:
    """Why FlexAttention cannot run (with `backward`: train) on `device`, or None when it can.

    A tiny call answers it, so the answer follows the installed torch rather than a version table.
    """
    try:
        from torch.nn.attention.flex_attention import flex_attention
    except ImportError:
        return f"torch {torch.__version__} has no torch.nn.attention.flex_attention"
    q = torch.zeros(1, 1, 16, 16, device=device, requires_grad=backward)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # "called without torch.compile": expected for a probe
            out = flex_attention(q, q, q)
            if backward:
                out.sum().backward()
    except (NotImplementedError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"FlexAttention cannot {'train' if backward else 'run'} on {device.type} here ({first})"
    return None


def is_block_mask(mask: Any) -> bool:
    return type(mask).__name__ == "BlockMask"


def block_mask(mask: Tensor) -> Any:
    """The FlexAttention block mask of a boolean (L, L) mask (True = attend), on the mask's device."""
    from torch.nn.attention.flex_attention import create_block_mask

    L, S = mask.shape

    def visible(b: Tensor, h: Tensor, q: Tensor, kv: Tensor) -> Tensor:
        return mask[q, kv]

    return create_block_mask(visible, None, None, L, S, device=mask.device)


@lru_cache(maxsize=1)
def _compiled_flex() -> Any:
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | Any | None, scale: float | None) -> Tensor:
    """Attention of (B, H, L, D) q, k, v under a boolean mask or None (SDPA) or a block mask (FlexAttention).

    FlexAttention runs compiled on a GPU (eager it materialises the scores) and as it is inside a compiled
    region or on CPU, where only forward checks use it. Autocast does not cover it, so it gets the inputs
    autocast would give SDPA (cosine attention's normalised q and k come out of autocast in float32).
    """
    if not is_block_mask(mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    from torch.nn.attention.flex_attention import flex_attention

    if torch.is_autocast_enabled(q.device.type):
        dtype = torch.get_autocast_dtype(q.device.type)
        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)

    fused = q.device.type != "cpu" and not torch.compiler.is_compiling()
    return (_compiled_flex() if fused else flex_attention)(q, k, v, block_mask=mask, scale=scale)
