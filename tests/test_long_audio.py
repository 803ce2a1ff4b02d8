"""Audio of any length through SAT: the codec runs over the whole signal, MSRQ window by window,
the decoder once over the joined latent; checked against that computation written out by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nextscale.errors import ConfigError
from nextscale.eval.joins import join_discontinuity, join_mask, join_ratio
from nextscale.tokenizer.codec_io import decode_codes, encode_audio, load_codes, save_codes
from nextscale.tokenizer.model import SAT, SATConfig
from tiny_models import tiny_sat

FOURIER = dict(codec="fourier", sample_rate=8000, hop=80, n_fft=240, dimension=16, latent_dim=8, codebook_size=32,
               convnext_width=32, convnext_layers=1, schedule="quadratic", num_scales=4, phi_count=2, kmeans_iters=5,
               clip_seconds=0.25)


def tiny_fourier() -> SAT:
    torch.manual_seed(0)
    sat = SAT(SATConfig(**FOURIER))
    with torch.no_grad():
        sat.train()(0.3 * torch.randn(4, 1, sat.clip_samples))
    return sat.eval()


def by_hand(sat: SAT, wav: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The windowed reference for one (1, S) signal: pad to whole windows, encoder over everything,
    each window's latent quantised on its own, decoder over the windows' latents side by side."""
    windows = -(-wav.shape[-1] // (sat.num_frames * sat.hop_length))
    padded = wav.new_zeros(1, 1, windows * sat.num_frames * sat.hop_length)
    padded[..., : wav.shape[-1]] = wav
    z = sat.encoder(padded)
    T = sat.num_frames
    per_window = [sat.quantizer.encode(z[..., w * T:(w + 1) * T]) for w in range(windows)]
    codes = [torch.cat([pw[k] for pw in per_window], dim=1) for k in range(sat.num_scales)]
    latent = torch.cat([sat.quantizer.decode(pw) for pw in per_window], dim=-1)
    return codes, sat.decoder(latent)[..., : wav.shape[-1]]


@pytest.mark.parametrize("make", [tiny_sat, tiny_fourier], ids=["seanet", "fourier"])
@torch.no_grad()
def test_long_encode_and_decode_equal_the_windowed_reference(make):
    sat = make().double()          # float64: batched and per-window nearest-code searches round alike
    torch.manual_seed(1)
    wav = 0.3 * torch.randn(1, 1, int(2.5 * sat.clip_samples), dtype=torch.float64)
    codes = sat.encode(wav)
    ref_codes, ref_audio = by_hand(sat, wav)
    assert [tuple(c.shape) for c in codes] == [(1, 3 * n) for n in sat.scales]
    assert all(torch.equal(a, b) for a, b in zip(codes, ref_codes))
    audio = sat.decode(codes, length=wav.shape[-1])
    assert audio.shape == wav.shape
    torch.testing.assert_close(audio, ref_audio, rtol=1e-9, atol=1e-10)
    assert sat.decode(codes).shape[-1] == 3 * sat.clip_samples       # default: whole windows


@torch.no_grad()
def test_batch_rows_stay_apart_and_one_window_is_the_clip_api():
    sat = tiny_fourier().double()
    torch.manual_seed(2)
    a, b = (0.3 * torch.randn(1, 1, 2 * sat.clip_samples, dtype=torch.float64) for _ in range(2))
    both = sat.encode(torch.cat([a, b]))
    for row, alone in enumerate((sat.encode(a), sat.encode(b))):
        assert all(torch.equal(c[row:row + 1], d) for c, d in zip(both, alone))
    # float64, but batched and single-row BLAS kernels sum in different orders (6e-10 apart on AVX-512 Xeons)
    torch.testing.assert_close(sat.decode(both)[1:], sat.decode(sat.encode(b)), rtol=1e-7, atol=1e-8)
    clip = a[..., : sat.clip_samples]
    codes = sat.encode(clip)
    assert [tuple(c.shape) for c in codes] == [(1, n) for n in sat.scales]
    torch.testing.assert_close(sat.decode(codes), sat(clip).audio, rtol=1e-9, atol=1e-10)


@torch.no_grad()
def test_joins_are_decoded_in_one_pass_not_as_independent_chunks():
    """Chunked decoding restarts the decoder at every window; the joined pass must differ from it
    right at a join (the decoder sees across it) while a short clip stays one window."""
    sat = tiny_fourier()
    torch.manual_seed(3)
    wav = 0.3 * torch.randn(1, 1, 2 * sat.clip_samples)
    codes = sat.encode(wav)
    joined = sat.decode(codes)
    chunks = torch.cat([sat.decode([c[:, w * n:(w + 1) * n] for c, n in zip(codes, sat.scales)])
                        for w in range(2)], dim=-1)
    join = sat.clip_samples
    around = slice(join - sat.hop_length, join + sat.hop_length)
    assert (joined[..., around] - chunks[..., around]).abs().max() > 1e-4
    assert sat.num_windows(1) == 1 and sat.num_windows(sat.clip_samples + 1) == 2


def test_long_codes_round_trip_through_a_file(tmp_path):
    sat = tiny_fourier()
    torch.manual_seed(4)
    wav = 0.3 * torch.randn(1, int(3.2 * sat.clip_samples))
    codes = encode_audio(sat, wav)
    assert [tuple(c.shape) for c in codes] == [(4, n) for n in sat.scales]
    path = save_codes(tmp_path / "long.safetensors", sat, codes, wav.shape[-1])
    loaded, num = load_codes(path, sat)
    assert num == wav.shape[-1] and all(torch.equal(a, b) for a, b in zip(codes, loaded))
    audio = decode_codes(sat, loaded, num)
    assert audio.shape == wav.shape
    torch.testing.assert_close(audio, by_hand(sat, wav[None])[1][0], rtol=1e-5, atol=1e-6)


def test_codes_that_do_not_cover_the_same_windows_fail_clearly():
    sat = tiny_fourier()
    codes = sat.encode(torch.zeros(1, 1, 2 * sat.clip_samples))
    with pytest.raises(ConfigError, match=r"codes\[1\]: .* is not 2 windows"):
        sat.decode([codes[0], codes[1][:, : sat.scales[1]]])
    with pytest.raises(ConfigError, match=r"codes\[0\]: expected shape \(B, W \* 1\)"):
        sat.decode([codes[0][:, :0]])
    with pytest.raises(ConfigError, match=r"codes\[2\]: expected shape \(B, W \* "):
        sat.decode([codes[0], codes[1], codes[2][:, :-1]])
    with pytest.raises(ConfigError, match=r"codes: expected 1\.\.4 scales, got 5"):
        sat.decode(codes + codes[:1])


# ---- the join metric ------------------------------------------------------------------------

def test_join_ratio_on_hand_built_changes():
    changes = np.array([1.0, 1.0, 5.0, 1.0, 1.0, 5.0, 1.0])
    mask = changes == 5.0
    out = join_ratio(changes, mask)
    assert out["ratio"] == pytest.approx(5.0) and out["at_joins"] == 5.0 and out["elsewhere"] == 1.0
    assert np.isnan(join_ratio(changes, np.zeros(7, dtype=bool))["ratio"])
    # change t is centred at (t + 0.5) * hop: with hop 10 and a join at 50, reach 6 takes t = 4 (45) and 5 (55)
    assert join_mask(10, [50], hop=10, reach=6).nonzero()[0].tolist() == [4, 5]
    with pytest.raises(ConfigError, match="7 changes but a mask of 3"):
        join_ratio(changes, np.zeros(3, dtype=bool))


def test_join_metric_is_one_for_a_seamless_tone_and_high_for_a_jump_at_every_join():
    sr, window = 24000, 6000
    t = torch.arange(4 * window) / sr
    tone = 0.3 * torch.sin(2 * torch.pi * 440.0 * t)
    assert join_discontinuity(tone, sr, window)["ratio"] == pytest.approx(1.0, abs=0.2)
    jumps = tone.clone()
    for w in range(1, 4):
        jumps[w * window:] *= -1            # a phase flip at each join: a click the ear hears
    assert join_discontinuity(jumps, sr, window)["ratio"] > 3.0
    with pytest.raises(ConfigError, match="no join"):
        join_discontinuity(tone[:window], sr, window)
    with pytest.raises(ConfigError, match="window_samples must be >= 1, got 0"):
        join_discontinuity(tone, sr, 0)
