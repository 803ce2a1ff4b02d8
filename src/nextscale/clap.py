"""One CLAP model for both of its uses: the AR's conditioner and the evaluation's embeddings / CLAP score.

`Clap` wraps a transformers `ClapModel` with its `ClapProcessor` (tokenizer + 48 kHz feature extractor)
loaded from a directory saved with `save_pretrained`, or a hub id (with HF_HUB_OFFLINE=1 only the local
cache is used). Text and audio embeddings are L2-normalised rows in CLAP's joint space. The version shim
for transformers' feature getters and the loading error live here, once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .audio import resample
from .errors import CheckpointError, NextscaleError

CLAP_SAMPLE_RATE = 48_000              # what every published CLAP feature extractor expects
DEFAULT_CLAP = "laion/clap-htsat-unfused"


def _features(output: Any) -> torch.Tensor:
    """transformers < 5 returns the projected tensor from get_*_features, >= 5 an output holding it as pooler_output."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def as_mono_batch(wav: torch.Tensor) -> torch.Tensor:
    """(B, 1, S) or (B, S) -> (B, S); anything else (stereo, empty) is a NextscaleError naming the shape."""
    if wav.dim() == 3:
        if wav.shape[1] != 1:
            raise NextscaleError(f"CLAP expects mono audio (B, 1, S), got shape {tuple(wav.shape)}")
        wav = wav[:, 0]
    if wav.dim() != 2 or wav.shape[0] == 0 or wav.shape[1] == 0:
        raise NextscaleError(f"CLAP expects a non-empty batch (B, S) or (B, 1, S), got {tuple(wav.shape)}")
    return wav


class Clap:
    """A loaded CLAP model: `embed_text(texts)`, `embed_audio(wav, sample_rate)`, `dim`, `to(device)`."""

    def __init__(self, path_or_id: str | Path = DEFAULT_CLAP, device: str | torch.device = "cpu"):
        try:
            from transformers import ClapModel, ClapProcessor
        except ImportError:
            raise NextscaleError("CLAP needs the 'transformers' package: pip install 'nextscale[clap]'") from None
        self.model_name = str(path_or_id)
        try:
            self.processor = ClapProcessor.from_pretrained(self.model_name)
            self.model = ClapModel.from_pretrained(self.model_name)
        except (OSError, ValueError) as e:
            raise CheckpointError(
                f"CLAP model {self.model_name!r} could not be loaded ({type(e).__name__}: {str(e).splitlines()[0]}); "
                "pass a local directory with ClapModel + ClapProcessor saved by save_pretrained, or a hub id "
                f"(e.g. {DEFAULT_CLAP}) that is in the local cache or reachable") from None
        self.sample_rate = int(getattr(self.processor.feature_extractor, "sampling_rate", CLAP_SAMPLE_RATE))
        self.device = torch.device(device)
        self.model.eval().to(self.device)

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def commit(self) -> str:
        """The hub revision the weights came from ('' for a local directory)."""
        return getattr(self.model.config, "_commit_hash", None) or ""

    def to(self, device: str | torch.device) -> "Clap":
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @torch.no_grad()
    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), dim) L2-normalised text embeddings, on the model's device."""
        tokens = self.processor.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        return F.normalize(_features(self.model.get_text_features(**tokens)).float(), dim=-1)

    @torch.no_grad()
    def embed_audio(self, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """wav (B, 1, S) or (B, S) at `sample_rate` -> (B, dim), resampled to the extractor's rate first."""
        clips = [resample(np.asarray(x, dtype=np.float32), sample_rate, self.sample_rate)
                 for x in as_mono_batch(wav).detach().float().cpu().numpy()]
        feats = self.processor.feature_extractor(clips, sampling_rate=self.sample_rate, return_tensors="pt")
        feats = {k: v.to(self.device) for k, v in feats.items()}
        return F.normalize(_features(self.model.get_audio_features(**feats)).float(), dim=-1)
