"""The one interface every embedding backend implements, so FAD code never cares which it is."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch


class EmbeddingBackend(ABC):
    """Turns audio at `sample_rate` into embeddings of size `dim`.

    `embed(wav (B, 1, S)) -> (N, dim)` returns frames or clips (N need not equal B: VGGish gives one
    row per 0.96 s patch). `params()` names everything that changes the numbers (weights file,
    options) and keys the per-file embedding cache. `smoke_only` backends have no learned weights and
    are labelled as a sanity check wherever their numbers are printed.
    """

    name: str = ""
    dim: int = 0
    sample_rate: int = 16000
    smoke_only: bool = False

    @abstractmethod
    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, 1, S) float audio at `self.sample_rate` → (N, dim) float embeddings."""

    def params(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "sample_rate": self.sample_rate}

    def check_input(self, wav: torch.Tensor) -> torch.Tensor:
        """Accept (S,), (1, S) or (B, 1, S); reject anything else with the shape in the message."""
        from ...errors import NextscaleError

        if wav.dim() == 1:
            wav = wav[None, None]
        elif wav.dim() == 2:
            wav = wav[:, None]
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise NextscaleError(f"{self.name} embedding: expected mono audio (B, 1, S), got shape {tuple(wav.shape)}")
        return wav.float()
