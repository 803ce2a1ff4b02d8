"""Audio longer than one window: generate window after window, each continuing the last one's latent.

A window is what the AR model makes in one pass (T latent frames, K scales). A model with
context tokens (`model.context_tokens > 0`) sees T frames of latent f_hat before its first scale,
so window w + 1 continues what came before it; the first window sees the null context. The
windows' codes are joined in the tokenizer's long-codes layout, per scale (B, W * n_k) window after
window, and the tokenizer decodes them once over the joined latent (no chunk seams).

With an overlap of o frames (`tokenizer.layout.WindowLayout`) window w + 1 starts o frames before
window w ends and the decoder crossfades the two there. Its context is then the joined latent of
the T frames just before its start (window w's frames up to the overlap, and before them the
earlier windows, crossfades included), the frames a model trained on consecutive windows expects
right before the window it makes; without an overlap that is exactly window w's latent.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..tokenizer.layout import WindowLayout
from .config import Quantizer

DEFAULT_OVERLAP_SHARE = 1 / 6    # of a window: 12 of 75 frames, a 160 ms crossfade at 75 frames/s

WindowStep = Callable[[Tensor, "Tensor | None"], list[Tensor]]   # (cond, context latent) -> K maps (B, n_k)


def default_overlap(frames: int) -> int:
    """The overlap window-by-window generation uses unless told: a sixth of a window (floor). On the demo's
    model 4 / 7 / 10 / 12 / 18 of 75 frames gave join ratios 1.26 / 1.15 / 1.04 / 1.02 / 1.05 (at the
    crossfades' centres 1.61 / 1.35 / 1.16 / 1.10 / 1.08); 12 stays under 1.2 on both with a margin, for
    12 windows per 10 s (14 and more take 13)."""
    return int(frames * DEFAULT_OVERLAP_SHARE)


def window_latent(quantizer: Quantizer, codes: Sequence[Tensor]) -> Tensor:
    """One window's K code maps -> its accumulated latent f_hat (B, C, T), what the next window continues."""
    return quantizer.f_hat_from_codes(list(codes)).float()


def context_before(layout: WindowLayout, latents: Sequence[Tensor], window: int) -> Tensor:
    """The T frames of joined latent right before `window` starts, from the windows before it (B, C, T).

    Frames before the first window's start (an overlap makes window 1 start before frame T) repeat
    the first frame, so the context keeps its trained length."""
    T, start = layout.frames, layout.start(window)
    joined = layout.join(torch.stack(list(latents[:window]), 1).flatten(0, 1), latents[0].shape[0])
    span = joined[..., max(0, start - T): start]          # final: the last window's fade-out starts later
    return F.pad(span, (T - span.shape[-1], 0), mode="replicate") if span.shape[-1] < T else span


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
                     step: WindowStep | None = None, independent: bool = False, overlap: int = 0,
                     **sampling) -> list[Tensor]:
    """`windows` windows for each condition, joined -> K LongTensors (B, windows * n_k).

    step(cond, context) makes one window (default `model.generate(quantizer, cond, context=context,
    **sampling)`; pass a `FastGenerator` to compile it). `independent` makes every window alone, as a
    chunked baseline to measure the joins against; more than one window otherwise needs a model with
    context tokens. `overlap`: latent frames neighbouring windows share (decode with the same).
    """
    check_windows(model, windows, independent)
    layout = WindowLayout(quantizer.scales[-1], overlap)
    has_context = getattr(model, "context", None) is not None and not independent
    step = step or (lambda c, ctx: model.generate(quantizer, c, context=ctx, **sampling))
    out: list[list[Tensor]] = []
    latents: list[Tensor] = []
    for w in range(windows):
        codes = step(cond, context_before(layout, latents, w) if has_context and w else None)
        out.append(list(codes))
        if has_context and w < windows - 1:
            latents.append(window_latent(quantizer, codes))
    return join_windows(out)
