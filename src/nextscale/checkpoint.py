"""Model directories (config.json + model.safetensors), written atomically (`io.atomic_directory`),
and the mixin that gives every model `from_config` / `save_pretrained` / `from_pretrained` /
`num_parameters`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import from_dict, load_config, to_dict
from .errors import CheckpointError, ConfigError
from .io import atomic_directory, read_json

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def write_model_files(directory: Path, kind: str, config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor],
                      metadata: Mapping[str, Any] | None = None) -> None:
    """Write config.json + model.safetensors into an (already temporary) directory."""
    from . import __version__

    header = {"kind": kind, "format_version": FORMAT_VERSION, "nextscale_version": __version__,
              "config": dict(config)}
    if metadata:
        header["metadata"] = dict(metadata)
    (directory / CONFIG_NAME).write_text(json.dumps(header, indent=2), encoding="utf-8")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    save_file(tensors, str(directory / WEIGHTS_NAME))


def resolve_model_dir(path_or_id: str | Path) -> Path:
    """A local directory as is; a shipped model's name, or a published one's through `hub.published_dir`
    (`nextscale models` lists both);
    anything else of the form owner/name as a Hugging Face hub repository of a nextscale directory."""
    path = Path(path_or_id)
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{path}: expected a checkpoint directory (config.json + model.safetensors), got a file")
        return path
    text = str(path_or_id)
    from .hub import PUBLISHED, published_dir, shipped_models

    shipped = shipped_models()
    if text in shipped:
        return shipped[text]
    if text in PUBLISHED:
        return published_dir(text)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(repo_id=text))
        except Exception as e:  # offline, unknown repo, no auth: all user-fixable
            raise CheckpointError(f"{text}: not a local directory, and fetching it from the Hugging Face hub "
                                  f"failed ({type(e).__name__}: {e})") from None
    raise CheckpointError(f"{path}: checkpoint directory not found")


def read_model_files(path_or_id: str | Path, expected_kind: str | Sequence[str] | None = None
                     ) -> tuple[Path, dict[str, Any], dict[str, torch.Tensor]]:
    """Read and check a model directory; returns (dir, header from config.json, state dict)."""
    directory = resolve_model_dir(path_or_id)
    cfg_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for p in (cfg_path, weights_path):
        if not p.is_file():
            raise CheckpointError(f"{directory}: incomplete checkpoint, {p.name} is missing")
    header = read_json(cfg_path, CheckpointError)
    if not isinstance(header, dict) or "kind" not in header or "config" not in header:
        raise CheckpointError(f"{cfg_path}: not a nextscale checkpoint (no 'kind'/'config' fields)")
    version = header.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{cfg_path}: checkpoint format version {version!r} is newer than this nextscale "
                              f"understands ({FORMAT_VERSION}); upgrade nextscale")
    if expected_kind is not None:
        kinds = [expected_kind] if isinstance(expected_kind, str) else list(expected_kind)
        if header["kind"] not in kinds:
            raise CheckpointError(f"{directory}: holds a '{header['kind']}' model, expected {' or '.join(repr(k) for k in kinds)}")
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights_path}: unreadable weights ({e})") from None
    return directory, header, state


# config.json "kind" -> the class that reads it, as "module:Class" (imported on first use, so loading
# a tokenizer never imports the AR models). The one place that maps kinds to code.
MODEL_CLASSES: dict[str, str] = {
    "sat": "nextscale.tokenizer.model:SAT",
    "aar": "nextscale.ar.next_scale:AAR",
    "next_token": "nextscale.ar.next_token:NextTokenAR",
    "synth_classifier": "nextscale.eval.embeddings.synth:SynthClassifier",
}
AR_KINDS = ("aar", "next_token")


def model_class(kind: str) -> type:
    """The Pretrained class of a model kind."""
    import importlib

    if kind not in MODEL_CLASSES:
        raise CheckpointError(f"unknown model kind {kind!r} (known: {', '.join(MODEL_CLASSES)})")
    module, name = MODEL_CLASSES[kind].split(":")
    return getattr(importlib.import_module(module), name)


def load_model(path_or_id: str | Path, map_location: str | torch.device = "cpu",
               kinds: str | Sequence[str] | None = None):
    """Any model directory or name -> the model its config.json names; `kinds` limits what is accepted."""
    directory, header, state = read_model_files(path_or_id, kinds)
    return model_class(header["kind"]).from_files(directory, header, state, map_location)


class Pretrained:
    """Mixin for nn.Modules built from a config dataclass (`self.config`).

    Subclasses set `kind` (stored in config.json and checked on load) and `config_class`.
    """

    kind: ClassVar[str]
    config_class: ClassVar[type]

    @classmethod
    def from_config(cls, config: Any = None, overrides: Sequence[str] = ()):
        """Build from a config object, dict, YAML path (a whole training YAML's `model:` works) or None."""
        return cls(load_config(config, cls.config_class, overrides, section="model"))

    def save_pretrained(self, directory: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
        directory = Path(directory)
        with atomic_directory(directory) as tmp:
            write_model_files(tmp, self.kind, to_dict(self.config), self.state_dict(), metadata)
        return directory

    @classmethod
    def config_from_header(cls, header: Mapping[str, Any], where: str = ""):
        try:
            return from_dict(cls.config_class, header["config"])
        except ConfigError as e:
            raise CheckpointError(f"{where}: config.json does not fit {cls.__name__}: {e}") from None

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path, map_location: str | torch.device = "cpu"):
        directory, header, state = read_model_files(path_or_id, cls.kind)
        return cls.from_files(directory, header, state, map_location)

    @classmethod
    def from_files(cls, directory: Path, header: Mapping[str, Any], state: Mapping[str, torch.Tensor],
                   map_location: str | torch.device = "cpu"):
        """Build from what `read_model_files` returned, in eval mode on `map_location`."""
        model = cls(cls.config_from_header(header, str(directory)))
        load_state_checked(model, state, str(directory))
        model.to(map_location)
        model.eval()
        return model

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)  # type: ignore[attr-defined]


def load_state_checked(model: torch.nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """load_state_dict with an error that names the missing/unexpected/mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}{' …' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}{' …' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:5]))
        raise CheckpointError(f"{where}: weights do not fit the model ({'; '.join(parts)})")
    model.load_state_dict(state, strict=True)
