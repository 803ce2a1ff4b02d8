"""Embedding backends for FAD, one interface (`EmbeddingBackend`), looked up by name.

    backend = get_embedding("synth", classifier="runs/classifier")
    backend = get_embedding("vggish", weights="vggish-10086976.pth")
    backend = get_embedding("clap", model="laion/clap-htsat-unfused")
    backend = get_embedding("mel")                      # no weights; a smoke check only
    emb = backend.embed(wav)                            # (B, 1, S) at backend.sample_rate → (N, backend.dim)
"""
from __future__ import annotations

import inspect
from typing import Any

from ...errors import ConfigError
from .base import EmbeddingBackend

BACKENDS = ("synth", "vggish", "clap", "mel")


def _backend_class(name: str) -> type[EmbeddingBackend]:
    if name == "synth":
        from .synth import SynthEmbedding as cls
    elif name == "vggish":
        from .vggish import VGGish as cls
    elif name == "clap":
        from .clap import Clap as cls
    elif name == "mel":
        from .mel import MelStats as cls
    else:
        raise ConfigError(f"embedding '{name}': unknown; choose one of {', '.join(BACKENDS)}")
    return cls


def get_embedding(name: str, **opts: Any) -> EmbeddingBackend:
    """Build a backend by name; options that are None are left at their defaults."""
    cls = _backend_class(name)
    opts = {k: v for k, v in opts.items() if v is not None}
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(opts) - accepted)
    if unknown:
        raise ConfigError(f"embedding '{name}': unknown option(s) {', '.join(unknown)}; it takes {', '.join(sorted(accepted))}")
    if name == "synth" and "classifier" not in opts:
        raise ConfigError("embedding 'synth' needs a trained classifier: pass --classifier DIR "
                          "(train one with `nextscale train-classifier --out DIR`)")
    return cls(**opts)


__all__ = ["BACKENDS", "EmbeddingBackend", "get_embedding"]
