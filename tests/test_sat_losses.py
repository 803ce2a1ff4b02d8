"""SAT losses: mel front-end against a float64 numpy computation, hinge / feature-matching closed
forms, the weighted generator total, the discriminator, and a short training run."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nextscale.errors import ConfigError
from nextscale.tokenizer.discriminator import MultiScaleSTFTDiscriminator
from nextscale.tokenizer.losses import (GeneratorLoss, LossConfig, discriminator_loss, feature_matching_loss,
                                        generator_adversarial_loss)
from nextscale.tokenizer.mel import log_mel_spectrogram, mel_filterbank
from nextscale.tokenizer.model import SAT, SATConfig, SATOutput


def np_filterbank(sr, n_fft, n_mels):
    mel = lambda f: 2595 * np.log10(1 + f / 700)
    inv = lambda m: 700 * (10 ** (m / 2595) - 1)
    corners = inv(np.linspace(mel(0), mel(sr / 2), n_mels + 2))
    fb = np.zeros((n_fft // 2 + 1, n_mels))
    for j, f in enumerate(np.linspace(0, sr / 2, n_fft // 2 + 1)):
        for m in range(n_mels):
            lo, c, hi = corners[m], corners[m + 1], corners[m + 2]
            if lo <= f <= c:
                fb[j, m] = (f - lo) / (c - lo)
            elif c < f <= hi:
                fb[j, m] = (hi - f) / (hi - c)
    return fb


def np_log_mel(x, sr, n_fft, hop, n_mels):
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    padded = np.pad(x, n_fft // 2, mode="reflect")
    frames = [padded[i:i + n_fft] * window for i in range(0, len(padded) - n_fft + 1, hop)]
    spec = np.abs(np.fft.rfft(np.stack(frames), axis=1))      # (frames, F)
    return np.log(np.maximum(spec @ np_filterbank(sr, n_fft, n_mels), 1e-5)).T


def test_filterbank_and_log_mel_match_numpy_reference():
    np.testing.assert_allclose(mel_filterbank(16000, 256, 20).double().numpy(), np_filterbank(16000, 256, 20), atol=1e-6)
    x = np.random.default_rng(0).standard_normal(4000)
    ours = log_mel_spectrogram(torch.tensor(x, dtype=torch.float32)[None, None], 16000, 512, 128, 40)
    assert ours.shape == (1, 1, 40, 4000 // 128 + 1)
    np.testing.assert_allclose(ours[0, 0].double().numpy(), np_log_mel(x, 16000, 512, 128, 40), atol=2e-4)


def test_sine_lights_up_the_right_mel_band():
    t = torch.arange(24000) / 24000
    spec = log_mel_spectrogram(torch.sin(2 * math.pi * 1000 * t), 24000, 1024, 256, 64)
    band = int(spec.mean(-1).argmax())
    fb = mel_filterbank(24000, 1024, 64)
    assert int(fb[round(1000 * 1024 / 24000)].argmax()) == band


def test_hinge_and_feature_matching_closed_forms():
    fake = [torch.tensor([0.5, 2.0, -1.0]), torch.tensor([0.0])]
    real = [torch.tensor([0.5, 2.0, -1.0]), torch.tensor([3.0])]
    # generator: relu(1 - f): [0.5, 0, 2] -> 2.5/3 ; [1] -> 1 ; mean -> (5/6 + 1) / 2
    assert generator_adversarial_loss(fake).item() == pytest.approx((2.5 / 3 + 1) / 2)
    # discriminator: relu(1 - r) + relu(1 + f) per disc
    d0 = (0.5 + 0 + 2) / 3 + (1.5 + 3 + 0) / 3
    d1 = 0 + 1
    assert discriminator_loss(real, fake).item() == pytest.approx((d0 + d1) / 2)
    r = [[torch.tensor([1.0, -3.0]), torch.tensor([2.0])]]
    f = [[torch.tensor([2.0, -1.0]), torch.tensor([2.0])]]
    # layer 0: mean|f - r| = 1.5, mean|r| = 2 -> 0.75 ; layer 1: 0 -> mean 0.375
    assert feature_matching_loss(r, f).item() == pytest.approx(0.375)


def test_generator_total_is_the_weighted_sum_and_adversarial_switches_off():
    wav = torch.randn(2, 1, 4800) * 0.1
    est = wav + 0.05 * torch.randn_like(wav)
    out = SATOutput(est, [], torch.tensor(0.2), torch.zeros(1), torch.ones(1))
    disc = MultiScaleSTFTDiscriminator(filters=4)
    loss = GeneratorLoss(LossConfig())
    terms = loss(wav, out, disc(est), disc(wav))
    expected = 0.1 * terms["time"] + terms["mel"] + 3 * terms["adv"] + 3 * terms["feat"] + terms["commit"]
    assert terms["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    quiet = GeneratorLoss(LossConfig(adversarial=False))(wav, SATOutput(wav, [], torch.tensor(0.0), None, None))
    assert "adv" not in quiet and quiet["time"].item() == 0 and quiet["mel"].item() == 0
    with pytest.raises(ConfigError, match="mel_min_exponent"):
        LossConfig(mel_min_exponent=12)


def test_discriminator_shapes_and_gradients():
    disc = MultiScaleSTFTDiscriminator(filters=4)
    wav = torch.randn(2, 1, 4800, requires_grad=True)
    logits, feats = disc(wav)
    assert len(logits) == 5 and all(len(f) == 5 for f in feats)
    assert logits[0].shape[0] == 2 and logits[0].shape[1] == 1
    discriminator_loss(logits, [-x for x in logits]).backward()
    assert wav.grad is not None and wav.grad.abs().sum() > 0


def test_tiny_sat_training_lowers_mel_loss():
    torch.manual_seed(0)
    sat = SAT(SATConfig(n_filters=4, dimension=8, latent_dim=8, codebook_size=32, lstm_layers=1, num_scales=4,
                        clip_seconds=0.1, phi_count=2, kmeans_iters=3))
    t = torch.arange(sat.clip_samples) / 24000
    wav = torch.stack([0.5 * torch.sin(2 * math.pi * f * t) for f in (220.0, 660.0)])[:, None]
    loss_fn = GeneratorLoss(LossConfig(adversarial=False, mel_min_exponent=6, mel_max_exponent=9))
    opt = torch.optim.Adam(sat.parameters(), lr=3e-3, betas=(0.5, 0.9))
    sat.train()
    history = []
    for _ in range(60):
        terms = loss_fn(wav, sat(wav))
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        history.append(terms["mel"].item())
    assert min(history[-5:]) < 0.7 * history[0], history[::10]
