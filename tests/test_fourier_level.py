"""The Fourier decoder's level head: a per-frame gain on the output, trained by the frame-energy term alone."""
from __future__ import annotations

import torch

from nextscale.tokenizer.fourier import FourierDecoder
from nextscale.tokenizer.losses import GeneratorLoss, LossConfig, frame_energy_loss
from nextscale.tokenizer.model import SAT, SATConfig

from tiny_fourier import TINY, train_tiny


def decoder(level: bool, harmonics: int = 0) -> FourierDecoder:
    torch.manual_seed(0)
    return FourierDecoder(240, 80, width=16, layers=1, mlp_ratio=2.0, dimension=8, phase="centred",
                          harmonics=harmonics, sample_rate=8000, level=level)


def test_a_new_level_head_changes_nothing():
    """Zero at initialisation: the same audio and spectrum as the decoder without one, the raw audio equal to it."""
    z = torch.randn(2, 8, 10)
    plain, levelled = decoder(False, harmonics=4), decoder(True, harmonics=4)
    levelled.load_state_dict(plain.state_dict(), strict=False)
    a, b = plain.decode_with_spectrum(z), levelled.decode_with_spectrum(z)
    assert a.raw_audio is None
    torch.testing.assert_close(b.audio, a.audio)
    torch.testing.assert_close(b.raw_audio, a.audio)
    torch.testing.assert_close(b.spectrum[0], a.spectrum[0])


def test_the_gain_scales_each_frame_of_the_spectrum():
    """A constant log-gain g multiplies the output by exp(g) (the iSTFT is linear); the raw audio keeps its level."""
    z = torch.randn(1, 8, 12)
    dec = decoder(True)
    raw = dec.decode_with_spectrum(z).audio
    torch.nn.init.constant_(dec.level.conv.bias, 0.5)
    out = dec.decode_with_spectrum(z)
    torch.testing.assert_close(out.raw_audio, raw)
    torch.testing.assert_close(out.audio, raw * torch.exp(torch.tensor(0.5)), atol=1e-6, rtol=1e-5)
    log_magnitude, _ = dec.predict(z)
    torch.testing.assert_close(log_magnitude, out.spectrum[0] + 0.5)


def test_only_the_level_term_reaches_the_level_head_and_nothing_else_reaches_through_it():
    torch.manual_seed(0)
    sat = SAT(SATConfig(**TINY, clip_seconds=0.25, fourier_phase="centred", fourier_level=True))
    wav = 0.3 * torch.randn(2, 1, sat.clip_samples)
    out = sat(wav)
    loss = GeneratorLoss(LossConfig(sample_rate=8000, mel_min_exponent=5, mel_max_exponent=8))
    terms = loss(wav, out)
    torch.testing.assert_close(terms["level"], frame_energy_loss(wav, out.audio))
    level_params = list(sat.decoder.level.parameters())
    others = [p for n, p in sat.named_parameters() if not n.startswith("decoder.level.")]
    level_grads = torch.autograd.grad(terms["level"], level_params + others, allow_unused=True, retain_graph=True)
    assert all(g is not None and g.abs().sum() > 0 for g in level_grads[:len(level_params)])
    assert all(g is None or g.abs().sum() == 0 for g in level_grads[len(level_params):])
    rest = terms["time"] + terms["mel"] + terms["commit"]
    assert all(g is None for g in torch.autograd.grad(rest, level_params, allow_unused=True))


def test_a_quiet_decoder_is_brought_to_the_inputs_level(tmp_path):
    """Trained 100 steps, the level term falls by half, and the saved model's round trip (gain applied) is
    closer to the input's level than the raw output; eval forward equals decode(encode)."""
    rows = train_tiny(tmp_path, {"fourier_phase": "centred", "fourier_level": True})
    assert rows[-1]["level"] <= 0.5 * rows[0]["level"], (rows[0]["level"], rows[-1]["level"])
    sat = SAT.from_pretrained(tmp_path / "tokenizer")
    assert sat.config.fourier_level and sat.decoder.level.conv.weight.abs().sum() > 0
    from nextscale.data.synth import synth_clip

    wav = torch.stack([torch.from_numpy(synth_clip(i, 5, 8000, 0.25).audio)[None] for i in range(24)]).float()
    with torch.no_grad():
        out = sat(wav)
    energy = {name: frame_energy_loss(wav, audio) for name, audio in (("gained", out.audio), ("raw", out.raw_audio))}
    assert energy["gained"] < energy["raw"], energy
    torch.testing.assert_close(sat.decode(sat.encode(wav)), out.audio, atol=1e-6, rtol=0)


def test_the_inference_forward_equals_the_training_pass_audio():
    """`forward` (what `SAT.decode` runs) renders one gained inverse STFT; it equals decode_with_spectrum's audio."""
    z = torch.randn(2, 8, 10)
    dec = decoder(True, harmonics=4)
    torch.nn.init.normal_(dec.level.conv.weight, std=0.1)
    with torch.no_grad():
        torch.testing.assert_close(dec(z), dec.decode_with_spectrum(z).audio)
        assert not torch.allclose(dec(z), dec.decode_with_spectrum(z).raw_audio)
