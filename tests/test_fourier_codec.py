"""The Fourier codec behind MSRQ: framing contract, exact inverse STFT, eval == encode/decode,
training lowers the mel loss, save/load is bitwise, bad configs fail clearly, SEANet untouched."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nextscale.config import load_config
from nextscale.errors import ConfigError
from nextscale.tokenizer.fourier import FourierDecoder, FourierEncoder, MultiSTFT, SameSTFT, frequency_deviation
from nextscale.tokenizer.model import SAT, SATConfig
from nextscale.tokenizer.seanet import SEANetEncoder
from nextscale.train.tokenizer import load_sat_train_config
from tiny_fourier import TINY, train_tiny

def tiny_fourier_sat(clip_seconds: float = 0.25, seed: int = 0) -> SAT:
    torch.manual_seed(seed)
    sat = SAT(SATConfig(**TINY, clip_seconds=clip_seconds))
    with torch.no_grad():   # one training pass initialises the codebooks from data, as training does
        sat.train()(0.3 * torch.randn(4, 1, sat.clip_samples))
    return sat.eval()


@pytest.mark.parametrize("samples", [1, 79, 80, 81, 2000, 12345])
def test_same_stft_inverts_exactly_for_any_length(samples):
    stft = SameSTFT(240, 80).double()
    x = torch.randn(2, 1, samples, dtype=torch.float64)
    spec = stft(x)
    frames = math.ceil(samples / 80)
    assert spec.shape == (2, 121, frames)
    y = stft.inverse(spec)
    assert y.shape == (2, 1, frames * 80)
    # the right-hand padding was zeros; everything up to the input's length comes back
    torch.testing.assert_close(y[..., :samples], x, atol=1e-10, rtol=0)


def test_same_stft_matches_numpy_frames():
    """Frame t of the spectrum is the rfft of the Hann-windowed samples [t*hop - pad, t*hop - pad + n_fft)."""
    n_fft, hop = 240, 80
    pad = (n_fft - hop) // 2
    x = np.random.default_rng(0).standard_normal(800)
    spec = SameSTFT(n_fft, hop).double()(torch.from_numpy(x)[None, None])[0].numpy()
    padded = np.pad(x, pad, mode="reflect")
    window = np.hanning(n_fft + 1)[:-1]        # periodic Hann, as torch.hann_window
    for t in (0, 3, 9):
        expected = np.fft.rfft(padded[t * hop: t * hop + n_fft] * window)
        np.testing.assert_allclose(spec[:, t], expected, rtol=1e-5, atol=1e-5)   # the window is float32


@pytest.mark.parametrize("clip_seconds", [0.1, 0.25, 0.37])
def test_latent_has_the_schedules_frame_count_for_any_clip_length(clip_seconds):
    sat = tiny_fourier_sat(clip_seconds)
    frames = math.ceil(sat.clip_samples / 80)
    assert sat.num_frames == frames == sat.scales[-1]
    wav = 0.1 * torch.randn(3, 1, sat.clip_samples)
    assert sat.encode_latent(wav).shape == (3, 16, frames)
    codes = sat.encode(wav)
    assert [c.shape for c in codes] == [(3, n) for n in sat.scales]
    assert sat.decode(codes).shape == wav.shape
    assert sat.decode(codes[:2]).shape == wav.shape          # coarse preview, same length


def test_decode_of_encode_equals_the_eval_forward_pass():
    sat = tiny_fourier_sat()
    wav = 0.2 * torch.randn(2, 1, sat.clip_samples)
    with torch.no_grad():
        out = sat(wav)
    torch.testing.assert_close(sat.decode(sat.encode(wav)), out.audio, atol=1e-6, rtol=0)
    assert all(torch.equal(a, b) for a, b in zip(sat.encode(wav), out.codes))


def test_encoder_sees_phase_and_decoder_output_depends_on_the_latent():
    torch.manual_seed(0)
    enc = FourierEncoder(240, 80, width=32, layers=1, mlp_ratio=2.0, dimension=8, phase=True)
    x = torch.randn(1, 1, 800)
    assert not torch.allclose(enc(x), enc(-x))               # same magnitudes, phase flipped by pi
    magnitude_only = FourierEncoder(240, 80, width=32, layers=1, mlp_ratio=2.0, dimension=8)
    torch.testing.assert_close(magnitude_only(x), magnitude_only(-x))
    dec = FourierDecoder(240, 80, width=32, layers=1, mlp_ratio=2.0, dimension=8)
    z = torch.randn(2, 8, 10)
    a, b = dec(z)
    assert a.shape == (1, 800) and not torch.allclose(a, b)


@pytest.mark.parametrize("phase", ["direct", "partials", "framewise"])
def test_tiny_fourier_sat_lowers_mel_loss_by_40_percent(tmp_path, phase):
    rows = train_tiny(tmp_path, {"fourier_phase": phase})
    first, last = rows[0]["mel"], rows[-1]["mel"]
    assert last <= 0.6 * first, (first, last)
    assert SAT.from_pretrained(tmp_path / "tokenizer").config.codec == "fourier"


def test_save_and_load_are_bitwise(tmp_path):
    sat = tiny_fourier_sat()
    sat.save_pretrained(tmp_path / "sat")
    loaded = SAT.from_pretrained(tmp_path / "sat")
    assert loaded.config == sat.config
    for (name, a), (_, b) in zip(sat.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    wav = 0.2 * torch.randn(2, 1, sat.clip_samples)
    codes = sat.encode(wav)
    assert all(torch.equal(a, b) for a, b in zip(codes, loaded.encode(wav)))
    assert torch.equal(sat.decode(codes), loaded.decode(codes))


def test_bad_codec_names_and_framing_fail_clearly():
    with pytest.raises(ConfigError, match=r"model\.codec.*'seanet', 'fourier'.*'fourir'"):
        load_sat_train_config({"model": {"codec": "fourir"}})
    with pytest.raises(ConfigError, match=r"model\.codec"):
        SATConfig(codec="wavelet")
    with pytest.raises(ConfigError, match=r"model\.hop.*product of model\.ratios \(320\).*256"):
        SATConfig(codec="seanet", hop=256)
    with pytest.raises(ConfigError, match=r"n_fft >= hop"):
        SATConfig(**TINY | {"n_fft": 40})
    with pytest.raises(ConfigError, match=r"n_fft - hop must be even"):
        SATConfig(**TINY | {"n_fft": 241})
    with pytest.raises(ConfigError, match=r"convnext_layers"):
        SATConfig(**TINY | {"convnext_layers": 0})
    sat = tiny_fourier_sat(0.25)
    with pytest.raises(ConfigError, match=r"W \* 25\) for W windows"):
        sat.decode_latent(torch.zeros(1, 8, 30))


def test_fourier_hop_defaults_to_the_ratios_product_and_seanet_stays_the_default():
    cfg = load_config({"codec": "fourier"}, SATConfig)
    assert cfg.hop_length == 320 and cfg.num_frames == 75
    default = SAT(SATConfig(n_filters=4, dimension=8, latent_dim=4, codebook_size=8, num_scales=4, lstm_layers=0))
    assert default.config.codec == "seanet" and isinstance(default.encoder, SEANetEncoder)
    assert all(k.split(".")[0] in ("encoder", "decoder", "quantizer") for k in default.state_dict())


@pytest.mark.parametrize("phase", ["cumulative", "centred"])
def test_cumulative_phase_with_zero_deviation_gives_the_closed_form_sinusoid(phase):
    """One bin k, constant magnitude m, no deviation: every frame's phase advance matches the hop, so each
    frame holds the same (2m / n_fft) cos(2 pi k (s + pad + hop) / n_fft + c) at sample s (c = 0, or
    -pi k (n_fft - 1) / n_fft centred), and overlap-add only scales it by sum(window) / sum(window^2) of the
    frames covering s (exact-inverse test above)."""
    n_fft, hop, k, m, frames = 240, 80, 5, 3.0, 12
    dec = FourierDecoder(n_fft, hop, width=8, layers=1, mlp_ratio=1.0, dimension=4, phase=phase).double()
    log_magnitude = torch.full((1, n_fft // 2 + 1, frames), -60.0, dtype=torch.float64)
    log_magnitude[:, k] = math.log(m)
    audio = dec.synthesize(log_magnitude, dec.phase_of(torch.zeros_like(log_magnitude)))[0, 0]
    s = torch.arange(frames * hop, dtype=torch.float64)
    pad = (n_fft - hop) // 2
    window = dec.stft.parts[0].window.double()
    gain = [dec.stft.parts[0]._overlap_add(w.expand(1, frames, -1))[0, pad: pad + frames * hop] for w in (window, window ** 2)]
    offset = -math.pi * k * (n_fft - 1) / n_fft if phase == "centred" else 0.0
    expected = 2 * m / n_fft * torch.cos(2 * math.pi * k * (s + pad + hop) / n_fft + offset) * gain[0] / gain[1]
    torch.testing.assert_close(audio, expected, atol=1e-6, rtol=0)      # float32 window and bin advances
    direct = FourierDecoder(n_fft, hop, width=8, layers=1, mlp_ratio=1.0, dimension=4, phase="direct").double()
    incoherent = direct.synthesize(log_magnitude, torch.rand_like(log_magnitude) * 2 * math.pi)[0, 0]
    assert (incoherent - expected).abs().max() > 0.1 * expected.abs().max()


def test_centred_phase_gives_back_a_steady_tone_at_its_level_where_cumulative_loses_it():
    """A 1234.5 Hz tone (between bins) decoded from its exact STFT magnitudes, every bin advancing at the tone's
    frequency: centred phase puts the partial's bins in the relative phase of a symmetric window and the
    inverse gives the tone back; cumulative starts them in phase, so they add at the frames' edges, where
    the window is ~0, and the tone comes back > 6 dB quiet (15 dB here)."""
    n_fft, hop, sr, f = 1024, 320, 24000, 1234.5
    s = torch.arange(sr, dtype=torch.float64)
    tone = (0.3 * torch.cos(2 * math.pi * f * s / sr)).reshape(1, 1, -1)
    inner = slice(2 * n_fft, -2 * n_fft)                       # away from the clip's reflect-padded ends
    levels = {}
    for phase in ("cumulative", "centred"):
        dec = FourierDecoder(n_fft, hop, width=8, layers=1, mlp_ratio=1.0, dimension=4, phase=phase).double()
        spec = dec.stft(tone)
        deviation = (2 * math.pi * f * hop / sr - dec.bin_advance.double()).expand_as(spec.real)
        out = dec.synthesize(spec.abs().clamp(min=1e-30).log(), dec.phase_of(deviation))
        levels[phase] = 10 * math.log10(out[..., inner].square().mean() / tone[..., inner].square().mean())
    assert abs(levels["centred"]) < 0.05, levels
    assert levels["cumulative"] < -6.0, levels


@pytest.mark.parametrize("delay", [0, 100, -37])
def test_framewise_phase_makes_each_frame_symmetric_about_its_centre_shifted_by_a_linear_tilt(delay):
    """Framewise phase with a flat magnitude: a head phase of -2 pi k d / N makes every frame an impulse
    d samples after the window's centre, i.e. a frame symmetric about (N - 1) / 2 + d (circularly); d = 0 is
    what an untrained head gives. Checked on the frames' own inverse DFT, frame by frame (no overlap-add)."""
    n_fft = 256
    dec = FourierDecoder(n_fft, 64, width=8, layers=1, mlp_ratio=1.0, dimension=4, phase="framewise").double()
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[None, :, None]
    head_phase = (-2 * math.pi * k * delay / n_fft).expand(1, -1, 3)              # three frames, same tilt
    frames = torch.fft.irfft(torch.polar(torch.ones_like(head_phase), dec.phase_of(head_phase)), n=n_fft, dim=1)
    n = torch.arange(n_fft)
    mirrored = (2 * delay + n_fft - 1 - n) % n_fft                                   # reflection about centre + d
    torch.testing.assert_close(frames, frames[:, mirrored], atol=1e-6, rtol=0)      # float32 centre phases
    assert int(frames[0, :, 0].argmax()) in {(n_fft // 2 - 1 + delay) % n_fft, (n_fft // 2 + delay) % n_fft}
    # the phase is the frame's own: frames do not accumulate one another's (unlike cumulative / centred)
    torch.testing.assert_close(frames[..., 0], frames[..., 2], atol=1e-12, rtol=0)


def test_two_resolution_stft_stacks_bins_and_its_inverse_sums_the_exact_inverses():
    from nextscale.tokenizer.fourier import MultiSTFT, SameSTFT

    wav = torch.randn(2, 1, 1600, dtype=torch.float64)
    one, two = MultiSTFT([240], 80).double(), MultiSTFT([240, 560], 80).double()
    torch.testing.assert_close(one(wav), SameSTFT(240, 80).double()(wav))
    spec = two(wav)
    assert spec.shape == (2, 121 + 281, 20)
    torch.testing.assert_close(spec[:, 121:], SameSTFT(560, 80).double()(wav))
    torch.testing.assert_close(two.inverse(spec), 2 * wav)         # each resolution alone inverts exactly
    torch.testing.assert_close(two.bin_advance()[121 + 7, 0].double(),
                               torch.tensor(math.remainder(2 * math.pi * 7 * 80 / 560, 2 * math.pi) % (2 * math.pi),
                                            dtype=torch.float64), atol=1e-6, rtol=0)


def test_sat_with_a_long_second_stft_codes_and_decodes_and_rejects_a_shorter_one():
    from nextscale.errors import ConfigError
    from nextscale.tokenizer.model import SAT, SATConfig

    small = dict(codec="fourier", n_fft=480, hop=240, sample_rate=16000, clip_seconds=0.48, convnext_width=16,
                 convnext_layers=1, dimension=8, latent_dim=8, codebook_size=16, num_scales=3, kmeans_iters=1,
                 fourier_phase="cumulative")
    sat = SAT(SATConfig(**small, fourier_long_n_fft=960)).eval()
    assert sat.decoder.head.out_channels == 2 * (241 + 481)
    wav = 0.1 * torch.randn(1, 1, sat.clip_samples)
    with torch.no_grad():
        out = sat(wav)
        torch.testing.assert_close(sat.decode(sat.encode(wav)), out.audio)
    assert out.spectrum[0].shape[1] == 241 + 481
    with pytest.raises(ConfigError, match="fourier_long_n_fft"):
        SATConfig(**small, fourier_long_n_fft=480)
    with pytest.raises(ConfigError, match="n_fft - hop must be even"):
        SATConfig(**small, fourier_long_n_fft=961)


@pytest.mark.parametrize("frequency", [133.0, 1010.5, 2999.0])
def test_frequency_deviation_of_a_steady_sinusoid_is_its_offset_from_the_bin_centre(frequency):
    stft = MultiSTFT([1024], 320)
    t = torch.arange(24000, dtype=torch.float64) / 24000
    spec = stft((0.5 * torch.sin(2 * math.pi * frequency * t)).float()[None, None])
    deviation = frequency_deviation(spec, stft.bin_advance())
    k = round(frequency * 1024 / 24000)
    expected = math.remainder(2 * math.pi * 320 * (frequency / 24000 - k / 1024), 2 * math.pi)
    inner = deviation[0, k, 5:-5]                                  # frames away from the edges
    torch.testing.assert_close(torch.angle(inner), torch.full_like(inner.real, expected), atol=2e-3, rtol=0)
    assert bool((inner.abs() > 0.99).all())                       # a loud partial: weight ~1
    assert bool((deviation[0, :, 0] == 0).all())                  # the first frame has no advance
    far = deviation[0, min(k + 60, 512), 5:-5].abs()              # no energy there: faded out
    assert bool((far < 0.05).all())


def test_encoder_with_instantaneous_frequency_sees_pitch_inside_a_bin_and_round_trips(tmp_path):
    t = torch.arange(800) / 8000
    # two partials 12 Hz apart inside one 33 Hz bin (bin 30, 1000 Hz): their advance over the 80-sample hop
    # differs by 2 pi 80 12 / 8000 rad, which the deviation channels carry and log-magnitudes do not
    low, high = (torch.sin(2 * math.pi * f * t)[None, None] for f in (1000.0, 1012.0))
    enc = FourierEncoder(240, 80, width=32, layers=1, mlp_ratio=2.0, dimension=8, instantaneous_frequency=True)
    bins = 121
    assert enc.backbone.embed.in_channels == 3 * bins
    a, b = enc.features(low)[0], enc.features(high)[0]
    angle = lambda f: torch.atan2(f[2 * bins + 30, 2:-2], f[bins + 30, 2:-2])       # imag, real of bin 30
    torch.testing.assert_close(angle(b) - angle(a), torch.full((6,), 2 * math.pi * 80 * 12 / 8000), atol=1e-2, rtol=0)
    sat = SAT(SATConfig(**TINY, clip_seconds=0.25, fourier_encoder_if=True)).eval()
    sat.save_pretrained(tmp_path / "sat")
    loaded = SAT.from_pretrained(tmp_path / "sat")
    wav = 0.2 * torch.randn(1, 1, sat.clip_samples)
    assert loaded.config.fourier_encoder_if
    assert torch.equal(sat.decode(sat.encode(wav)), loaded.decode(loaded.encode(wav)))
