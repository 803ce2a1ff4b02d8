"""Load the published AAR checkpoint (torch.save of a DDP-wrapped model) into our AAR.

Hyper-parameters are read off the tensors' shapes (depth, width, heads, condition size,
scales, vocabulary, latent width); only what shapes cannot tell is a flag, defaulting to
the published values. Every key is accounted for: a missing, unknown or mis-shaped tensor
raises a CheckpointError naming it and saying why.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from ..checkpoint import load_state_checked
from ..errors import CheckpointError, ConfigError
from .config import PAPER_SCALES, ARConfig
from .next_scale import AAR

# published name -> our name; "{i}" is a block index
_RENAMES = {
    "pos_start": "pos_start",
    "pos_1LC": "pos_embed",
    "uncond_embedding": "cond_embed.null",
    "word_embed.weight": "word_embed.weight",
    "word_embed.bias": "word_embed.bias",
    "class_emb.fc1.weight": "cond_embed.fc1.weight",
    "class_emb.fc2.weight": "cond_embed.fc2.weight",
    "lvl_embed.weight": "level_embed.weight",
    "blocks.{i}.attn.scale_mul_1H11": "blocks.{i}.attn.log_scale",
    "blocks.{i}.attn.q_bias": "blocks.{i}.attn.q_bias",
    "blocks.{i}.attn.v_bias": "blocks.{i}.attn.v_bias",
    "blocks.{i}.attn.mat_qkv.weight": "blocks.{i}.attn.qkv.weight",
    "blocks.{i}.attn.proj.weight": "blocks.{i}.attn.proj.weight",
    "blocks.{i}.attn.proj.bias": "blocks.{i}.attn.proj.bias",
    "blocks.{i}.ffn.fc1.weight": "blocks.{i}.ffn.fc1.weight",
    "blocks.{i}.ffn.fc1.bias": "blocks.{i}.ffn.fc1.bias",
    "blocks.{i}.ffn.fc2.weight": "blocks.{i}.ffn.fc2.weight",
    "blocks.{i}.ffn.fc2.bias": "blocks.{i}.ffn.fc2.bias",
    "blocks.{i}.ada_lin.1.weight": "blocks.{i}.ada.1.weight",
    "blocks.{i}.ada_lin.1.bias": "blocks.{i}.ada.1.bias",
    "head_nm.ada_lin.1.weight": "head.ada.1.weight",
    "head_nm.ada_lin.1.bias": "head.ada.1.bias",
    "head.weight": "head.out.weight",
    "head.bias": "head.out.bias",
}
# buffers the published model derives from its config; checked, not loaded
_DERIVED = ("lvl_1L", "attn_bias_for_masking", "blocks.{i}.attn.zero_k_bias")
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def _template(key: str) -> str:
    m = _BLOCK.match(key)
    return f"blocks.{{i}}.{m.group(2)}" if m else key


def read_published_state(path_or_state: str | Path | Mapping[str, Any], entry: str = "model_state_dict"
                         ) -> tuple[dict[str, Tensor], str]:
    """A published .pth (or its loaded dict) -> (flat state without 'module.' prefixes, where)."""
    if isinstance(path_or_state, (str, Path)):
        where = str(path_or_state)
        if not Path(where).is_file():
            raise CheckpointError(f"{where}: checkpoint file not found")
        try:
            obj = torch.load(where, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle errors, truncated files: all mean "not this format"
            raise CheckpointError(f"{where}: not a readable torch checkpoint ({type(e).__name__}: {e})") from None
    else:
        where, obj = "checkpoint", path_or_state
    if isinstance(obj, Mapping) and entry in obj:
        obj = obj[entry]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{where}: expected a state dict (optionally under '{entry}') of tensors")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}
    return state, where


def _need(state: Mapping[str, Tensor], key: str, where: str, why: str) -> Tensor:
    if key not in state:
        raise CheckpointError(f"{where}: key '{key}' is missing; it is needed to infer {why}")
    return state[key]


def infer_published_config(state: Mapping[str, Tensor], where: str = "checkpoint", *,
                           heads: int | None = None, scales: Sequence[int] | None = None,
                           norm_eps: float = 1e-6, cond_dropout: float = 0.1) -> ARConfig:
    """ARConfig of a published AAR state dict, from its shapes; flags fill in what shapes cannot."""
    width = int(_need(state, "pos_start", where, "the width").shape[-1])
    depth = len({int(m.group(1)) for k in state if (m := _BLOCK.match(k))})
    if depth == 0:
        raise CheckpointError(f"{where}: no 'blocks.N.*' keys; this is not an AAR checkpoint")
    cosine = "blocks.0.attn.scale_mul_1H11" in state
    if heads is None:
        if not cosine:
            raise CheckpointError(f"{where}: dot-product attention checkpoint; pass heads= (not inferable from shapes)")
        heads = int(state["blocks.0.attn.scale_mul_1H11"].shape[1])
    if scales is None:
        if "lvl_1L" in state:
            scales = torch.bincount(state["lvl_1L"].reshape(-1).long()).tolist()
        else:
            scales = list(PAPER_SCALES)
    fc1 = _need(state, "blocks.0.ffn.fc1.weight", where, "the MLP ratio")
    try:
        return ARConfig(
            kind="aar", depth=depth, width=width, heads=heads, mlp_ratio=fc1.shape[0] / width, scales=list(scales),
            codebook_size=int(_need(state, "head.weight", where, "the codebook size").shape[0]),
            latent_dim=int(_need(state, "word_embed.weight", where, "the latent width").shape[1]),
            condition="vector",
            cond_dim=int(_need(state, "class_emb.fc1.weight", where, "the condition size").shape[1]),
            cond_dropout=cond_dropout, attention="cosine" if cosine else "sdpa", norm_eps=norm_eps)
    except ConfigError as e:
        raise CheckpointError(f"{where}: inferred configuration is invalid ({e})") from None


def convert_published_state(state: Mapping[str, Tensor], cfg: ARConfig, where: str = "checkpoint") -> dict[str, Tensor]:
    """Rename a published AAR state dict to ours, checking every key and shape against `cfg`."""
    model_state = AAR(cfg).state_dict()
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in state.items():
        tmpl = _template(key)
        if tmpl in _DERIVED:
            continue
        if tmpl not in _RENAMES:
            unknown.append(key)
            continue
        m = _BLOCK.match(key)
        ours = _RENAMES[tmpl].format(i=m.group(1)) if m else _RENAMES[tmpl]
        want = tuple(model_state[ours].shape) if ours in model_state else None
        if want is None:
            raise CheckpointError(f"{where}: key '{key}' does not fit a model of depth {cfg.depth}")
        if tuple(value.shape) != want:
            raise CheckpointError(
                f"{where}: key '{key}' has shape {tuple(value.shape)}, expected {want} for width {cfg.width}, "
                f"{cfg.heads} heads, cond_dim {cfg.cond_dim}, {len(cfg.scales)} scales (L={cfg.num_tokens}), "
                f"V={cfg.codebook_size}, latent_dim {cfg.latent_dim}")
        out[ours] = value.float()
    if unknown:
        raise CheckpointError(f"{where}: unexpected keys {unknown[:5]}; not part of the published AAR layout")
    inverse = {v: k for k, v in _RENAMES.items()}
    missing = [inverse[_template(k)].replace("{i}", _BLOCK.match(k).group(1)) if _BLOCK.match(k) else inverse[k]
               for k in model_state if k not in out]
    if missing:
        raise CheckpointError(f"{where}: keys {missing[:5]} are missing from the checkpoint")
    if "lvl_1L" in state and state["lvl_1L"].numel() != cfg.num_tokens:
        raise CheckpointError(f"{where}: key 'lvl_1L' covers {state['lvl_1L'].numel()} tokens, "
                              f"but the scales {cfg.scales} sum to {cfg.num_tokens}")
    return out


def convert_published_aar(path_or_state: str | Path | Mapping[str, Any], *, heads: int | None = None,
                          scales: Sequence[int] | None = None, norm_eps: float = 1e-6,
                          cond_dropout: float = 0.1) -> AAR:
    """The published AAR (.pth path or loaded dict) as our AAR, in eval mode, float32."""
    state, where = read_published_state(path_or_state)
    cfg = infer_published_config(state, where, heads=heads, scales=scales, norm_eps=norm_eps,
                                 cond_dropout=cond_dropout)
    model = AAR(cfg)
    load_state_checked(model, convert_published_state(state, cfg, where), where)
    return model.eval()


# The CLAP model the published AAR was trained and evaluated with (its inference script loads it).
PUBLISHED_CLAP_MODEL = "laion/larger_clap_general"


def import_published(sat_path: str | Path, out: str | Path, aar_path: str | Path | None = None,
                     clap_model: str = PUBLISHED_CLAP_MODEL, heads: int | None = None,
                     scales: Sequence[int] | None = None) -> Path:
    """Published .pth files -> our directories: SAT alone -> a SAT model directory;
    SAT + AAR -> a pipeline directory (pipeline.json, tokenizer/, ar/) conditioned on CLAP.

    Everything is converted and checked before anything is written, and the directory is
    written atomically, so a bad file never leaves a half-imported checkpoint behind.
    """
    from ..pipeline import write_pipeline_dir
    from ..tokenizer.published import convert_published_sat
    from .config import check_quantizer

    sat = convert_published_sat(sat_path)
    out = Path(out)
    if aar_path is None:
        sat.save_pretrained(out, metadata={"imported_from": str(sat_path)})
        return out
    aar = convert_published_aar(aar_path, heads=heads, scales=scales)
    try:
        check_quantizer(aar.config, sat.quantizer, where=f"{aar_path} vs {sat_path}")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    return write_pipeline_dir(out, sat, aar, {"kind": "clap", "model": clap_model},
                              metadata={"tokenizer": {"imported_from": str(sat_path)},
                                        "ar": {"imported_from": str(aar_path)}})
