"""CLAP (transformers `ClapModel`) audio embeddings at 48 kHz, and the CLAP score for text prompts.

The model comes from a local directory (saved with `save_pretrained`, feature extractor included)
or a hub id, e.g. `laion/clap-htsat-unfused`; with HF_HUB_OFFLINE=1 only the local cache is used.
Embeddings are the model's L2-normalised projected audio features, one row per clip.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ...errors import CheckpointError, NextscaleError
from .base import EmbeddingBackend

DEFAULT_CLAP = "laion/clap-htsat-unfused"


def _transformers():
    try:
        import transformers
    except ImportError:
        raise NextscaleError("the clap embedding needs the transformers package: pip install 'nextscale[clap]'") from None
    return transformers


def _pooled(out) -> torch.Tensor:
    """transformers < 5 returns a tensor from get_*_features, 5.x an output object with pooler_output."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class Clap(EmbeddingBackend):
    """CLAP audio embeddings (one per clip), plus `text_embed` / `score` for text–audio similarity."""

    name = "clap"
    sample_rate = 48000

    def __init__(self, model: str = DEFAULT_CLAP, device: str | torch.device = "cpu", batch_size: int = 16):
        tf = _transformers()
        self.model_name = str(model)
        try:
            self.model = tf.ClapModel.from_pretrained(self.model_name).to(device).eval()
            self.features = tf.AutoFeatureExtractor.from_pretrained(self.model_name)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{self.model_name}: cannot load a CLAP model (not a local ClapModel directory with "
                                  f"its feature extractor, or the hub is unreachable/offline): {e}") from None
        self.sample_rate = int(getattr(self.features, "sampling_rate", 48000))
        self.dim = int(self.model.config.projection_dim)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._tokenizer = None

    def params(self) -> dict:
        return {**super().params(), "model": self.model_name,
                "commit": getattr(self.model.config, "_commit_hash", None) or ""}

    @torch.no_grad()
    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        wav = self.check_input(wav)
        rows = []
        for chunk in wav.split(self.batch_size):
            inputs = self.features([w[0].cpu().numpy() for w in chunk], sampling_rate=self.sample_rate,
                                   return_tensors="pt")
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            rows.append(_pooled(self.model.get_audio_features(**inputs)).float().cpu())
        return torch.cat(rows)

    @torch.no_grad()
    def text_embed(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), dim) L2-normalised text embeddings."""
        if self._tokenizer is None:
            try:
                self._tokenizer = _transformers().AutoTokenizer.from_pretrained(self.model_name)
            except (OSError, ValueError) as e:
                raise CheckpointError(f"{self.model_name}: no tokenizer for the CLAP score ({e})") from None
        tokens = self._tokenizer(list(texts), padding=True, return_tensors="pt").to(self.device)
        feats = _pooled(self.model.get_text_features(input_ids=tokens["input_ids"],
                                                     attention_mask=tokens["attention_mask"]))
        return torch.nn.functional.normalize(feats.float(), dim=-1).cpu()

    def score(self, texts: Sequence[str], audio_embeddings: torch.Tensor) -> torch.Tensor:
        """Per-pair cosine similarity between each text and its clip's audio embedding (the CLAP score)."""
        if len(texts) != audio_embeddings.shape[0]:
            raise NextscaleError(f"CLAP score: {len(texts)} texts for {audio_embeddings.shape[0]} clips")
        a = torch.nn.functional.normalize(audio_embeddings.float(), dim=-1)
        return (self.text_embed(texts) * a).sum(-1)
