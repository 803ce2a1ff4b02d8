"""CLAP audio embeddings at 48 kHz for FAD, and the CLAP score for text prompts (`nextscale.clap.Clap`).

The model comes from a local directory (saved with `save_pretrained`, processor included) or a hub id,
e.g. `laion/clap-htsat-unfused`; with HF_HUB_OFFLINE=1 only the local cache is used. Embeddings are
the model's L2-normalised projected audio features, one row per clip.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ...clap import DEFAULT_CLAP, Clap as LoadedClap
from ...errors import NextscaleError
from .base import EmbeddingBackend



class Clap(EmbeddingBackend):
    """CLAP audio embeddings (one per clip), plus `text_embed` / `score` for text–audio similarity."""

    name = "clap"

    def __init__(self, model: str = DEFAULT_CLAP, device: str | torch.device = "cpu", batch_size: int = 16):
        self.clap = LoadedClap(model, device=device)
        self.model_name = self.clap.model_name
        self.sample_rate = self.clap.sample_rate
        self.dim = self.clap.dim
        self.batch_size = batch_size

    @property
    def features(self):
        """The 48 kHz feature extractor (tests run the raw model on its output)."""
        return self.clap.processor.feature_extractor

    def params(self) -> dict:
        return {**super().params(), "model": self.model_name, "commit": self.clap.commit}

    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        wav = self.check_input(wav)
        return torch.cat([self.clap.embed_audio(chunk, self.sample_rate).cpu() for chunk in wav.split(self.batch_size)])

    def text_embed(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), dim) L2-normalised text embeddings."""
        return self.clap.embed_text(texts).cpu()

    def score(self, texts: Sequence[str], audio_embeddings: torch.Tensor) -> torch.Tensor:
        """Per-pair cosine similarity between each text and its clip's audio embedding (the CLAP score)."""
        if len(texts) != audio_embeddings.shape[0]:
            raise NextscaleError(f"CLAP score: {len(texts)} texts for {audio_embeddings.shape[0]} clips")
        a = torch.nn.functional.normalize(audio_embeddings.float(), dim=-1)
        return (self.text_embed(texts) * a).sum(-1)
