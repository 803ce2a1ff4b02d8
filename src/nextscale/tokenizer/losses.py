"""SAT generator and discriminator losses (DESIGN.md): time L1, multi-resolution log-mel L1+L2,
hinge adversarial, relative feature matching and the quantizer's commitment loss.

The training loop calls `GeneratorLoss(config)(wav, out, disc_fake, disc_real)` and gets a dict
of named terms (plus `total`) to log, and `discriminator_loss(real_logits, fake_logits)`.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .mel import log_mel_spectrogram
from .model import SATOutput

DiscOutput = tuple[list[torch.Tensor], list[list[torch.Tensor]]]   # (logits, feature maps) per sub-discriminator


@dataclasses.dataclass
class LossConfig:
    """Weights of the generator terms; `adversarial: false` trains with time + mel + commit only."""

    sample_rate: int = 24000
    time_weight: float = 0.1
    mel_weight: float = 1.0
    adv_weight: float = 3.0
    feat_weight: float = 3.0
    commit_weight: float = 1.0
    mel_bins: int = 64
    mel_min_exponent: int = 5     # n_fft = 2^5 .. 2^11, hop = n_fft / 4
    mel_max_exponent: int = 11
    adversarial: bool = True

    def __post_init__(self) -> None:
        if not 2 <= self.mel_min_exponent <= self.mel_max_exponent:
            raise ConfigError(f"loss.mel_min_exponent/mel_max_exponent: need 2 <= min <= max, got "
                              f"{self.mel_min_exponent}, {self.mel_max_exponent}")
        for name in ("time_weight", "mel_weight", "adv_weight", "feat_weight", "commit_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name}: must be >= 0, got {getattr(self, name)}")


def multi_resolution_mel_loss(target: torch.Tensor, estimate: torch.Tensor, sample_rate: int, n_mels: int = 64,
                              exponents: Sequence[int] = range(5, 12)) -> torch.Tensor:
    """Sum over n_fft = 2^i of mean |L1| + mean squared error between log-mel spectrograms."""
    total = torch.zeros((), device=target.device)
    for i in exponents:
        n_fft = 2 ** i
        a = log_mel_spectrogram(target, sample_rate, n_fft, n_fft // 4, n_mels)
        b = log_mel_spectrogram(estimate, sample_rate, n_fft, n_fft // 4, n_mels)
        total = total + F.l1_loss(b, a) + F.mse_loss(b, a)
    return total


def generator_adversarial_loss(fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Hinge: mean over sub-discriminators of mean(relu(1 - D(x_hat)))."""
    return torch.stack([F.relu(1 - logit).mean() for logit in fake_logits]).mean()


def feature_matching_loss(real_features: Sequence[Sequence[torch.Tensor]],
                          fake_features: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """Relative L1 between real and fake feature maps, averaged over every layer of every discriminator."""
    terms = [F.l1_loss(fake, real.detach()) / (real.detach().abs().mean() + 1e-8)
             for reals, fakes in zip(real_features, fake_features) for real, fake in zip(reals, fakes)]
    return torch.stack(terms).mean()


def discriminator_loss(real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Hinge: mean over sub-discriminators of mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat)))."""
    return torch.stack([F.relu(1 - r).mean() + F.relu(1 + f).mean()
                        for r, f in zip(real_logits, fake_logits)]).mean()


class GeneratorLoss:
    """Weighted sum of the generator terms; returns every term by name and `total`."""

    def __init__(self, config: LossConfig | None = None):
        self.config = config or LossConfig()

    def __call__(self, wav: torch.Tensor, out: SATOutput, disc_fake: DiscOutput | None = None,
                 disc_real: DiscOutput | None = None) -> dict[str, torch.Tensor]:
        c = self.config
        terms = {
            "time": F.l1_loss(out.audio, wav),
            "mel": multi_resolution_mel_loss(wav, out.audio, c.sample_rate, c.mel_bins,
                                             range(c.mel_min_exponent, c.mel_max_exponent + 1)),
            "commit": out.commit_loss,
        }
        total = c.time_weight * terms["time"] + c.mel_weight * terms["mel"] + c.commit_weight * terms["commit"]
        if c.adversarial and disc_fake is not None:
            if disc_real is None:
                raise ConfigError("GeneratorLoss: feature matching needs the discriminator's outputs on real audio")
            terms["adv"] = generator_adversarial_loss(disc_fake[0])
            terms["feat"] = feature_matching_loss(disc_real[1], disc_fake[1])
            total = total + c.adv_weight * terms["adv"] + c.feat_weight * terms["feat"]
        terms["total"] = total
        return terms
