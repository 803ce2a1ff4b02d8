"""Reconstruction metrics against hand computations."""
import math

import numpy as np
import pytest
import torch

from nextscale.eval.recon import CodebookUsage, level_db, mel_distance, score_pair, si_sdr, stft_distance


def test_si_sdr_identity_and_formula():
    torch.manual_seed(0)
    s = torch.randn(4, 8000)
    assert bool((si_sdr(s, s) > 80).all())
    est = s + 0.2 * torch.randn(4, 8000)
    torch.testing.assert_close(si_sdr(s, 3.0 * est), si_sdr(s, est))  # gain does not matter
    noise = torch.randn(4, 8000)
    noise = noise - noise.mean(-1, keepdim=True)
    s0 = s - s.mean(-1, keepdim=True)
    noise = noise - (noise * s0).sum(-1, keepdim=True) / (s0 * s0).sum(-1, keepdim=True) * s0  # orthogonal to s
    for scale in (0.1, 0.5, 2.0):
        est = s + scale * noise
        expected = 10 * torch.log10((s0 ** 2).sum(-1) / ((scale * noise) ** 2).sum(-1))
        torch.testing.assert_close(si_sdr(s, est), expected, atol=1e-3, rtol=1e-4)


def test_si_sdr_matches_float64_numpy_on_generic_noise():
    rng = np.random.default_rng(1)
    s, n = rng.normal(size=6000), rng.normal(size=6000)
    est = 0.7 * s + 0.3 * n
    s0, e0 = s - s.mean(), est - est.mean()
    t = (e0 @ s0) / (s0 @ s0) * s0
    expected = 10 * np.log10((t @ t) / ((e0 - t) @ (e0 - t)))
    assert float(si_sdr(torch.from_numpy(s)[None], torch.from_numpy(est)[None])) == pytest.approx(expected, abs=1e-3)


def test_spectral_distances_zero_for_identity_and_grow_with_noise():
    torch.manual_seed(0)
    t = torch.arange(24000) / 24000
    x = torch.sin(2 * math.pi * 440 * t)[None] * 0.5
    assert float(mel_distance(x, x, 24000)) == 0.0 and float(stft_distance(x, x)) == 0.0
    small = x + 0.01 * torch.randn_like(x)
    large = x + 0.3 * torch.randn_like(x)
    assert 0 < float(mel_distance(x, small, 24000)) < float(mel_distance(x, large, 24000))
    assert 0 < float(stft_distance(x, small)) < float(stft_distance(x, large))
    with pytest.raises(ValueError, match="same shape"):
        mel_distance(x, x[:, :100], 24000)


def test_codebook_usage_and_perplexity():
    usage = CodebookUsage(num_scales=2, codebook_size=8)
    usage.update([torch.tensor([[0, 1, 2, 3]]), torch.tensor([[5, 5, 5, 5]])])
    usage.update([torch.tensor([[0, 1, 2, 3]]), torch.tensor([[5, 5, 6, 6]])])
    rows = usage.summary()
    assert rows[0]["usage"] == 0.5 and rows[0]["perplexity"] == pytest.approx(4.0)  # 4 codes, uniform
    p = np.array([6, 2]) / 8
    assert rows[1]["usage"] == 0.25 and rows[1]["perplexity"] == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert rows[1]["tokens"] == 8


def test_level_is_the_energy_ratio_in_db():
    """Half the amplitude is -6.02 dB whatever the signal; a reconstruction at the right level reads 0."""
    g = torch.Generator().manual_seed(5)
    s = torch.randn(3, 4000, generator=g, dtype=torch.float64)
    torch.testing.assert_close(level_db(s, 0.5 * s), torch.full((3,), 20 * math.log10(0.5), dtype=torch.float32))
    noise = torch.randn(3, 4000, generator=g, dtype=torch.float64)
    expected = 10 * torch.log10((noise ** 2).sum(-1) / (s ** 2).sum(-1))       # float64 reference
    torch.testing.assert_close(level_db(s, noise), expected.float(), atol=1e-4, rtol=0)
    assert score_pair(s[:1].float(), s[:1].float(), 24000)["level_db"] == pytest.approx(0.0, abs=1e-6)
