"""Audio of any length through SAT: the codec runs over the whole signal, MSRQ window by window,
the decoder once over the joined latent; checked against that computation written out by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nextscale.errors import CheckpointError, ConfigError, DataError
from nextscale.eval.joins import join_discontinuity, join_mask, join_ratio
from nextscale.tokenizer.codec_io import decode_codes, encode_audio, load_codes, save_codes
from nextscale.tokenizer.layout import WindowLayout
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


def same_entries(sat: SAT, codes: list[torch.Tensor], other: list[torch.Tensor]) -> bool:
    """Codes name the same codebook entries. Not index equality: k-means on the tiny models' few
    coarse-scale vectors leaves duplicate entries, exact ties that batched and single-row kernels
    may break differently without changing anything decoded."""
    books = sat.quantizer.codebooks
    return all(torch.equal(books[k].embed[a], books[k].embed[b]) for k, (a, b) in enumerate(zip(codes, other)))


@pytest.mark.parametrize("make", [tiny_sat, tiny_fourier], ids=["seanet", "fourier"])
@torch.no_grad()
def test_long_encode_and_decode_equal_the_windowed_reference(make):
    sat = make().double()          # float64: batched and per-window nearest-code searches round alike
    torch.manual_seed(1)
    wav = 0.3 * torch.randn(1, 1, int(2.5 * sat.clip_samples), dtype=torch.float64)
    codes = sat.encode(wav)
    ref_codes, ref_audio = by_hand(sat, wav)
    assert [tuple(c.shape) for c in codes] == [(1, 3 * n) for n in sat.scales]
    assert same_entries(sat, codes, ref_codes)
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
        assert same_entries(sat, [c[row:row + 1] for c in both], alone)
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
    stored = load_codes(path, sat)
    loaded, num = stored.codes, stored.num_samples
    assert num == wav.shape[-1] and stored.overlap == 0 and all(torch.equal(a, b) for a, b in zip(codes, loaded))
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


# ---- overlapping windows, crossfaded ---------------------------------------------------------

def crossfade_by_hand(latents: list[torch.Tensor], overlap: int) -> torch.Tensor:
    """W window latents (B, C, T) -> (B, C, F), written out frame by frame: at shared frame i of o the later
    window weighs (i + 1/2) / o and the earlier one the rest."""
    T, stride = latents[0].shape[-1], latents[0].shape[-1] - overlap
    out = latents[0].new_zeros(*latents[0].shape[:2], (len(latents) - 1) * stride + T)
    for w, x in enumerate(latents):
        for t in range(T):
            weight = 1.0
            if w > 0 and t < overlap:
                weight = (t + 0.5) / overlap
            if w < len(latents) - 1 and t >= T - overlap:
                weight = 1 - (t - (T - overlap) + 0.5) / overlap
            out[..., w * stride + t] += weight * x[..., t]
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_crossfade_weights_sum_to_exactly_one(dtype):
    for T, overlap in ((25, 1), (25, 7), (25, 12), (75, 7), (75, 37)):
        layout = WindowLayout(T, overlap)
        for windows in (1, 2, 5):
            ones = layout.join(torch.ones(windows, 1, T, dtype=dtype), 1)
            assert ones.shape[-1] == layout.total_frames(windows) and torch.equal(ones, torch.ones_like(ones))
        rise = layout.fade_in()
        assert (rise > 0).all() and (rise < 1).all() and (rise.diff() > 0).all()


def test_layout_places_windows_every_t_minus_o_frames_and_names_bad_overlaps():
    layout = WindowLayout(75, 7)
    assert layout.stride == 68 and layout.total_frames(11) == 755 and layout.num_windows(750) == 11
    assert [layout.num_windows(f) for f in (1, 75, 76, 143, 144)] == [1, 1, 2, 2, 3]
    assert WindowLayout(75).num_windows(750) == 10 and layout.frame_spans(3) == [(68, 75), (136, 143)]
    assert layout.count(755) == 11 and layout.count(754) is None
    for bad in (-1, 38, 75, 2.5, True):
        with pytest.raises(ConfigError, match="overlap: "):
            WindowLayout(75, bad)


@pytest.mark.parametrize("overlap", [1, 5, 12])
@torch.no_grad()
def test_decode_of_overlapping_codes_equals_the_crossfade_by_hand(overlap):
    sat = tiny_fourier().double()             # T = 25 frames
    g = torch.Generator().manual_seed(overlap)
    windows = 3
    codes = [torch.randint(0, sat.codebook_size, (2, windows * n), generator=g) for n in sat.scales]
    per_window = [[c.view(2, windows, n)[:, w] for c, n in zip(codes, sat.scales)] for w in range(windows)]
    f_hat = crossfade_by_hand([sat.quantizer.f_hat_from_codes(pw) for pw in per_window], overlap)
    reference = sat.decoder(sat.quantizer.project_out(f_hat))
    audio = sat.decode(codes, overlap=overlap)
    assert audio.shape[-1] == sat.output_samples(windows, overlap) == (2 * (25 - overlap) + 25) * sat.hop_length
    torch.testing.assert_close(audio, reference[..., : audio.shape[-1]], rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(sat.decode_latent(f_hat, overlap=overlap), audio, rtol=1e-9, atol=1e-10)
    x = torch.randn(2 * windows, 3, 25, dtype=torch.float64, generator=g)    # the layout alone, to rounding
    torch.testing.assert_close(sat.layout(overlap).join(x, 2), crossfade_by_hand(list(x.view(2, windows, 3, 25)
                                                                                      .unbind(1)), overlap),
                               rtol=0, atol=1e-15)


@torch.no_grad()
def test_overlap_zero_is_todays_side_by_side_layout_bit_for_bit():
    sat = tiny_fourier()
    torch.manual_seed(5)
    wav = 0.3 * torch.randn(2, 1, int(2.5 * sat.clip_samples))
    codes = sat.encode(wav)
    assert all(torch.equal(a, b) for a, b in zip(codes, sat.encode(wav, overlap=0)))
    T = sat.num_frames
    rows = [c.reshape(-1, n) for c, n in zip(codes, sat.scales)]              # the layout before overlaps
    latent = sat.quantizer.decode(rows).reshape(2, -1, sat.config.dimension, T).transpose(1, 2).reshape(2, -1, 3 * T)
    assert torch.equal(sat.decode(codes, overlap=0), sat.decoder(latent)[..., : 3 * sat.clip_samples])


@torch.no_grad()
def test_overlapping_encode_quantises_the_windows_every_t_minus_o_frames():
    sat = tiny_fourier().double()
    torch.manual_seed(6)
    wav = 0.3 * torch.randn(1, 1, int(2.5 * sat.clip_samples), dtype=torch.float64)
    overlap, T = 5, sat.num_frames
    codes = sat.encode(wav, overlap=overlap)
    frames = -(-wav.shape[-1] // sat.hop_length)                               # 63 frames: windows at 0, 20, 40
    windows = 1 + -(-(frames - T) // (T - overlap))
    assert windows == 3 and [tuple(c.shape) for c in codes] == [(1, windows * n) for n in sat.scales]
    padded = torch.nn.functional.pad(wav, (0, (2 * (T - overlap) + T) * sat.hop_length - wav.shape[-1]))
    z = sat.encoder(padded)
    by_window = [sat.quantizer.encode(z[..., w * (T - overlap): w * (T - overlap) + T]) for w in range(windows)]
    assert all(torch.equal(c, torch.cat([bw[k] for bw in by_window], 1)) for k, c in enumerate(codes))
    assert sat.decode(codes, length=wav.shape[-1], overlap=overlap).shape == wav.shape


def test_overlapping_codes_round_trip_through_a_file_and_bad_files_are_named(tmp_path):
    from safetensors.torch import save_file

    sat = tiny_fourier()
    torch.manual_seed(7)
    wav = 0.3 * torch.randn(1, int(3.2 * sat.clip_samples))
    codes = encode_audio(sat, wav, overlap=10)
    assert codes[0].shape[0] == sat.num_windows(wav.shape[-1], 10) == 5            # 80 frames, every 15
    path = save_codes(tmp_path / "o.safetensors", sat, codes, wav.shape[-1], overlap=10)
    stored = load_codes(path, sat)
    assert stored.overlap == 10 and stored.num_samples == wav.shape[-1]
    assert all(torch.equal(a, b) for a, b in zip(codes, stored.codes))
    torch.testing.assert_close(decode_codes(sat, stored.codes, stored.num_samples, stored.overlap),
                               sat.decode([c.reshape(1, -1) for c in codes], wav.shape[-1], overlap=10)[0])
    with pytest.raises(ConfigError, match="at overlap 0 make 4 windows, the codes hold 5"):
        save_codes(tmp_path / "x.safetensors", sat, codes, wav.shape[-1])

    def write(name: str, overlap: str | None, rows: int = 5) -> str:
        meta = {"num_samples": str(wav.shape[-1])} | ({"overlap": overlap} if overlap is not None else {})
        save_file({f"codes_{k:02d}": c[:rows].contiguous() for k, c in enumerate(codes)}, str(tmp_path / name),
                  metadata=meta)
        return str(tmp_path / name)

    assert load_codes(write("before_overlaps.safetensors", None, rows=4), sat).overlap == 0   # files from before
    with pytest.raises(DataError, match="holds 5 windows, but its .* samples at overlap 0 make 4"):
        load_codes(write("mismatch.safetensors", "0"), sat)
    with pytest.raises(CheckpointError, match=r"overlap: must be 0\.\.12 latent frames .* got 20"):
        load_codes(write("too_wide.safetensors", "20"), sat)
    with pytest.raises(DataError, match="overlap '-3' is not a whole number"):
        load_codes(write("negative.safetensors", "-3"), sat)
    with pytest.raises(ConfigError, match="overlap: must be 0..12"):
        sat.decode([c.reshape(1, -1) for c in codes], overlap=13)


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


def test_join_metric_with_an_overlap_looks_at_the_shared_stretch_and_its_centre():
    # hop 10, reach 6: a join at 50 shared for 20 samples takes changes centred in 44..76 (t = 4..7)
    assert join_mask(10, [50], hop=10, reach=6, span=20).nonzero()[0].tolist() == [4, 5, 6, 7]
    sr, window, overlap = 24000, 6000, 1200
    t = torch.arange(4 * window) / sr
    hiss = 0.003 * torch.randn(4 * window, generator=torch.Generator().manual_seed(0))   # a steady change elsewhere
    tone = 0.3 * torch.sin(2 * torch.pi * 440.0 * t) + hiss
    seamless = join_discontinuity(tone, sr, window, overlap)
    assert seamless["ratio"] == pytest.approx(1.0, abs=0.2) and seamless["ratio_centre"] == pytest.approx(1.0, abs=0.2)
    jumps = tone.clone()
    stride = window - overlap
    for j in range(stride, 4 * window - 256 - overlap, stride):
        jumps[j + overlap // 2:] *= -1          # a click in the middle of every shared stretch
    clicked = join_discontinuity(jumps, sr, window, overlap)
    assert clicked["ratio_centre"] > 3.0 and clicked["ratio"] > 1.2
    with pytest.raises(ConfigError, match=r"overlap_samples must be in \[0, 6000\), got 6000"):
        join_discontinuity(tone, sr, window, window)
