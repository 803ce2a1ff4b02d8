"""Transformer pieces shared by the next-scale and next-token models.

AdaLN blocks (VAR-style), dot-product or cosine attention through SDPA, a static KV cache,
and the condition embedding. The AdaLN modulation depends only on the condition, so it is
computed once per clip (`modulation`) and handed to every call of the block.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, NextscaleError
from . import kernels
from .config import ARConfig, Quantizer

Modulation = tuple[Tensor, ...]


class KVCache:
    """Keys/values of one attention layer: (B, H, L, head_dim) each.

    Preallocated (the default) and written in place: nothing is concatenated, so every step has static
    shapes (eager, a compiled step, CUDA graphs). `growing`: starts empty and each write appends, for a
    whole generation traced as one graph, where inductor turns each in-place write into a copy of the
    whole preallocated cache (tiny AAR, batch 1, 1 CPU thread: 20.3 -> 17.9 ms per clip). Writes then go
    in order, and a step sees exactly what was written.
    """

    def __init__(self, batch: int, heads: int, length: int, head_dim: int, device, dtype, growing: bool = False):
        self.growing = growing
        self.k = torch.zeros(batch, heads, 0 if growing else length, head_dim, device=device, dtype=dtype)
        self.v = torch.zeros_like(self.k)

    def write(self, start: int, k: Tensor, v: Tensor) -> None:
        """Keys/values (B, H, n, head_dim) of positions [start, start + n)."""
        if not self.growing:
            end = start + k.shape[2]
            self.k[:, :, start:end] = k
            self.v[:, :, start:end] = v
            return
        if start != self.k.shape[2]:
            raise NextscaleError(f"growing KV cache: write at {start}, but {self.k.shape[2]} positions are filled")
        self.k = torch.cat((self.k, k), dim=2)
        self.v = torch.cat((self.v, v), dim=2)

    def visible(self, n: int) -> tuple[Tensor, Tensor]:
        """Keys and values of positions [0, n)."""
        if self.growing and n != self.k.shape[2]:
            raise NextscaleError(f"growing KV cache: {n} positions asked for, {self.k.shape[2]} filled")
        return self.k[:, :, :n], self.v[:, :, :n]


class Attention(nn.Module):
    """Multi-head self-attention; `cosine` L2-normalises q and k with a learned per-head log-scale.

    Layout follows the published AAR (one bias-free qkv matrix plus q and v biases, k without
    bias) so its checkpoints load as they are.
    """

    def __init__(self, width: int, heads: int, cosine: bool):
        super().__init__()
        self.heads, self.head_dim, self.cosine = heads, width // heads, cosine
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(width))
        self.v_bias = nn.Parameter(torch.zeros(width))
        self.register_buffer("zero_k_bias", torch.zeros(width), persistent=False)
        self.proj = nn.Linear(width, width)
        if cosine:
            self.log_scale = nn.Parameter(torch.full((1, heads, 1, 1), math.log(4.0)))
        self.max_log_scale = math.log(100.0)

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, L, _ = x.shape
        bias = torch.cat((self.q_bias, self.zero_k_bias, self.v_bias))
        q, k, v = F.linear(x, self.qkv.weight, bias).view(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.cosine:
            q = F.normalize(q, dim=-1) * self.log_scale.clamp(max=self.max_log_scale).exp()
            k = F.normalize(k, dim=-1)
        return q, k, v

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | Any | None) -> Tensor:
        scale = 1.0 if self.cosine else None
        out = kernels.attend(q, k, v, mask, scale)
        B, H, L, D = out.shape
        return self.proj(out.transpose(1, 2).reshape(B, L, H * D))

    def forward(self, x: Tensor, mask: Tensor | Any | None = None) -> Tensor:
        """Full-sequence attention (training / teacher forcing); `mask` is boolean (True = attend) or a
        FlexAttention block mask (`ar.kernels`)."""
        q, k, v = self._qkv(x)
        return self._attend(q, k, v, mask)

    def forward_cached(self, x: Tensor, cache: KVCache, start: int, visible: int, mask: Tensor | None = None) -> Tensor:
        """Write x's keys/values at [start, start+len) and attend to cache positions [0, visible)."""
        q, k, v = self._qkv(x)
        cache.write(start, k, v)
        return self._attend(q, *cache.visible(visible), mask)


class FeedForward(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class AdaLNBlock(nn.Module):
    """x + gamma * f(LN(x) * (1 + scale) + shift) for attention then MLP; modulation from the condition.

    The 6 chunks come in the published order: gamma1, gamma2, scale1, scale2, shift1, shift2.
    """

    def __init__(self, cfg: ARConfig):
        super().__init__()
        w = cfg.width
        self.width = w
        self.norm = nn.LayerNorm(w, eps=cfg.norm_eps, elementwise_affine=False)
        self.attn = Attention(w, cfg.heads, cfg.attention == "cosine")
        self.ffn = FeedForward(w, round(w * cfg.mlp_ratio))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(w, 6 * w))

    def modulation(self, cond: Tensor) -> Modulation:
        """(B, W) condition embedding -> 6 tensors of shape (B, 1, W)."""
        return self.ada(cond).view(-1, 1, 6, self.width).unbind(2)

    def forward(self, x: Tensor, mod: Modulation, mask: Tensor | Any | None = None,
                cache: KVCache | None = None, start: int = 0, visible: int = 0) -> Tensor:
        gamma1, gamma2, scale1, scale2, shift1, shift2 = mod
        h = self.norm(x) * (1 + scale1) + shift1
        h = self.attn(h, mask) if cache is None else self.attn.forward_cached(h, cache, start, visible, mask)
        x = x + h * gamma1
        return x + self.ffn(self.norm(x) * (1 + scale2) + shift2) * gamma2


class AdaLNHead(nn.Module):
    """LayerNorm modulated by the condition (scale, shift), then the vocabulary projection."""

    def __init__(self, cfg: ARConfig):
        super().__init__()
        w = cfg.width
        self.width = w
        self.norm = nn.LayerNorm(w, eps=cfg.norm_eps, elementwise_affine=False)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(w, 2 * w))
        self.out = nn.Linear(w, cfg.codebook_size)

    def modulation(self, cond: Tensor) -> Modulation:
        return self.ada(cond).view(-1, 1, 2, self.width).unbind(2)

    def forward(self, x: Tensor, mod: Modulation, guidance: tuple[int, Any] | None = None) -> Tensor:
        """Logits of (R, n, W) rows; `guidance` (B, t) for rows laid out as [cond; null] returns the B guided
        rows. The projection is affine, so guiding its input equals guiding its logits (up to float rounding)
        at half the projection's cost: the vocabulary projection is ~40 % of a tiny model's FLOPs."""
        scale, shift = mod
        h = self.norm(x) * (1 + scale) + shift
        return self.out(h if guidance is None else guide(h, *guidance))


class ConditionEmbedding(nn.Module):
    """Condition (class ids or vectors) -> (B, width), with dropout to a learned null vector for CFG.

    Class ids go through a learned table of cond_dim vectors, so both kinds share the MLP
    cond_dim -> width -> width (no biases, GELU-tanh) of the published model.
    """

    def __init__(self, cfg: ARConfig):
        super().__init__()
        self.kind, self.cond_dim, self.num_classes = cfg.condition, cfg.cond_dim, cfg.num_classes
        self.dropout = cfg.cond_dropout
        if self.kind == "class":
            self.table = nn.Embedding(cfg.num_classes, cfg.cond_dim)
        self.null = nn.Parameter(torch.randn(1, cfg.cond_dim) / math.sqrt(cfg.cond_dim))
        self.fc1 = nn.Linear(cfg.cond_dim, cfg.width, bias=False)
        self.fc2 = nn.Linear(cfg.width, cfg.width, bias=False)

    def check(self, cond: Tensor | None) -> None:
        """Shape and dtype of `cond`, and class ids in range (one host read per batch)."""
        if cond is None:
            return
        if self.kind == "class":
            if cond.dtype not in (torch.int64, torch.int32) or cond.dim() != 1:
                raise ConfigError(f"condition: expected a LongTensor of class ids with shape (B,), "
                                  f"got {tuple(cond.shape)} {cond.dtype}")
            bad = (cond < 0) | (cond >= self.num_classes)
            if bool(bad.any()):  # one check per batch, outside any generation loop
                raise ConfigError(f"condition: class ids must be in [0, {self.num_classes}), "
                                  f"got {cond[bad][:5].tolist()}")
        elif not cond.is_floating_point() or cond.dim() != 2 or cond.shape[1] != self.cond_dim:
            raise ConfigError(f"condition: expected a float tensor (B, {self.cond_dim}), "
                              f"got {tuple(cond.shape)} {cond.dtype}")

    def vectors(self, cond: Tensor) -> Tensor:
        """Check `cond` and turn it into (B, cond_dim) float vectors.

        Inside a compiled region the check is skipped (its host read would split the graph): the compiled
        training step runs `check` before it (`prepare_batch`).
        """
        if not torch.compiler.is_compiling():
            self.check(cond)
        if self.kind == "class":
            return self.table(cond.long())
        return cond.to(self.fc1.weight.dtype)

    def embed(self, vectors: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(vectors), approximate="tanh"))

    def forward(self, cond: Tensor | None, batch: int = 1) -> Tensor:
        """(B, width) embeddings; cond=None gives `batch` unconditional (null) embeddings."""
        if cond is None:
            return self.embed(self.null.expand(batch, -1))
        vec = self.vectors(cond)
        if self.training and self.dropout > 0:
            drop = torch.rand(vec.shape[0], 1, device=vec.device) < self.dropout
            vec = torch.where(drop, self.null.to(vec.dtype), vec)
        return self.embed(vec)

    def with_null(self, cond: Tensor) -> Tensor:
        """Embeddings of [cond; null] in one batch of 2B, for classifier-free guidance."""
        vec = self.vectors(cond)
        return self.embed(torch.cat((vec, self.null.to(vec.dtype).expand_as(vec))))


def context_frames(latent: Tensor, tokens: int) -> Tensor:
    """(B, C, T) latent of the previous window -> (B, tokens, C): its last tokens // 2 frames as they are and
    the frames before them area-pooled into the rest, so the join is seen in full detail and the rest in summary."""
    tail = tokens // 2
    T = latent.shape[-1]
    parts = [F.adaptive_avg_pool1d(latent[..., :T - tail], tokens - tail)] if tokens > tail else []
    parts.append(latent[..., T - tail:])
    return torch.cat(parts, dim=-1).transpose(1, 2)


class ContextEmbedding(nn.Module):
    """The previous window's accumulated latent f_hat -> n_ctx tokens placed before the first scale.

    They have their own position table (which is also their level embedding), and a learned null
    sequence stands in for a missing context: the first window, and a `context_dropout` share of
    continuation windows in training, so one model makes both.
    """

    def __init__(self, cfg: ARConfig):
        super().__init__()
        self.tokens, self.latent_dim, self.frames = cfg.context_tokens, cfg.latent_dim, cfg.scales[-1]
        self.dropout = cfg.context_dropout
        self.proj = nn.Linear(cfg.latent_dim, cfg.width)
        self.pos = nn.Parameter(torch.zeros(1, cfg.context_tokens, cfg.width))
        self.null = nn.Parameter(torch.zeros(1, cfg.context_tokens, cfg.width))

    def forward(self, latent: Tensor | None, batch: int, present: Tensor | None = None) -> Tensor:
        """(B, n_ctx, W) context tokens; latent None gives the null context. `present` (B,) bool marks the
        rows whose latent is real (the others, e.g. first windows in a training batch, get the null)."""
        if latent is None:
            return (self.null + self.pos).expand(batch, -1, -1)
        want = (batch, self.latent_dim, self.frames)
        if latent.dim() != 3 or tuple(latent.shape) != want:
            raise ConfigError(f"context: expected the previous window's latent with shape {want} "
                              f"(batch, latent_dim, frames), got {tuple(latent.shape)}")
        x = self.proj(context_frames(latent.to(self.proj.weight.dtype), self.tokens))
        keep = present
        if self.training and self.dropout > 0:
            kept = torch.rand(batch, device=x.device) >= self.dropout
            keep = kept if keep is None else keep & kept
        if keep is not None:
            x = torch.where(keep.view(-1, 1, 1), x, self.null.to(x.dtype))
        return x + self.pos


def context_mask(mask: Tensor, n: int) -> Tensor:
    """A token mask (L, L) widened to (n + L, n + L): context tokens see one another, every token sees them all."""
    L = mask.shape[0]
    full = torch.zeros(n + L, n + L, dtype=torch.bool, device=mask.device)
    full[:, :n] = True
    full[n:, n:] = mask
    return full


def init_weights(model: nn.Module, blocks: Sequence[AdaLNBlock], head: AdaLNHead, width: int,
                 adaln: float = 0.5, adaln_gamma: float = 1e-5, head_gain: float = 0.02) -> None:
    """VAR's initialisation: small truncated normals, tiny AdaLN gates and head, depth-scaled outputs.

    The near-zero gates make every block start as (almost) the identity, which keeps deep
    AdaLN stacks stable early in training.
    """
    std = math.sqrt(1 / width / 3)
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(m.weight, std=std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
    for p in model.parameters():
        if p.dim() == 3 and p.shape[0] == 1:   # start / position tables (1, n, W)
            nn.init.trunc_normal_(p, std=std)
    head.out.weight.data.mul_(head_gain)
    head.ada[-1].weight.data.mul_(adaln)
    for blk in blocks:
        blk.attn.proj.weight.data.div_(math.sqrt(2 * len(blocks)))
        blk.ffn.fc2.weight.data.div_(math.sqrt(2 * len(blocks)))
        blk.ada[-1].weight.data[2 * width:].mul_(adaln)
        blk.ada[-1].weight.data[:2 * width].mul_(adaln_gamma)


@dataclass
class GenerationState:
    """What every generation step reads or writes; built once per clip by a model's setup."""

    batch: int                # B; the blocks see 2B rows when guided ([cond; null])
    guided: bool
    mods: list[Modulation]    # per block AdaLN parameters, computed once from the condition
    head_mod: Modulation
    caches: list[KVCache]     # preallocated for all L positions
    level_pos: Tensor         # (1, L, W) level + position embeddings
    tokens: Tensor            # input of the next step (B or 2B, n, W)
    static: bool = False      # every step the same shapes (whole-cache attention with a row mask)
    offset: int = 0           # cache positions taken by the context tokens (n_ctx)


class ARBackbone(nn.Module):
    """Condition embedding + AdaLN blocks + AdaLN head: everything the two AR models share.

    Subclasses add their input embeddings and their mask; keeping the shared part here is
    what makes the next-token baseline a fair comparison.
    """

    def __init__(self, cfg: ARConfig):
        super().__init__()
        self.config = cfg
        self.cond_embed = ConditionEmbedding(cfg)
        self.blocks = nn.ModuleList(AdaLNBlock(cfg) for _ in range(cfg.depth))
        self.head = AdaLNHead(cfg)
        self.context = ContextEmbedding(cfg) if cfg.context_tokens else None
        self.block_mask: Any = None   # FlexAttention's form of attn_mask, once use_attention_kernel("flex") ran

    def use_attention_kernel(self, kernel: str, backward: bool = True) -> str:
        """Attention kernel of full-sequence passes: "sdpa" (boolean mask) or "flex" (FlexAttention block mask).

        Call it after moving the model to its device. Returns the kernel in use: "flex" falls back to "sdpa",
        with a warning naming the reason, where FlexAttention cannot run (`backward`: train) on that device.
        """
        if kernel not in kernels.KERNELS:
            raise ConfigError(f"attention kernel: expected one of {', '.join(kernels.KERNELS)}, got {kernel!r}")
        self.block_mask = None
        if kernel == "sdpa":
            return kernel
        problem = kernels.flex_problem(self.attn_mask.device, backward)
        if problem is not None:
            warnings.warn(f"attention kernel 'flex': {problem}; using 'sdpa' with a boolean mask", stacklevel=2)
            return "sdpa"
        self.block_mask = kernels.block_mask(self.attn_mask)
        return kernel

    def sequence_mask(self) -> Tensor | Any:
        """The mask of a full-sequence pass: the block mask when FlexAttention is in use, else `attn_mask`."""
        return self.attn_mask if self.block_mask is None else self.block_mask

    def check_context(self, context: Tensor | None) -> None:
        if context is not None and self.context is None:
            raise ConfigError("context: this model was trained without window context (model.context_tokens 0), so "
                              "it makes single windows; train one with model.context_tokens > 0 for long audio")

    def with_context(self, x: Tensor, context: Tensor | None, present: Tensor | None = None) -> Tensor:
        """(B, L, W) inputs with the context tokens in front (unchanged for a model without context)."""
        self.check_context(context)
        if self.context is None:
            return x
        return torch.cat((self.context(context, x.shape[0], present).to(x.dtype), x), dim=1)

    def modulations(self, cond_emb: Tensor) -> tuple[list[Modulation], Modulation]:
        """AdaLN parameters of every block and of the head; depend only on the condition."""
        return [blk.modulation(cond_emb) for blk in self.blocks], self.head.modulation(cond_emb)

    def run(self, x: Tensor, cond_emb: Tensor, mask: Tensor) -> Tensor:
        """Teacher-forced pass of (B, n_ctx + L, W) inputs -> (B, L, V) logits (none for the context)."""
        mods, head_mod = self.modulations(cond_emb)
        for blk, mod in zip(self.blocks, mods):
            x = blk(x, mod, mask)
        return self.head(x[:, self.config.context_tokens:], head_mod)

    def run_cached(self, x: Tensor, mods: list[Modulation], head_mod: Modulation, caches: list[KVCache],
                   start: int, visible: int, mask: Tensor | None = None,
                   guidance: tuple[int, Any] | None = None) -> Tensor:
        """Incremental pass of new tokens at [start, start+n) attending to cache [0, visible); with
        `guidance` (B, t) the CFG-guided logits of the B conditioned rows."""
        for blk, mod, cache in zip(self.blocks, mods, caches):
            x = blk(x, mod, mask, cache, start, visible)
        return self.head(x, head_mod, guidance)

    def generation_setup(self, cond: Tensor, guided: bool, context: Tensor | None = None,
                         growing: bool = False) -> tuple[Tensor, dict]:
        """Condition embedding (B or 2B rows) and the GenerationState fields all models share.

        A context model's context tokens (the null context when `context` is None) go through the blocks
        here, once: they fill the first n_ctx cache positions, which every later step attends to. Both
        halves of a guided batch see the same context; guidance acts on the condition only.
        """
        self.check_context(context)
        c = self.cond_embed.with_null(cond) if guided else self.cond_embed(cond)
        mods, head_mod = self.modulations(c)
        batch = c.shape[0] // 2 if guided else c.shape[0]
        caches = self.new_caches(c.shape[0], self.config.sequence_length, growing)
        n = self.config.context_tokens
        if n:
            x = self.context(context, batch).to(c.dtype)
            x = torch.cat((x, x)) if guided else x
            for blk, mod, cache in zip(self.blocks, mods, caches):
                x = blk(x, mod, None, cache, 0, n)
        fields = dict(batch=batch, guided=guided, mods=mods, head_mod=head_mod, caches=caches,
                      level_pos=self.level_pos(), offset=n)
        return c, fields

    def new_caches(self, batch: int, length: int, growing: bool = False) -> list[KVCache]:
        cfg, p = self.config, self.head.out.weight
        return [KVCache(batch, cfg.heads, length, cfg.width // cfg.heads, p.device, p.dtype, growing)
                for _ in self.blocks]

    # ---- generation: the interface both models implement, and the one loop that drives it ----------
    # setup(quantizer, cond, guided, static, context, growing) -> state (growing: KV caches that append, for a
    # generation traced as one graph); generation_plan(cfg) -> [(step index, CFG weight)];
    # step(state, quantizer, index, t, top_k, top_p, temperature, generator, noise=None) -> (tokens, guided
    # logits), with shapes that depend only on the index and no host reads (compile / CUDA-graph friendly);
    # `noise`, the sampler's uniforms (B, step_length(index), sampling.noise_width(...)), drawn by the caller,
    # replaces the draw from `generator` (what keeps a compiled step one graph);
    # codes(state, per-step tokens) -> K LongTensors (B, n_k). `ar.fast.FastGenerator` drives the same.
    # `context` is the previous window's latent f_hat (B, C, T) for a model with context tokens, or None.
    def setup(self, quantizer: Quantizer | None, cond: Tensor, guided: bool, static: bool = False,
              context: Tensor | None = None, growing: bool = False) -> GenerationState:
        raise NotImplementedError

    def generation_plan(self, cfg: float) -> list[tuple[int, float]]:
        raise NotImplementedError

    def step_length(self, index: int) -> int:
        """Tokens step `index` samples per row (n_k of a scale, or 1)."""
        raise NotImplementedError

    def step(self, state: GenerationState, quantizer: Quantizer | None, index: int, t: float, top_k: int,
             top_p: float, temperature: float, generator: torch.Generator | None,
             noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def codes(self, state: GenerationState, outputs: list[Tensor]) -> list[Tensor]:
        raise NotImplementedError

    def gather_logits(self, logits: list[Tensor]) -> list[Tensor] | Tensor:
        """The per-step guided logits as `generate(return_logits=True)` returns them."""
        return logits

    @torch.no_grad()
    def generate(self, quantizer: Quantizer | None, cond: Tensor, cfg: float = 4.0, top_k: int = 0,
                 top_p: float = 0.0, temperature: float = 1.0, generator: torch.Generator | None = None,
                 return_logits: bool = False, static: bool = False, context: Tensor | None = None):
        """Sample every step of `generation_plan` -> list of K LongTensors (B, n_k) (and the guided logits).

        `static` asks for the same shapes at every step (what a CUDA graph needs) where a model's
        steps differ otherwise (the next-token baseline); the tokens are the same either way.
        `context`: the previous window's latent (B, C, T), for a model with context tokens.
        """
        state = self.setup(quantizer, cond, guided=cfg != 0, static=static, context=context)
        outputs, logits = [], []
        for index, t in self.generation_plan(cfg):
            idx, lg = self.step(state, quantizer, index, t, top_k, top_p, temperature, generator)
            outputs.append(idx)
            if return_logits:
                logits.append(lg)
        codes = self.codes(state, outputs)
        return (codes, self.gather_logits(logits)) if return_logits else codes


def guidance_weight(cfg: float, step: int, steps: int) -> float:
    """The paper's linear CFG ramp t = cfg * step / (steps - 1): no guidance on the first step."""
    return cfg * step / max(steps - 1, 1)


def guide(logits: Tensor, batch: int, t: float) -> Tensor:
    """(1 + t) * cond - t * null for a batch laid out as [cond; null]."""
    return (1 + t) * logits[:batch] - t * logits[batch:]
