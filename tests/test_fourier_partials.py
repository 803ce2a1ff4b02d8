"""The Fourier codec's partials head: one sinusoid per bin rendered through the Hann window's kernel.

The kernel against a direct DFT, a steady cosine rendered at its own frequency against the STFT of
that cosine (and back to the cosine), and the head inside a SAT: codes, decodes, saves, trains.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nextscale.errors import ConfigError
from nextscale.tokenizer.fourier import FourierDecoder, SameSTFT, hann_kernels, render_partials
from nextscale.tokenizer.model import SAT, SATConfig

TINY = dict(codec="fourier", sample_rate=8000, hop=80, n_fft=240, dimension=16, latent_dim=8, codebook_size=32,
            convnext_width=32, convnext_layers=1, schedule="quadratic", num_scales=4, phi_count=2, kmeans_iters=5,
            fourier_phase="partials", clip_seconds=0.25)


@pytest.mark.parametrize("n_fft, tolerance", [(1024, 1e-5), (240, 5e-4)])
def test_hann_kernels_are_the_dft_of_the_windowed_sinusoid(n_fft, tolerance):
    """sum_n w[n] exp(2 pi i x n / N) / (N / 2) at x = offset - o, summed directly in numpy, equals kernel o
    times the shared linear phase, for offsets inside the bin (zero, the nulls at integers x, near +-1)."""
    offsets = np.concatenate([np.linspace(-0.99, 0.99, 23), [0.0, 0.5, -0.5]])
    n = np.arange(n_fft)
    window = np.hanning(n_fft + 1)[:-1]
    kernels = hann_kernels(torch.from_numpy(offsets), n_fft, reach=2)
    for o, kernel in zip(range(-2, 3), kernels):
        x = offsets - o
        direct = (window * np.exp(2j * np.pi * x[:, None] * n / n_fft)).sum(1) / (n_fft / 2)
        ours = kernel.numpy() * np.exp(1j * np.pi * x * (n_fft - 1) / n_fft)
        np.testing.assert_allclose(ours, direct, atol=tolerance, rtol=0)
    assert abs(kernels[2][-3] - 1) < 1e-12 and abs(kernels[0][-3]) < tolerance  # 1 at the centre, 0 two bins off


def test_hann_kernels_stay_finite_at_a_saturated_offset():
    """tanh saturates to exactly +-1 in float32: the kernels and their gradients there must be finite."""
    offset = torch.tensor([-1.0, -0.999999, 0.0, 0.999999, 1.0], requires_grad=True)
    kernels = hann_kernels(offset, 1024, reach=2)
    torch.stack([k.abs() for k in kernels]).sum().backward()
    assert all(torch.isfinite(torch.view_as_real(k)).all() for k in kernels) and torch.isfinite(offset.grad).all()
    torch.testing.assert_close(kernels[3][-1].real, torch.tensor(1.0))     # at +1 the next bin holds the centre


@pytest.mark.parametrize("frequency", [133.0, 440.7, 2345.6])
def test_a_steady_cosine_rendered_at_its_frequency_is_its_stft_and_inverts_to_it(frequency):
    """One partial in bin round(p) with the offset p - round(p) and the cosine's phase at each frame's first
    sample: the rendered spectrum is the STFT of the cosine (the side lobes beyond two bins, left out, are < 3 % of the peak)
    and its inverse is the cosine again, away from the reflect-padded edges."""
    sample_rate, hop, n_fft, frames = 24000, 320, 1024, 40
    stft = SameSTFT(n_fft, hop).double()
    s = torch.arange(frames * hop, dtype=torch.float64)
    wav = torch.cos(2 * math.pi * frequency * s / sample_rate + 0.4)[None, None]
    target = stft(wav)
    p = frequency * n_fft / sample_rate
    j = round(p)
    amplitude, offset, phase = (torch.zeros(1, n_fft // 2 + 1, frames, dtype=torch.float64) for _ in range(3))
    frame_start = torch.arange(frames, dtype=torch.float64) * hop - (n_fft - hop) // 2
    amplitude[0, j], offset[0, j] = n_fft / 4, p - j                  # a cosine of amplitude 1 peaks at N / 4
    phase[0, j] = 2 * math.pi * frequency * frame_start / sample_rate + 0.4
    spectrum = render_partials(amplitude, offset, phase, n_fft)
    middle = slice(3, -3)
    error = (spectrum - target)[..., middle].abs().max() / target.abs().max()
    assert error < 0.03, error
    audio = stft.inverse(spectrum)[0, 0, 4 * hop: -4 * hop]
    assert (audio - wav[0, 0, 4 * hop: -4 * hop]).abs().max() < 0.02
    moved = render_partials(amplitude, offset + 0.5, phase, n_fft)     # half a bin higher: another STFT
    assert (moved - target)[..., middle].abs().max() > 0.3 * target.abs().max()


def tiny_partials_sat(seed: int = 0) -> SAT:
    torch.manual_seed(seed)
    sat = SAT(SATConfig(**TINY))
    with torch.no_grad():
        sat.train()(0.3 * torch.randn(4, 1, sat.clip_samples))
    return sat.eval()


def test_partials_sat_codes_decodes_and_saves_bitwise(tmp_path):
    sat = tiny_partials_sat()
    wav = 0.2 * torch.randn(2, 1, sat.clip_samples)
    with torch.no_grad():
        out = sat(wav)
    assert out.audio.shape == wav.shape and out.spectrum[0].shape == (2, 121, 25)
    torch.testing.assert_close(sat.decode(sat.encode(wav)), out.audio, atol=1e-6, rtol=0)
    assert sat.decode(sat.encode(wav)[:2]).shape == wav.shape
    sat.save_pretrained(tmp_path / "sat")
    loaded = SAT.from_pretrained(tmp_path / "sat")
    assert loaded.config.fourier_phase == "partials"
    codes = sat.encode(wav)
    assert torch.equal(sat.decode(codes), loaded.decode(codes))


def test_partials_head_gradients_are_finite_on_silence_and_reach_the_offsets():
    """Bins no sinusoid reaches render exact zeros; the log-magnitude the losses see is smoothed there, so a
    step on silence beside a tone has finite gradients, and the spectral loss moves the offsets."""
    from nextscale.tokenizer.losses import compressed_magnitude_loss

    torch.manual_seed(0)
    dec = FourierDecoder(240, 80, width=16, layers=1, mlp_ratio=2.0, dimension=8, phase="partials")
    z = torch.randn(2, 8, 10)
    audio, (log_magnitude, phase), _, _ = dec.decode_with_spectrum(z)
    wav = torch.zeros(2, 1, 800)
    wav[1, 0] = torch.sin(2 * math.pi * 523.0 * torch.arange(800) / 8000)
    loss = compressed_magnitude_loss(SameSTFT(240, 80)(wav), log_magnitude) + audio.abs().mean()
    loss.backward()
    grads = [p.grad for p in dec.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    offset_rows = dec.head.weight.grad[121:]                      # the second half of the head: the offsets
    assert offset_rows.abs().sum() > 0
    with pytest.raises(ConfigError, match="decode_with_spectrum"):
        dec.predict(z)


def test_a_misspelt_phase_mode_names_the_choices():
    with pytest.raises(ConfigError, match=r"model\.fourier_phase.*partials.*'partial'"):
        SATConfig(**TINY | {"fourier_phase": "partial"})
