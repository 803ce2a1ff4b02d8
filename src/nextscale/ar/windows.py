"""Audio longer than one window: generate window after window, each continuing the last one's latent.

A window is what the AR model makes in one pass (T latent frames, K scales). A model with
context tokens (`model.context_tokens > 0`) sees the previous window's accumulated latent f_hat
before its first scale, so window w + 1 continues window w; the first window sees the null
context. The windows' codes are joined in the tokenizer's long-codes layout, per scale (B, W * n_k)
window after window, and the tokenizer decodes them once over the joined latent (no chunk seams).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError
from .config import Quantizer

WindowStep = Callable[[Tensor, "Tensor | None"], list[Tensor]]   # (cond, context latent) -> K maps (B, n_k)


def window_latent(quantizer: Quantizer, codes: Sequence[Tensor]) -> Tensor:
    """One window's K code maps -> its accumulated latent f_hat (B, C, T), what the next window continues."""
    return quantizer.f_hat_from_codes(list(codes)).float()


def join_windows(windows: Sequence[Sequence[Tensor]]) -> list[Tensor]:
    """W windows of K maps (B, n_k) -> K maps (B, W * n_k), the layout `SAT.decode` reads."""
    return [torch.cat(list(scale), dim=1) for scale in zip(*windows)]


def split_windows(codes: Sequence[Tensor], scales: Sequence[int]) -> list[list[Tensor]]:
    """The inverse of `join_windows`: K maps (B, W * n_k) -> W windows of K maps (B, n_k)."""
    windows = codes[0].shape[1] // scales[0]
    for k, (c, n) in enumerate(zip(codes, scales)):
        if c.dim() != 2 or c.shape[1] != windows * n:
            raise ConfigError(f"codes[{k}]: expected (B, {windows} * {n}) for {windows} windows, got {tuple(c.shape)}")
    return [[c.view(c.shape[0], windows, n)[:, w] for c, n in zip(codes, scales)] for w in range(windows)]


def check_windows(model: torch.nn.Module, windows: int, independent: bool = False, asked: str = "") -> None:
    """The one rule for long generation: more than one window needs a model with context tokens, unless
    every window is made alone. `asked` names what the user asked for in the error (default: the count)."""
    if windows < 1:
        raise ConfigError(f"windows: must be >= 1, got {windows}")
    if windows > 1 and getattr(model, "context", None) is None and not independent:
        raise ConfigError(f"{asked or f'{windows} windows'}: this {getattr(model, 'kind', 'AR')} model makes single "
                          "windows (trained without window context, model.context_tokens 0), so its windows would "
                          "not join; ask for one window, for independent windows, or use a model trained with "
                          "context tokens")


@torch.no_grad()
def generate_windows(model: torch.nn.Module, quantizer: Quantizer, cond: Tensor, windows: int,
                     step: WindowStep | None = None, independent: bool = False, **sampling) -> list[Tensor]:
    """`windows` windows for each condition, joined -> K LongTensors (B, windows * n_k).

    step(cond, context) makes one window (default `model.generate(quantizer, cond, context=context,
    **sampling)`; pass a `FastGenerator` to compile it). `independent` makes every window alone, as a
    chunked baseline to measure the joins against; more than one window otherwise needs a model with
    context tokens.
    """
    check_windows(model, windows, independent)
    has_context = getattr(model, "context", None) is not None
    step = step or (lambda c, ctx: model.generate(quantizer, c, context=ctx, **sampling))
    out, context = [], None
    for _ in range(windows):
        codes = step(cond, None if independent else context)
        out.append(list(codes))
        if has_context and not independent:
            context = window_latent(quantizer, codes)
    return join_windows(out)
