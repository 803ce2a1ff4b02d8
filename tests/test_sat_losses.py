"""SAT losses: mel front-end against a float64 numpy computation, hinge / feature-matching closed
forms, the weighted generator total, the discriminator, and a short training run."""
from __future__ import annotations

import math
from pathlib import Path

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


def test_stft_loss_matches_numpy_reference_and_is_zero_on_identity():
    from nextscale.tokenizer.losses import multi_resolution_stft_loss

    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(3000), rng.standard_normal(3000)

    def np_mag(sig, n_fft):
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
        padded = np.pad(sig, n_fft // 2, mode="reflect")
        frames = [padded[i:i + n_fft] * window for i in range(0, len(padded) - n_fft + 1, n_fft // 4)]
        return np.abs(np.fft.rfft(np.stack(frames), axis=1))

    expected = 0.0
    for n_fft in (256, 512):
        a, b = np_mag(x, n_fft), np_mag(y, n_fft)
        expected += np.linalg.norm(a - b) / np.linalg.norm(a)
        expected += np.abs(np.log(np.maximum(b, 1e-5)) - np.log(np.maximum(a, 1e-5))).mean()
    as_t = lambda v: torch.tensor(v, dtype=torch.float32)[None, None]
    assert multi_resolution_stft_loss(as_t(x), as_t(y), (256, 512)).item() == pytest.approx(expected, rel=1e-4)
    assert multi_resolution_stft_loss(as_t(x), as_t(x), (256, 512)).item() == pytest.approx(0.0, abs=1e-6)


def test_linear_stft_and_scaled_mel_bands_see_a_pitch_error_that_64_mel_bands_hardly_see():
    """A 200 Hz tone against 212 Hz (one semitone flat of 224): the relative loss increase under
    the linear STFT term and DAC-style growing mel bands is larger than under 64 fixed bands."""
    from nextscale.tokenizer.losses import multi_resolution_mel_loss, multi_resolution_stft_loss

    t = torch.arange(24000) / 24000
    tone = lambda f: sum(0.3 / h * torch.sin(2 * math.pi * f * h * t) for h in range(1, 4))[None, None]
    ref, near, far = tone(200.0), tone(212.0), tone(400.0)

    def ratio(fn):   # how much of the octave error the small pitch error already costs
        return (fn(ref, near) / fn(ref, far)).item()

    fixed = ratio(lambda a, b: multi_resolution_mel_loss(a, b, 24000, 64, range(9, 12)))
    scaled = ratio(lambda a, b: multi_resolution_mel_loss(a, b, 24000, [80, 160, 320], range(9, 12)))
    linear = ratio(lambda a, b: multi_resolution_stft_loss(a, b, (512, 1024, 2048)))
    assert scaled > fixed and linear > fixed, (fixed, scaled, linear)


def test_loss_config_rejects_mismatched_mel_band_lists_and_counts_the_stft_term():
    with pytest.raises(ConfigError, match="one count per resolution"):
        LossConfig(mel_bins=[5, 10])
    with pytest.raises(ConfigError, match="stft_weight"):
        LossConfig(stft_weight=-1.0)
    with pytest.raises(ConfigError, match="loss.mel_bins: counts must be positive"):
        LossConfig(mel_bins=0)
    with pytest.raises(ConfigError, match="loss.spectral_power"):
        LossConfig(spectral_power=0.0)
    with pytest.raises(ConfigError, match="loss.stft_ffts"):
        LossConfig(stft_ffts=[2])
    from nextscale.tokenizer.losses import multi_resolution_mel_loss
    with pytest.raises(ConfigError, match="2 mel band counts for 3 resolutions"):
        multi_resolution_mel_loss(torch.zeros(1, 1, 800), torch.zeros(1, 1, 800), 24000, [8, 16], range(5, 8))
    wav = torch.randn(1, 1, 4800) * 0.1
    est = wav + 0.05 * torch.randn_like(wav)
    terms = GeneratorLoss(LossConfig(adversarial=False, stft_weight=2.0))(
        wav, SATOutput(est, [], torch.tensor(0.0), None, None))
    assert terms["total"].item() == pytest.approx((0.1 * terms["time"] + terms["mel"] + 2 * terms["stft"]).item(),
                                                  rel=1e-6)


def test_compressed_magnitude_loss_closed_form():
    from nextscale.tokenizer.losses import compressed_magnitude_loss

    spec = torch.polar(torch.rand(2, 33, 10) + 0.5, torch.rand(2, 33, 10) * 6)
    assert compressed_magnitude_loss(spec, spec.abs().log()).item() == pytest.approx(0.0, abs=1e-6)
    # predicting twice the magnitude: error (2^p - 1) |X|^p, squared and averaged
    expected = ((2 ** 0.3 - 1) ** 2 * spec.abs().pow(0.6)).mean().item()
    assert compressed_magnitude_loss(spec, spec.abs().log() + math.log(2)).item() == pytest.approx(expected, rel=1e-5)


def test_phase_derivative_loss_ignores_a_phase_offset_and_measures_a_frequency_error():
    from nextscale.tokenizer.losses import phase_derivative_loss

    g = torch.Generator().manual_seed(0)
    spec = torch.polar(torch.rand(2, 33, 12, generator=g) + 0.1, torch.rand(2, 33, 12, generator=g) * 6.28)
    phase = spec.angle()
    assert phase_derivative_loss(spec, phase + 1.234).item() == pytest.approx(0.0, abs=1e-5)
    assert phase_derivative_loss(spec, phase + 2 * math.pi * torch.randint(-3, 4, phase.shape, generator=g)).item() \
        == pytest.approx(0.0, abs=1e-5)                                       # wrapping does not count
    delta = 0.4   # every bin's phase advances 0.4 rad per frame too fast: an IF error, no group-delay error
    ramp = delta * torch.arange(12.0)
    assert phase_derivative_loss(spec, phase + ramp).item() == pytest.approx(1 - math.cos(delta), rel=1e-4)
    assert phase_derivative_loss(spec, phase + ramp, group_delay=False).item() == pytest.approx(1 - math.cos(delta), rel=1e-4)
    tilt = 0.3 * torch.arange(spec.shape[-2]).reshape(-1, 1)   # a group-delay error only: the advance is right
    assert phase_derivative_loss(spec, phase + tilt).item() == pytest.approx(1 - math.cos(0.3), rel=1e-4)
    assert phase_derivative_loss(spec, phase + tilt, group_delay=False).item() == pytest.approx(0.0, abs=1e-5)


def test_spectral_terms_need_the_fourier_codec_and_its_spectrum_gives_its_audio():
    from nextscale.train.distributed import init_distributed
    from nextscale.train.tokenizer import SATTask, load_sat_train_config

    with pytest.raises(ConfigError, match="fourier"):
        GeneratorLoss(LossConfig(spectral_weight=1.0))
    cfg = load_sat_train_config({"model": dict(codec="fourier", fourier_phase="cumulative", convnext_width=16,
                                               convnext_layers=1, dimension=8, latent_dim=8, codebook_size=16,
                                               num_scales=4, kmeans_iters=2),
                                 "loss": {"spectral_weight": 2.0, "phase_weight": 3.0}, "train": {"adversarial": False}})
    task = SATTask(cfg, init_distributed("cpu"), Path("unused"))
    wav = 0.1 * torch.randn(2, 1, task.model.clip_samples)
    out = task.model(wav)
    log_magnitude, phase = out.spectrum
    again = task.model.decoder.stft.inverse(torch.polar(log_magnitude.exp(), phase))[..., : wav.shape[-1]]
    torch.testing.assert_close(again, out.audio)
    terms = task.loss_fn(wav, out)
    expected = 0.1 * terms["time"] + terms["mel"] + terms["commit"] + 2 * terms["spectral"] + 3 * terms["phase"]
    assert terms["total"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_fine_spectral_loss_matches_numpy_reference_and_is_zero_on_identity():
    from nextscale.tokenizer.losses import fine_spectral_loss

    rng = np.random.default_rng(3)
    x, y = 0.3 * rng.standard_normal(6000), 0.3 * rng.standard_normal(6000)

    def np_amplitude(sig, n_fft):
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
        padded = np.pad(sig, n_fft // 2, mode="reflect")
        frames = [padded[i:i + n_fft] * window for i in range(0, len(padded) - n_fft + 1, n_fft // 4)]
        return np.abs(np.fft.rfft(np.stack(frames), axis=1)) / window.sum()

    expected = sum(((np_amplitude(y, n) ** 0.3 - np_amplitude(x, n) ** 0.3) ** 2).mean() for n in (512, 2048))
    as_t = lambda v: torch.tensor(v, dtype=torch.float32)[None, None]
    assert fine_spectral_loss(as_t(x), as_t(y), (512, 2048)).item() == pytest.approx(expected, rel=1e-4)
    assert fine_spectral_loss(as_t(x), as_t(x), (512, 2048)).item() == pytest.approx(0.0, abs=1e-7)


def test_fine_spectral_loss_resolves_a_pitch_error_inside_one_codec_bin():
    """A 200 Hz tone with 8 harmonics against 207 Hz: at n_fft 1024 (23 Hz bins) the low harmonics share
    bins; at 4096 (6 Hz bins) they do not, so the long window sees a much larger share of an octave error."""
    from nextscale.tokenizer.losses import fine_spectral_loss

    t = torch.arange(24000) / 24000
    tone = lambda f: sum(0.3 / h * torch.sin(2 * math.pi * f * h * t) for h in range(1, 9))[None, None]
    ref, near, far = tone(200.0), tone(207.0), tone(400.0)
    share = lambda n: (fine_spectral_loss(ref, near, (n,)) / fine_spectral_loss(ref, far, (n,))).item()
    assert share(4096) > 1.5 * share(1024), (share(1024), share(4096))


def test_fine_spectral_term_is_weighted_into_the_total_for_any_codec_and_validated():
    with pytest.raises(ConfigError, match="loss.fine_spectral_weight"):
        LossConfig(fine_spectral_weight=-1.0)
    with pytest.raises(ConfigError, match="loss.fine_spectral_ffts"):
        LossConfig(fine_spectral_ffts=[2])
    wav = torch.randn(1, 1, 4800) * 0.1
    est = wav + 0.05 * torch.randn_like(wav)
    terms = GeneratorLoss(LossConfig(adversarial=False, fine_spectral_weight=100.0))(   # no codec STFT needed
        wav, SATOutput(est, [], torch.tensor(0.0), None, None))
    assert terms["fine_spectral"].item() > 0
    assert terms["total"].item() == pytest.approx(
        (0.1 * terms["time"] + terms["mel"] + 100 * terms["fine_spectral"]).item(), rel=1e-6)


def test_decoded_spectral_term_sees_the_level_lost_in_the_overlap_add():
    """A head spectrum with the input's magnitudes and phases that disagree from frame to frame scores 0 on the
    head's term, but its frames partly cancel in the overlap-add: the decoded waveform comes out quieter,
    which the term on the decoded waveform (the demo's) measures and the head's cannot."""
    from nextscale.eval.recon import level_db
    from nextscale.tokenizer.fourier import SameSTFT
    from nextscale.tokenizer.losses import compressed_magnitude_loss, fine_spectral_loss

    g = torch.Generator().manual_seed(0)
    t = torch.arange(24000) / 24000
    wav = (0.5 * torch.sin(2 * math.pi * 440 * t) + 0.2 * torch.sin(2 * math.pi * 1234.5 * t))[None, None]
    stft = SameSTFT(1024, 320)
    spec = stft(wav)
    scrambled = spec.abs() * torch.exp(1j * 2 * math.pi * torch.rand(spec.shape, generator=g))
    decoded = stft.inverse(scrambled)
    assert compressed_magnitude_loss(spec, spec.abs().log()).item() == pytest.approx(0.0, abs=1e-6)
    assert level_db(wav.reshape(1, -1), decoded.reshape(1, -1)).item() < -2.0          # the frames cancel
    assert fine_spectral_loss(wav, decoded, (1024,)).item() > 100 * fine_spectral_loss(wav, stft.inverse(spec), (1024,)).item()


def test_mel_and_decoded_spectral_terms_share_their_stfts_exactly():
    """GeneratorLoss computes each |STFT| once for both terms; values and gradients equal the separate computation
    (log-mels of the signals, compressed magnitudes by torch.stft at n_fft = window, hop n_fft / 4)."""
    from nextscale.tokenizer.losses import Spectra, fine_spectral_loss, multi_resolution_mel_loss
    from nextscale.tokenizer.mel import log_mel_spectrogram

    g = torch.Generator().manual_seed(3)
    wav = 0.1 * torch.randn(2, 1, 4800, generator=g)
    est = (wav + 0.05 * torch.randn(2, 1, 4800, generator=g)).requires_grad_()
    config = LossConfig(adversarial=False, fine_spectral_weight=14000.0, fine_spectral_ffts=[512, 1024, 2048])
    shared = GeneratorLoss(config)(wav, SATOutput(est, [], torch.tensor(0.0), None, None))
    shared_grad, = torch.autograd.grad(shared["total"], est)

    def separate(x):
        mel = sum(torch.nn.functional.l1_loss(log_mel_spectrogram(x, 24000, 2 ** i, 2 ** i // 4), log_mel_spectrogram(
            wav, 24000, 2 ** i, 2 ** i // 4)) + torch.nn.functional.mse_loss(log_mel_spectrogram(x, 24000, 2 ** i, 2 ** i // 4),
            log_mel_spectrogram(wav, 24000, 2 ** i, 2 ** i // 4)) for i in range(5, 12))
        def mag(y, n):
            return torch.stft(y.reshape(-1, 4800), n, n // 4, n, torch.hann_window(n), return_complex=True).abs() / (n / 2)
        fine = sum(torch.nn.functional.mse_loss(mag(x, n).clamp_min(1e-8) ** 0.3, mag(wav, n).clamp_min(1e-8) ** 0.3)
                   for n in (512, 1024, 2048))
        return 0.1 * torch.nn.functional.l1_loss(x, wav) + mel + 14000.0 * fine

    reference = separate(est)
    reference_grad, = torch.autograd.grad(reference, est)
    torch.testing.assert_close(shared["total"], reference, rtol=1e-5, atol=1e-6)
    # summed in another order (one STFT backward for both terms): float32 rounding, 1e-4 of the largest gradient
    torch.testing.assert_close(shared_grad, reference_grad, rtol=1e-4, atol=1e-4 * reference_grad.abs().max().item())
    spectra = Spectra(wav)
    assert multi_resolution_mel_loss(spectra, est.detach(), 24000).item() > 0 and len(spectra._magnitudes) == 7
    first = spectra(1024)
    assert fine_spectral_loss(spectra, est.detach(), (1024,)).item() > 0 and spectra(1024) is first   # reused


def test_frame_energy_term_prices_a_level_error_by_its_log_ratio():
    """Half the amplitude everywhere is log(4) per frame whatever the signal; weighted into the total; validated."""
    from nextscale.tokenizer.losses import frame_energy_loss

    g = torch.Generator().manual_seed(4)
    wav = 0.1 * torch.randn(2, 1, 24000, generator=g)
    assert frame_energy_loss(wav, 0.5 * wav).item() == pytest.approx(math.log(4.0), rel=1e-3)   # a soft floor of 1e-6
    assert frame_energy_loss(wav, wav).item() == 0.0
    with pytest.raises(ConfigError, match="loss.energy_weight"):
        LossConfig(energy_weight=-1.0)
    terms = GeneratorLoss(LossConfig(adversarial=False, energy_weight=5.0))(
        wav, SATOutput(0.5 * wav, [], torch.tensor(0.0), None, None))
    assert terms["energy"].item() == pytest.approx(math.log(4.0), rel=1e-3)
    assert terms["total"].item() == pytest.approx((0.1 * terms["time"] + terms["mel"] + 5 * terms["energy"]).item(), rel=1e-6)


def test_magnitude_matches_complex_abs_forward_and_backward_with_zero_gradient_at_zero():
    from nextscale.tokenizer.mel import magnitude

    gen = torch.Generator().manual_seed(0)
    spec = torch.complex(torch.randn(3, 17, 9, generator=gen, dtype=torch.float64),
                         torch.randn(3, 17, 9, generator=gen, dtype=torch.float64))
    spec[0, 0, :4] = 0                                       # silent bins (digital silence in a clip)
    weights = torch.rand(3, 17, 9, generator=gen, dtype=torch.float64)
    grads = []
    for fn in (torch.abs, magnitude):
        leaf = spec.clone().requires_grad_()
        value = fn(leaf)
        (value * weights).sum().backward()
        grads.append((value.detach(), leaf.grad))
    (ref, ref_grad), (got, got_grad) = grads
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(got_grad, ref_grad, rtol=1e-12, atol=1e-15)
    assert torch.all(got_grad[0, 0, :4] == 0) and torch.isfinite(got_grad).all()
    assert torch.autograd.gradcheck(magnitude, (spec[1:].clone().requires_grad_(),))
    real = torch.randn(4, dtype=torch.float64)
    torch.testing.assert_close(magnitude(real), real.abs())    # a real input is its plain abs


def test_compress_is_the_floored_power_with_its_gradient():
    from nextscale.tokenizer.losses import compress

    x = torch.tensor([0.0, 1e-12, 1e-3, 0.5, 2.0, 300.0], dtype=torch.float64, requires_grad=True)
    compress(x, 0.3).sum().backward()
    floored = x.detach().clamp_min(1e-8)
    torch.testing.assert_close(compress(x.detach(), 0.3), floored ** 0.3, rtol=1e-12, atol=0)
    expected_grad = torch.where(x.detach() >= 1e-8, 0.3 * floored ** -0.7, torch.zeros_like(floored))
    torch.testing.assert_close(x.grad, expected_grad, rtol=1e-12, atol=0)
