"""Load the published SAT checkpoints (qiuk2/AAR `.pth` files) into our SAT.

The published file is `{"generator_state_dict": {"module.<key>": tensor}}` with old-style weight
norm (`weight_g` / `weight_v`). Everything the tensors' shapes determine (widths, strides, latent
size, codebook size, number of scales, Phi count and kernel) is inferred; what they do not
(the exact scale schedule, Phi ratio, sample rate, clip length) comes from keyword arguments
whose defaults are the published values.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch

from ..checkpoint import load_state_checked
from ..errors import CheckpointError
from .model import SAT, SATConfig
from .schedules import quadratic_schedule

_RENAMES = [
    (re.compile(r"\.conv\.conv\."), ".conv."),
    (re.compile(r"\.convtr\.convtr\."), ".convtr."),
    (re.compile(r"\.weight_g$"), ".parametrizations.weight.original0"),
    (re.compile(r"\.weight_v$"), ".parametrizations.weight.original1"),
    (re.compile(r"^quantizer\.vq\.project_in\."), "quantizer.proj_in."),
    (re.compile(r"^quantizer\.vq\.project_out\."), "quantizer.proj_out."),
    (re.compile(r"^quantizer\.vq\.quant_resi\.qresi_ls\."), "quantizer.phis."),
    (re.compile(r"^quantizer\.vq\.quant_resi\.qresi\."), "quantizer.phis.0."),
    (re.compile(r"^quantizer\.vq\.quant_resi\.(\d+)\."), r"quantizer.phis.\1."),
    (re.compile(r"^quantizer\.vq\.layers\.(\d+)\._codebook\."), r"quantizer.codebooks.\1."),
]


def published_key_to_ours(key: str) -> str:
    """One published parameter name -> ours (old or new weight norm both accepted)."""
    for pattern, repl in _RENAMES:
        key = pattern.sub(repl, key)
    return key


def read_published_state(path_or_state: str | Path | Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The generator's tensors from a published .pth (or an already loaded dict), `module.` stripped."""
    where = str(path_or_state) if isinstance(path_or_state, (str, Path)) else "state dict"
    obj: Any = path_or_state
    if isinstance(path_or_state, (str, Path)):
        if not Path(path_or_state).is_file():
            raise CheckpointError(f"{where}: file not found")
        try:
            obj = torch.load(str(path_or_state), map_location="cpu", weights_only=True)
        except Exception as e:  # pickle errors, truncated files, foreign objects
            raise CheckpointError(f"{where}: cannot read it as a PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{where}: expected a dict of tensors, got {type(obj).__name__}")
    for wrapper in ("generator_state_dict", "model_state_dict", "state_dict", "model"):
        if wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
            break
    state = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{where}: entry '{key}' is a {type(value).__name__}, not a tensor")
        state[key[len("module."):] if key.startswith("module.") else key] = value
    if not any(k.startswith("encoder.") for k in state):
        raise CheckpointError(f"{where}: no 'encoder.*' keys; not a SAT generator checkpoint "
                              f"(keys start with {sorted({k.split('.')[0] for k in state})})")
    return state


def _shape(state: Mapping[str, torch.Tensor], key: str, where: str) -> tuple[int, ...]:
    for candidate in (key, key.replace("weight_v", "parametrizations.weight.original1")):
        if candidate in state:
            return tuple(state[candidate].shape)
    raise CheckpointError(f"{where}: key '{key}' is missing, cannot infer the architecture")


def infer_sat_config(state: Mapping[str, torch.Tensor], where: str = "checkpoint", **overrides: Any) -> SATConfig:
    """SATConfig from tensor shapes; `overrides` supply what shapes cannot tell."""
    conv_keys = {}
    for key in state:
        m = re.match(r"encoder\.model\.(\d+)\.conv\.conv\.(weight_v|parametrizations\.weight\.original1)$", key)
        if m:
            conv_keys[int(m.group(1))] = key
    if len(conv_keys) < 3:
        raise CheckpointError(f"{where}: found {len(conv_keys)} top-level encoder convs, expected the SEANet layout")
    order = sorted(conv_keys)
    first, last = state[conv_keys[order[0]]].shape, state[conv_keys[order[-1]]].shape
    strided = [state[conv_keys[i]].shape for i in order[1:-1]]
    ratios = [int(s[-1]) // 2 for s in reversed(strided)]
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"encoder\.model\.(\d+)\.block\.", k))}
    n_res = sum(1 for b in blocks if b < order[1])
    lstm_layers = len({k for k in state if re.match(r"encoder\.model\.\d+\.lstm\.weight_ih_l\d+$", k)})
    dimension = int(last[0])
    proj = "quantizer.vq.project_in.weight"
    latent = int(state[proj].shape[0]) if proj in state else dimension
    books = sorted({int(m.group(1)) for k in state if (m := re.match(r"quantizer\.vq\.layers\.(\d+)\._codebook", k))})
    if not books:
        raise CheckpointError(f"{where}: no 'quantizer.vq.layers.<k>._codebook.*' keys")
    num_scales = len(books)
    embed_shape = _shape(state, "quantizer.vq.layers.0._codebook.embed", where)
    phis = sorted({int(m.group(1)) for k in state if (m := re.match(r"quantizer\.vq\.quant_resi\.qresi_ls\.(\d+)\.weight", k))})
    kw: dict[str, Any] = dict(
        n_filters=int(first[0]), dimension=dimension, latent_dim=latent, ratios=ratios, n_residual_layers=n_res,
        lstm_layers=lstm_layers, kernel_size=int(first[-1]), last_kernel_size=int(last[-1]),
        codebook_size=int(embed_shape[0]), num_scales=num_scales, phi="partial" if phis else "none",
        phi_count=max(len(phis), 1))
    if phis:
        kw["phi_kernel"] = int(state[f"quantizer.vq.quant_resi.qresi_ls.{phis[0]}.weight"].shape[-1])
    if embed_shape[1] != latent:
        raise CheckpointError(f"{where}: codebook entries have dimension {embed_shape[1]} but project_in gives {latent}")
    hop, sample_rate = 1, int(overrides.get("sample_rate", 24000))
    for r in ratios:
        hop *= r
    if "scales" in overrides and overrides["scales"] is not None:
        kw["schedule"] = "explicit"
    elif "schedule" not in overrides:
        # the published models use the quadratic schedule over 1-second clips
        frames = -(-int(round(float(overrides.get("clip_seconds", 1.0)) * sample_rate)) // hop)
        kw.update(schedule="explicit", scales=quadratic_schedule(frames, num_scales))
    kw.update(overrides)
    return SATConfig(**kw)


def convert_published_sat(path_or_state: str | Path | Mapping[str, Any], **overrides: Any) -> SAT:
    """A published SAT checkpoint as our SAT (eval mode). `overrides` are SATConfig fields."""
    where = str(path_or_state) if isinstance(path_or_state, (str, Path)) else "state dict"
    state = read_published_state(path_or_state)
    config = infer_sat_config(state, where, **overrides)
    model = SAT(config)
    ours = {published_key_to_ours(k): v for k, v in state.items()}
    own = model.state_dict()
    for theirs, mine in zip(state, ours):
        if mine not in own:
            raise CheckpointError(f"{where}: key '{theirs}' has no place in a SAT with {len(config.resolved_scales())} "
                                  f"scales, ratios {config.ratios} (looked for '{mine}')")
        if tuple(ours[mine].shape) != tuple(own[mine].shape) and own[mine].numel() == ours[mine].numel():
            ours[mine] = ours[mine].reshape(own[mine].shape)  # e.g. `inited` stored as () vs (1,)
    load_state_checked(model, {k: v.to(own[k].dtype) for k, v in ours.items()}, where)
    return model.eval()
