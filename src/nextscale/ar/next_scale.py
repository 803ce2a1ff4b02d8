"""AAR: the next-scale prediction transformer (VAR-style) over SAT's multi-scale token maps.

Scale k's n_k tokens are predicted at once from every coarser scale. Generation runs only
the new scale through the blocks, writing keys/values into a preallocated cache, so one
second of audio takes K (=16) steps instead of hundreds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import Pretrained
from ..errors import ConfigError
from .config import ARConfig, Quantizer, check_quantizer
from .sampling import sample_logits
from .transformer import ARBackbone, GenerationState, context_mask, guidance_weight, init_weights


class ARLoss(NamedTuple):
    loss: Tensor          # mean cross-entropy over all tokens
    scale_loss: Tensor    # (K,) mean cross-entropy per scale (detached)
    scale_acc: Tensor     # (K,) top-1 accuracy per scale


def per_segment_mean(values: Tensor, segment_of: Tensor, segments: int) -> Tensor:
    """Mean of (B, L) values over each segment id in `segment_of` (L,) -> (segments,).

    Counts by index_add rather than bincount, whose output length depends on the data (a graph break
    in a compiled training step).
    """
    sums = torch.zeros(segments, device=values.device, dtype=torch.float32)
    sums.index_add_(0, segment_of, values.float().sum(0))
    counts = torch.zeros_like(sums).index_add_(0, segment_of, torch.ones_like(segment_of, dtype=torch.float32))
    return sums / (counts.clamp(min=1) * values.shape[0])


def check_codes(codes: Sequence[Tensor], lengths: Sequence[int], vocab: int) -> None:
    """Codes must be K LongTensors (B, n_k) with ids in [0, V)."""
    if len(codes) != len(lengths):
        raise ConfigError(f"codes: expected {len(lengths)} scales, got {len(codes)}")
    for k, (c, n) in enumerate(zip(codes, lengths)):
        if c.dim() != 2 or c.shape[1] != n or c.shape[0] != codes[0].shape[0]:
            raise ConfigError(f"codes[{k}]: expected shape (B, {n}), got {tuple(c.shape)}")
    flat = torch.cat([c.reshape(-1) for c in codes])
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= vocab):
        raise ConfigError(f"codes: token ids must be in [0, {vocab})")


@dataclass
class ScaleGenerationState(GenerationState):
    f_hat: Tensor = None  # (B, C, T) accumulated quantized latent


def token_loss(logits: Tensor, target: Tensor, levels: Tensor, num_levels: int, weights: Tensor | None = None) -> ARLoss:
    """Cross-entropy (the mean over tokens, or over `weights` (L,) summing to 1) plus per-level loss and accuracy
    (levels (L,) gives each position's scale)."""
    ce = F.cross_entropy(logits.float().transpose(1, 2), target, reduction="none")
    with torch.no_grad():
        scale_loss = per_segment_mean(ce.detach(), levels, num_levels)
        scale_acc = per_segment_mean((logits.argmax(-1) == target).float(), levels, num_levels)
    loss = ce.mean() if weights is None else (ce * weights).sum(-1).mean()
    return ARLoss(loss, scale_loss, scale_acc)


def loss_weights(levels: Tensor, num_levels: int, weighting: str, shares: Sequence[float] = ()) -> Tensor | None:
    """Per-token loss weights for `model.loss_weighting`: None for "token" (the plain mean); for "scale", scale k
    carries share_k / sum(shares) of the loss (equal shares, 1/K, when none are given) spread over its n_k tokens."""
    if weighting == "token":
        return None
    counts = torch.bincount(levels, minlength=num_levels).float()
    share = torch.tensor(list(shares), dtype=torch.float32) if len(shares) else torch.ones(num_levels)
    return (share / share.sum())[levels] / counts[levels]


class AAR(Pretrained, ARBackbone):
    kind = "aar"
    config_class = ARConfig

    def __init__(self, config: ARConfig):
        if config.kind != "aar":
            raise ConfigError(f"model.kind: AAR needs kind 'aar', got {config.kind!r}")
        super().__init__(config)
        cfg = config
        K, L, W = len(cfg.scales), cfg.num_tokens, cfg.width
        self.bounds = [(sum(cfg.scales[:k]), sum(cfg.scales[:k + 1])) for k in range(K)]
        self.word_embed = nn.Linear(cfg.latent_dim, W)
        self.pos_start = nn.Parameter(torch.zeros(1, cfg.scales[0], W))
        self.pos_embed = nn.Parameter(torch.zeros(1, L, W))
        self.level_embed = nn.Embedding(K, W)
        levels = torch.cat([torch.full((n,), k) for k, n in enumerate(cfg.scales)])
        self.register_buffer("levels", levels, persistent=False)
        self.register_buffer("attn_mask", context_mask(levels[:, None] >= levels[None, :], cfg.context_tokens),
                             persistent=False)
        weights = loss_weights(levels, K, cfg.loss_weighting, cfg.scale_loss_shares)
        self.register_buffer("loss_weights", weights, persistent=False)
        init_weights(self, self.blocks, self.head, W)

    # ---- teacher forcing -------------------------------------------------------------------
    def level_pos(self) -> Tensor:
        return self.level_embed(self.levels)[None] + self.pos_embed

    def forward(self, cond: Tensor, inputs: Tensor, context: Tensor | None = None,
                context_present: Tensor | None = None) -> Tensor:
        """cond (B,) ids, (B, cond_dim) or None (unconditional); inputs (B, L - n_0, C) -> logits (B, L, V).

        context: the previous window's latent (B, C, T) (None: the null context); context_present (B,)
        bool says which rows have one. Only a model with model.context_tokens > 0 takes a context.
        """
        cfg = self.config
        want = (cfg.num_tokens - cfg.scales[0], cfg.latent_dim)
        if inputs.dim() != 3 or tuple(inputs.shape[1:]) != want:
            raise ConfigError(f"inputs: expected (B, {want[0]}, {want[1]}) teacher-forcing inputs, got {tuple(inputs.shape)}")
        c = self.cond_embed(cond, inputs.shape[0])
        if c.shape[0] != inputs.shape[0]:
            raise ConfigError(f"condition batch {c.shape[0]} != inputs batch {inputs.shape[0]}")
        start = c[:, None] + self.pos_start
        x = torch.cat((start.expand(inputs.shape[0], -1, -1), self.word_embed(inputs.to(self.word_embed.weight.dtype))), dim=1)
        return self.run(self.with_context(x + self.level_pos(), context, context_present), c, self.sequence_mask())

    def loss(self, cond: Tensor, codes: Sequence[Tensor], quantizer: Quantizer, context: Tensor | None = None,
             context_present: Tensor | None = None) -> ARLoss:
        """Cross-entropy over all L tokens with per-scale loss and accuracy (for logging)."""
        return self.batch_loss(cond, *self.prepare_batch(cond, codes, quantizer), context, context_present)

    def prepare_batch(self, cond: Tensor, codes: Sequence[Tensor], quantizer: Quantizer) -> tuple[Tensor, Tensor]:
        """Checks that read values on the host, and the teacher-forcing inputs (no gradient flows through them):
        the part of a training step that stays eager. Returns (inputs (B, L - n_0, C), target (B, L))."""
        check_quantizer(self.config, quantizer)
        check_codes(codes, self.config.scales, self.config.codebook_size)
        self.cond_embed.check(cond)
        with torch.no_grad():
            inputs = quantizer.teacher_forcing_inputs(list(codes))
        return inputs, torch.cat(list(codes), dim=1)

    def batch_loss(self, cond: Tensor, inputs: Tensor, target: Tensor, context: Tensor | None = None,
                   context_present: Tensor | None = None) -> ARLoss:
        """Forward and loss of a prepared batch: no host reads, so torch.compile captures it as one graph."""
        logits = self(cond, inputs, context, context_present)
        return token_loss(logits, target, self.levels, len(self.config.scales), self.loss_weights)

    # ---- generation ------------------------------------------------------------------------
    def setup(self, quantizer: Quantizer, cond: Tensor, guided: bool, static: bool = False,
              context: Tensor | None = None, growing: bool = False) -> ScaleGenerationState:
        """Condition -> AdaLN parameters, KV caches (holding the context tokens), first-scale input.

        Each scale's step already has fixed shapes, so `static` changes nothing here; every scale attends
        to all earlier ones in order, so `growing` caches always fit.
        """
        cfg = self.config
        check_quantizer(cfg, quantizer)
        c, fields = self.generation_setup(cond, guided, context, growing)
        tokens = c[:, None] + self.pos_start + fields["level_pos"][:, :cfg.scales[0]]
        # f_hat accumulates in float32 whatever the model's precision: it is what the decoder hears
        f_hat = torch.zeros(fields["batch"], cfg.latent_dim, cfg.scales[-1], device=c.device, dtype=torch.float32)
        return ScaleGenerationState(tokens=tokens, f_hat=f_hat, static=static, **fields)

    def generation_plan(self, cfg: float) -> list[tuple[int, float]]:
        """One step per scale, with the paper's CFG ramp over scales."""
        K = len(self.bounds)
        return [(k, guidance_weight(cfg, k, K)) for k in range(K)]

    def step_length(self, k: int) -> int:
        return self.config.scales[k]

    def step(self, state: ScaleGenerationState, quantizer: Quantizer, k: int, t: float, top_k: int, top_p: float,
             temperature: float, generator: torch.Generator | None, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Scale k: its n_k tokens through the blocks, guided logits, sample, update f_hat and next input.

        Shapes depend only on k, and nothing reads a tensor value on the host.
        """
        start, end = self.bounds[k]
        off = state.offset
        guidance = (state.batch, t) if state.guided else None
        logits = self.run_cached(state.tokens, state.mods, state.head_mod, state.caches, off + start, off + end,
                                 guidance=guidance)
        idx = sample_logits(logits, top_k, top_p, temperature, generator, noise)
        state.f_hat = state.f_hat + quantizer.embed(k, idx).float()
        if k + 1 < len(self.bounds):
            nxt = self.word_embed(quantizer.next_input(state.f_hat, k).to(self.word_embed.weight.dtype))
            nxt = nxt + state.level_pos[:, end:self.bounds[k + 1][1]]
            state.tokens = torch.cat((nxt, nxt)) if state.guided else nxt
        return idx, logits

    def codes(self, state: ScaleGenerationState, outputs: list[Tensor]) -> list[Tensor]:
        return outputs
