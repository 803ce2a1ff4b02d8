"""nextscale: efficient autoregressive audio generation by next-scale prediction.

The public surface is imported lazily so `import nextscale` stays fast and a missing optional
dependency only matters when its feature is used.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "SAT": "nextscale.tokenizer.model",
    "SATConfig": "nextscale.tokenizer.model",
    "AAR": "nextscale.ar.next_scale",
    "ARConfig": "nextscale.ar.config",
    "NextTokenAR": "nextscale.ar.next_token",
    "Pipeline": "nextscale.pipeline",
    "load_audio": "nextscale.audio",
    "save_audio": "nextscale.audio",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nextscale' has no attribute {name!r}")
