"""NextTokenAR: the next-token baseline on the same backbone as AAR (the paper's speed comparison).

Identical blocks, width, conditioning, attention kernels, static KV cache and sampling; only
the mask (causal) and the input (embedding of the previous token) differ. Token orders:
"scale" — SAT codes flattened scale by scale (455 steps for 1 s); "rvq" — single-scale RVQ
codes (T x levels) flattened time-major (750 steps for 75 x 10).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from ..checkpoint import Pretrained
from ..errors import ConfigError
from .config import ARConfig, Quantizer, check_quantizer
from .next_scale import ARLoss, check_codes, loss_weights, token_loss
from .sampling import sample_logits
from .transformer import ARBackbone, GenerationState, context_mask, guidance_weight, init_weights


@dataclass
class TokenGenerationState(GenerationState):
    out: Tensor = None    # (B, L) sampled ids, written in place


class NextTokenAR(Pretrained, ARBackbone):
    kind = "next_token"
    config_class = ARConfig

    def __init__(self, config: ARConfig):
        if config.kind != "next_token":
            raise ConfigError(f"model.kind: NextTokenAR needs kind 'next_token', got {config.kind!r}")
        super().__init__(config)
        cfg = config
        K, L, W, V = len(cfg.scales), cfg.num_tokens, cfg.width, cfg.codebook_size
        self.token_embed = nn.Embedding(K * V, W)   # one table per level: id + level * V
        self.pos_start = nn.Parameter(torch.zeros(1, 1, W))
        self.pos_embed = nn.Parameter(torch.zeros(1, L, W))
        self.level_embed = nn.Embedding(K, W)
        levels = torch.cat([torch.full((n,), k) for k, n in enumerate(cfg.scales)])
        if cfg.order == "rvq":   # time-major: t0l0, t0l1, ..., t1l0, ...
            levels = torch.arange(K).repeat(cfg.scales[0])
        self.register_buffer("levels", levels, persistent=False)
        weights = loss_weights(levels, K, cfg.loss_weighting, cfg.scale_loss_shares)
        self.register_buffer("loss_weights", weights, persistent=False)
        self.register_buffer("attn_mask", context_mask(torch.ones(L, L, dtype=torch.bool).tril(), cfg.context_tokens),
                             persistent=False)
        init_weights(self, self.blocks, self.head, W)

    # ---- token order -----------------------------------------------------------------------
    def flatten(self, codes: Sequence[Tensor]) -> Tensor:
        """List of K (B, n_k) code maps -> (B, L) in this model's order."""
        if self.config.order == "rvq":
            return torch.stack(list(codes), dim=2).flatten(1)
        return torch.cat(list(codes), dim=1)

    def unflatten(self, flat: Tensor) -> list[Tensor]:
        cfg = self.config
        if cfg.order == "rvq":
            return list(flat.view(flat.shape[0], cfg.scales[0], len(cfg.scales)).unbind(2))
        return list(flat.split(cfg.scales, dim=1))

    def level_pos(self) -> Tensor:
        return self.level_embed(self.levels)[None] + self.pos_embed

    # ---- teacher forcing -------------------------------------------------------------------
    def forward(self, cond: Tensor, tokens: Tensor, context: Tensor | None = None,
                context_present: Tensor | None = None) -> Tensor:
        """cond (B,) ids, (B, cond_dim) or None; tokens (B, L) flattened codes -> logits (B, L, V).

        Position i sees the context tokens (a context model's sliding context: the previous window), the
        start token and tokens < i, and predicts token i.
        """
        cfg = self.config
        if tokens.dim() != 2 or tokens.shape[1] != cfg.num_tokens:
            raise ConfigError(f"tokens: expected (B, {cfg.num_tokens}) flattened codes, got {tuple(tokens.shape)}")
        c = self.cond_embed(cond, tokens.shape[0])
        if c.shape[0] != tokens.shape[0]:
            raise ConfigError(f"condition batch {c.shape[0]} != tokens batch {tokens.shape[0]}")
        prev = self.token_embed(tokens[:, :-1] + self.levels[:-1] * cfg.codebook_size)
        x = torch.cat(((c[:, None] + self.pos_start), prev), dim=1)
        return self.run(self.with_context(x + self.level_pos(), context, context_present), c, self.sequence_mask())

    def loss(self, cond: Tensor, codes: Sequence[Tensor], quantizer: Quantizer | None = None,
             context: Tensor | None = None, context_present: Tensor | None = None) -> ARLoss:
        """Cross-entropy over all L tokens with per-level loss and accuracy."""
        return self.batch_loss(cond, *self.prepare_batch(cond, codes, quantizer), context, context_present)

    def prepare_batch(self, cond: Tensor, codes: Sequence[Tensor],
                      quantizer: Quantizer | None = None) -> tuple[Tensor, Tensor]:
        """Checks that read values on the host, and the flattened tokens, which are both the inputs and the
        target: the part of a training step that stays eager. Returns (tokens (B, L), tokens (B, L))."""
        if quantizer is not None:
            check_quantizer(self.config, quantizer)
        check_codes(codes, self.config.scales, self.config.codebook_size)
        self.cond_embed.check(cond)
        target = self.flatten(codes)
        return target, target

    def batch_loss(self, cond: Tensor, inputs: Tensor, target: Tensor, context: Tensor | None = None,
                   context_present: Tensor | None = None) -> ARLoss:
        """Forward and loss of a prepared batch: no host reads, so torch.compile captures it as one graph."""
        return token_loss(self(cond, inputs, context, context_present), target, self.levels, len(self.config.scales),
                          self.loss_weights)

    # ---- generation ------------------------------------------------------------------------
    def setup(self, quantizer: Quantizer | None, cond: Tensor, guided: bool, static: bool = False,
              context: Tensor | None = None, growing: bool = False) -> TokenGenerationState:
        """Condition -> AdaLN parameters, caches (holding the context tokens), output buffer; `static`:
        whole-cache steps, which read positions not yet written, so they keep preallocated caches."""
        cfg = self.config
        if quantizer is not None:
            check_quantizer(cfg, quantizer)
        c, fields = self.generation_setup(cond, guided, context, growing and not static)
        tokens = c[:, None] + self.pos_start + fields["level_pos"][:, :1]
        out = torch.zeros(fields["batch"], cfg.num_tokens, dtype=torch.long, device=c.device)
        return TokenGenerationState(tokens=tokens, out=out, static=static, **fields)

    def generation_plan(self, cfg: float) -> list[tuple[int, float]]:
        """One step per token; the CFG weight ramps over the scale (level) each token belongs to."""
        levels, K = self.levels.tolist(), len(self.config.scales)
        return [(i, guidance_weight(cfg, level, K)) for i, level in enumerate(levels)]

    def step_length(self, i: int) -> int:
        return 1

    def step(self, state: TokenGenerationState, quantizer: Quantizer | None, i: int, t: float, top_k: int,
             top_p: float, temperature: float, generator: torch.Generator | None,
             noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Token i: one position through the blocks, guided logits, sample, build input i+1.

        A static state attends over the whole cache with a causal row mask, so every step has the
        same shapes (what a CUDA graph needs); otherwise it attends to the filled prefix only.
        """
        L, static, off = self.config.num_tokens, state.static, state.offset
        mask = self.attn_mask[off + i:off + i + 1] if static else None
        guidance = (state.batch, t) if state.guided else None
        logits = self.run_cached(state.tokens, state.mods, state.head_mod, state.caches, off + i,
                                 off + L if static else off + i + 1, mask, guidance)
        idx = sample_logits(logits, top_k, top_p, temperature, generator, noise)   # (B, 1)
        state.out[:, i:i + 1] = idx
        if i + 1 < L:
            nxt = self.token_embed(idx + self.levels[i] * self.config.codebook_size)
            nxt = nxt + state.level_pos[:, i + 1:i + 2]
            state.tokens = torch.cat((nxt, nxt)) if state.guided else nxt
        return idx, logits

    def codes(self, state: TokenGenerationState, outputs: list[Tensor]) -> list[Tensor]:
        return self.unflatten(state.out)

    def gather_logits(self, logits: list[Tensor]) -> Tensor:
        """(B, L, V), in this model's token order."""
        return torch.cat(logits, dim=1)
