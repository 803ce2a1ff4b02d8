"""The `synth` backend: a small log-mel CNN trained to tell the synthetic corpus's sound kinds apart.

It makes the whole evaluation usable offline: its penultimate activations give a FAD, its softmax
gives the accuracy of class-conditioned samples, the inception score and a label-distribution KL.
Train one with `nextscale train-classifier --out DIR` (nextscale.eval.train_classifier); it saves
as a model directory (config.json + model.safetensors) through `Pretrained`.
"""
from __future__ import annotations

import dataclasses
import math
import os

import torch
from torch import nn

from ...checkpoint import Pretrained
from ...errors import ConfigError
from .base import EmbeddingBackend
from .mel import log_mel


@dataclasses.dataclass
class ClassifierConfig:
    classes: list[str] = dataclasses.field(default_factory=list)
    sample_rate: int = 24000
    clip_seconds: float = 1.0
    n_fft: int = 1024
    hop: int = 480
    n_mels: int = 64
    channels: list[int] = dataclasses.field(default_factory=lambda: [8, 16, 32, 64])
    feature_dim: int = 128
    log_floor: float = 1e-2  # mel magnitudes below this are one value: ~80 dB under a loud tone, far above 16-bit noise

    def __post_init__(self):
        if len(self.classes) < 2:
            raise ConfigError(f"classes: a classifier needs at least 2 class names, got {self.classes!r}")
        if self.n_mels % (2 ** len(self.channels)):
            raise ConfigError(f"n_mels: {self.n_mels} must be divisible by 2**len(channels) = {2 ** len(self.channels)}")
        if self.log_floor <= 0:
            raise ConfigError(f"log_floor: must be > 0, got {self.log_floor}")
        if self.clip_seconds <= 0 or self.sample_rate <= 0:
            raise ConfigError("clip_seconds and sample_rate must be positive")


class SynthClassifier(Pretrained, nn.Module):
    """log-mel → 4 × (conv3×3, BN, ReLU, max-pool 2) → mean over time → feature_dim → classes.

    Deliberately small (≈ 40 k parameters, 32 mel bands at 50 frames/s) so it trains in a minute or
    two on a laptop CPU; the synthetic kinds differ in spectral shape and envelope, which this sees.
    """

    kind = "synth_classifier"
    config_class = ClassifierConfig

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        blocks: list[nn.Module] = [nn.BatchNorm2d(1)]
        prev = 1
        for ch in config.channels:
            blocks += [nn.Conv2d(prev, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2, ceil_mode=True)]
            prev = ch
        self.conv = nn.Sequential(*blocks)
        freq_out = config.n_mels // 2 ** len(config.channels)
        self.project = nn.Sequential(nn.Linear(prev * freq_out, config.feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(config.feature_dim, len(config.classes))

    @property
    def classes(self) -> list[str]:
        return list(self.config.classes)

    @property
    def clip_samples(self) -> int:
        return int(round(self.config.clip_seconds * self.config.sample_rate))

    def log_mel(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, 1, S) → (B, 1, n_mels, frames)."""
        c = self.config
        return log_mel(wav[:, 0], c.sample_rate, c.n_fft, c.hop, c.n_mels)[:, None]

    def features_from_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (B, feature_dim) from log-mels; this is what FAD uses.

        The floor is applied here, not in `log_mel`, so a gain augmentation added to the log-mel
        meets the same floor a quieter recording would: digital silence and 16-bit dither look alike.
        """
        mel = mel.clamp_min(math.log(self.config.log_floor))
        x = self.conv(mel).mean(dim=-1)  # (B, C, F'): average over time, keep frequency
        return self.project(x.flatten(1))

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        return self.features_from_mel(self.log_mel(wav))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, 1, S) audio → (B, classes) logits."""
        return self.head(self.features(wav))


def split_windows(wav: torch.Tensor, length: int) -> torch.Tensor:
    """(B, 1, S) → (N, 1, length) non-overlapping windows; a clip shorter than one window is zero-padded."""
    if wav.shape[-1] < length:
        wav = nn.functional.pad(wav, (0, length - wav.shape[-1]))
    n = wav.shape[-1] // length
    return wav[..., : n * length].reshape(wav.shape[0], 1, n, length).transpose(1, 2).reshape(-1, 1, length)


class SynthEmbedding(EmbeddingBackend):
    """Classifier features, one row per `clip_seconds` window; `probabilities` gives the softmax."""

    name = "synth"

    def __init__(self, classifier: str | os.PathLike | SynthClassifier, device: str | torch.device = "cpu",
                 batch_size: int = 64):
        self.path = None if isinstance(classifier, SynthClassifier) else str(classifier)
        model = classifier if isinstance(classifier, SynthClassifier) else SynthClassifier.from_pretrained(classifier)
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.sample_rate = model.config.sample_rate
        self.dim = model.config.feature_dim
        self.batch_size = batch_size

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    def params(self) -> dict:
        from .vggish import _file_fingerprint
        from pathlib import Path

        weights = _file_fingerprint(Path(self.path) / "model.safetensors") if self.path else f"object-{id(self.model)}"
        return {**super().params(), "classifier": weights}

    @torch.no_grad()
    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        windows = split_windows(self.check_input(wav), self.model.clip_samples)
        return torch.cat([self.model.features(w.to(self.device)).cpu() for w in windows.split(self.batch_size)])

    @torch.no_grad()
    def probabilities(self, features: torch.Tensor) -> torch.Tensor:
        """Softmax over classes from (N, dim) features (cached embeddings need no second pass)."""
        return torch.softmax(self.model.head(features.to(self.device).float()), dim=-1).cpu()
