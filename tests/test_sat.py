"""SAT model: lengths, encode/decode/forward consistency, previews, save/load, config errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nextscale.checkpoint import read_model_files
from nextscale.config import CONFIG_DIR as CONFIGS   # the packaged YAMLs
from nextscale.errors import ConfigError
from nextscale.tokenizer.model import SAT, SATConfig

TINY = dict(n_filters=4, dimension=8, latent_dim=4, codebook_size=16, lstm_layers=1, num_scales=4,
            clip_seconds=0.1, phi_count=2, kmeans_iters=3)


def tiny_sat(**kw) -> SAT:
    """A tiny SAT whose codebooks were k-means initialised by one training pass."""
    torch.manual_seed(0)
    sat = SAT(SATConfig(**{**TINY, **kw}))
    sat.train()
    sat(torch.randn(3, 1, sat.clip_samples) * 0.3)
    return sat.eval()


@pytest.mark.parametrize("clip,expected", [(0.1, [1, 2, 4, 8]), (0.2, [1, 3, 8, 15]), (0.5, [1, 7, 19, 38])])
def test_code_lengths_follow_the_schedule(clip, expected):
    sat = tiny_sat(clip_seconds=clip)
    assert sat.num_frames == expected[-1] and sat.scales == expected
    codes = sat.encode(torch.randn(2, 1, sat.clip_samples))
    assert [tuple(c.shape) for c in codes] == [(2, n) for n in expected]
    assert all(c.dtype == torch.long and int(c.max()) < 16 for c in codes)


def test_decode_of_encode_equals_forward_and_keeps_length():
    sat = tiny_sat()
    x = torch.randn(2, 1, sat.clip_samples) * 0.5
    with torch.no_grad():
        out = sat(x)
    codes = sat.encode(x)
    assert all(torch.equal(a, b) for a, b in zip(codes, out.codes))
    recon = sat.decode(codes)
    assert recon.shape == x.shape
    assert torch.equal(recon, out.audio)
    with torch.no_grad():
        assert torch.equal(sat.decode_latent(sat.quantizer.f_hat_from_codes(codes)), recon)


def test_decode_of_all_scales_is_full_decode_and_prefixes_are_previews():
    sat = tiny_sat()
    codes = sat.encode(torch.randn(1, 1, sat.clip_samples))
    full = sat.decode(codes)
    assert torch.equal(sat.decode(codes[:len(codes)]), full)
    coarse = sat.decode(codes[:1])
    assert coarse.shape == full.shape and not torch.allclose(coarse, full)
    with torch.no_grad():
        expected = sat.decoder(sat.quantizer.project_out(sat.quantizer.embed(0, codes[0])))[..., :2400]
    assert torch.allclose(coarse, expected, atol=1e-6)


def test_properties():
    sat = tiny_sat()
    assert (sat.hop_length, sat.sample_rate, sat.codebook_size, sat.latent_dim) == (320, 24000, 16, 4)
    assert sat.num_tokens == 15 and sat.clip_samples == 2400


def test_save_load_is_bitwise(tmp_path):
    sat = tiny_sat()
    sat.save_pretrained(tmp_path / "sat")
    _, header, _ = read_model_files(tmp_path / "sat", "sat")
    assert header["kind"] == "sat" and header["config"]["latent_dim"] == 4
    loaded = SAT.from_pretrained(tmp_path / "sat")
    a, b = sat.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(1, 1, sat.clip_samples)
    assert torch.equal(sat.decode(sat.encode(x)), loaded.decode(loaded.encode(x)))


def test_training_pass_gives_commit_loss_and_gradients():
    sat = tiny_sat()
    sat.train()
    out = sat(torch.randn(2, 1, sat.clip_samples) * 0.3)
    loss = (out.audio ** 2).mean() + out.commit_loss
    loss.backward()
    assert out.commit_loss.item() > 0
    assert sat.encoder.model[0].conv.parametrizations.weight.original1.grad.abs().sum() > 0
    assert out.usage.shape == (4,) and out.perplexity.shape == (4,)


def test_shipped_configs():
    paper = SAT.from_config(CONFIGS / "sat-paper.yaml")
    assert paper.scales == [1, 2, 4, 6, 9, 12, 16, 20, 25, 31, 37, 43, 50, 58, 66, 75] and paper.num_tokens == 455
    assert (paper.config.dimension, paper.latent_dim) == (1024, 64)
    d128 = SATConfig(**{**SAT.from_config(CONFIGS / "sat-paper-d128.yaml").config.__dict__})
    assert (d128.dimension, d128.latent_dim, d128.resolved_scales()[-1]) == (128, 128, 75)
    rvq = SAT.from_config(CONFIGS / "rvq-750.yaml")
    assert rvq.scales == [75] * 10 and rvq.num_tokens == 750 and len(rvq.quantizer.phis) == 0
    for name in ("sat-tiny", "rvq-tiny"):
        assert SAT.from_config(CONFIGS / f"{name}.yaml").num_parameters() < 2_000_000


@pytest.mark.parametrize("override,needle", [
    ({"phi_kernel": 8}, "phi_kernel: must be odd"),
    ({"schedule": "explicit", "scales": [1, 3, 2, 8]}, "strictly increasing"),
    ({"scales": [1, 2, 8]}, "needs model.schedule=explicit"),
    ({"num_scales": 16}, "strictly increasing"),
    ({"ratios": []}, "model.ratios"),
    ({"ema_decay": 1.5}, "ema_decay"),
    ({"n_filters": 5}, "divisible"),
])
def test_bad_configs_raise_clear_errors(override, needle):
    with pytest.raises(ConfigError, match=needle):
        SATConfig(**{**TINY, **override})


def test_unknown_key_and_bad_audio_are_rejected():
    with pytest.raises(ConfigError, match="unknown config key 'latent_dims'"):
        SAT.from_config({"model": {"latent_dims": 3}})
    sat = tiny_sat()
    with pytest.raises(ConfigError, match=r"expected mono audio of shape \(B, 1, S\)"):
        sat.encode(torch.randn(2, 2400))
    with pytest.raises(ConfigError, match="at least one audio sample"):
        sat.encode(torch.randn(1, 1, 0))
    with pytest.raises(ConfigError, match="expected float audio"):
        sat.encode(torch.zeros(1, 1, 320, dtype=torch.int16))


def test_fresh_seanet_passes_the_input_through():
    """At init the decoder's output must depend on its input: with PyTorch's default conv init the
    signal shrinks ~3x per layer and biases dominate, so every input gave the same audio (1e-7 apart)
    and a small SAT trained on CPU collapsed to silence."""
    torch.manual_seed(0)
    sat = SAT.from_config("sat-tiny")   # the small SEANet
    t = torch.arange(sat.clip_samples) / sat.sample_rate
    wav = torch.stack([0.3 * torch.sin(2 * torch.pi * f * t) for f in (110.0, 440.0, 1760.0, 3520.0)])[:, None]
    with torch.no_grad():
        latent = sat.encoder(wav)
        audio = sat.decoder(latent)
    spread = lambda x: float((x - x.mean(0)).pow(2).mean().sqrt() / x.pow(2).mean().sqrt())  # noqa: E731
    assert spread(latent) > 0.3 and spread(audio) > 0.1
    assert 0.01 < float(audio.pow(2).mean().sqrt()) < 10.0     # neither vanished nor exploded
