"""nextscale.audio: decoding each format, resampling, mix-down, partial reads, crop/pad and saving."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from nextscale.audio import audio_info, crop_or_pad, load_audio, save_audio
from nextscale.errors import AudioError

SR = 24000


def sine(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / sr)[spectrum.argmax()])


@pytest.mark.parametrize("ext,subtype,tol", [("wav", "FLOAT", 0.0), ("wav", "PCM_16", 1 / 32768), ("flac", "PCM_16", 1 / 32768),
                                             ("wav", "PCM_24", 1 / 2 ** 23)])
def test_lossless_round_trip_is_exact_to_the_bit_depth(tmp_path, ext, subtype, tol):
    x = sine(440, 0.5, SR)
    path = tmp_path / f"a.{ext}"
    sf.write(path, x, SR, subtype=subtype)
    y = load_audio(path, SR)
    assert y.dtype == torch.float32 and y.shape == (1, x.size)
    assert np.abs(y[0].numpy() - x).max() <= tol


@pytest.mark.parametrize("ext", ["ogg", "mp3"])
def test_lossy_round_trip_keeps_pitch_level_and_length(tmp_path, ext):
    x = sine(440, 1.0, SR)
    path = tmp_path / f"a.{ext}"
    sf.write(path, x, SR)
    y = load_audio(path, SR)[0].numpy()
    assert abs(y.size - x.size) <= 2000  # codec framing may pad the end slightly
    assert abs(peak_hz(y, SR) - 440) <= 2
    n = min(x.size, y.size)
    corr = np.correlate(y[:n], x[:n], mode="full")
    assert corr.max() / (np.linalg.norm(x[:n]) * np.linalg.norm(y[:n])) > 0.95  # same signal up to a small delay
    assert np.sqrt(np.mean(y ** 2)) == pytest.approx(np.sqrt(np.mean(x ** 2)), rel=0.1)


@pytest.mark.parametrize("sr_in", [16000, 44100, 48000])
def test_resampling_keeps_frequency_and_duration(tmp_path, sr_in):
    x = sine(1000, 0.8, sr_in)
    sf.write(tmp_path / "s.wav", x, sr_in, subtype="FLOAT")
    y = load_audio(tmp_path / "s.wav", SR)[0].numpy()
    assert abs(y.size - x.size * SR / sr_in) <= 1
    assert abs(peak_hz(y, SR) - 1000) <= SR / y.size  # within one FFT bin
    middle = y[2000:-2000]
    assert np.abs(middle).max() == pytest.approx(0.5, abs=0.01)  # no gain change through the filter


def test_stereo_mixdown_is_the_channel_mean_and_mono_false_keeps_channels(tmp_path):
    left, right = sine(300, 0.2, SR), sine(700, 0.2, SR, amp=0.25)
    sf.write(tmp_path / "st.wav", np.stack([left, right], 1), SR, subtype="FLOAT")
    mono = load_audio(tmp_path / "st.wav", SR)
    np.testing.assert_allclose(mono[0].numpy(), (left + right) / 2, atol=1e-7)
    both = load_audio(tmp_path / "st.wav", SR, mono=False)
    assert both.shape == (2, left.size)
    np.testing.assert_array_equal(both[1].numpy(), right)


def test_mono_file_is_upmixed_only_when_asked(tmp_path):
    x = sine(300, 0.1, SR)
    sf.write(tmp_path / "m.wav", x, SR, subtype="FLOAT")
    y = load_audio(tmp_path / "m.wav", SR, mono=False, channels=2)
    assert y.shape == (2, x.size) and torch.equal(y[0], y[1])
    assert load_audio(tmp_path / "m.wav", SR, mono=False).shape == (1, x.size)


def test_offset_and_duration_read_exactly_those_frames(tmp_path):
    ramp = np.linspace(-1, 1, SR, dtype=np.float32)
    sf.write(tmp_path / "r.wav", ramp, SR, subtype="FLOAT")
    y = load_audio(tmp_path / "r.wav", SR, offset=0.5, duration=0.25)
    np.testing.assert_array_equal(y[0].numpy(), ramp[12000:18000])
    tail = load_audio(tmp_path / "r.wav", SR, offset=0.9, duration=5.0)  # asks past the end: what is there
    np.testing.assert_array_equal(tail[0].numpy(), ramp[21600:])


def test_audio_info_reads_the_header_only(tmp_path):
    sf.write(tmp_path / "i.flac", np.zeros((4800, 3), np.float32), 48000)
    info = audio_info(tmp_path / "i.flac")
    assert (info.sample_rate, info.channels, info.frames, info.duration) == (48000, 3, 4800, 0.1)


def test_crop_or_pad_pads_short_clips_and_says_how_much():
    wav = torch.arange(1, 6, dtype=torch.float32)[None]
    out, padded = crop_or_pad(wav, 8)
    assert padded == 3 and out.tolist() == [[1, 2, 3, 4, 5, 0, 0, 0]]


def test_fixed_crop_starts_at_zero_and_random_crop_is_a_reproducible_window():
    wav = torch.arange(100, dtype=torch.float32).repeat(2, 1)
    fixed, padded = crop_or_pad(wav, 10)
    assert padded == 0 and fixed[0].tolist() == list(range(10))
    starts = set()
    for seed in range(20):
        a, _ = crop_or_pad(wav, 10, random=True, generator=torch.Generator().manual_seed(seed))
        b, _ = crop_or_pad(wav, 10, random=True, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(a, b)
        start = int(a[0, 0])
        assert a[0].tolist() == list(range(start, start + 10)) and torch.equal(a[0], a[1])
        starts.add(start)
    assert len(starts) > 5


def test_save_audio_round_trips_and_clips_instead_of_wrapping(tmp_path):
    x = torch.tensor(sine(500, 0.1, SR))
    path = save_audio(tmp_path / "out" / "x.wav", x, SR)
    np.testing.assert_allclose(load_audio(path, SR)[0].numpy(), x.numpy(), atol=1 / 32768)
    stereo = save_audio(tmp_path / "s.flac", torch.stack([x, -x]), SR)
    assert audio_info(stereo).channels == 2
    loud = save_audio(tmp_path / "loud.wav", torch.tensor([1.5, -2.0, 0.5]), SR)
    np.testing.assert_allclose(sf.read(loud)[0], [32767 / 32768, -1.0, 0.5], atol=1 / 32768)


@pytest.mark.parametrize("wav,match", [
    (torch.zeros(24000, 2), "not \\(samples, channels\\)"),
    (torch.zeros(1, 1, 100), "expected a waveform"),
    (torch.zeros(1, 0), "zero-length"),
    (torch.tensor([0.0, float("nan")]), "NaN"),
])
def test_save_audio_rejects_bad_layouts_and_values(tmp_path, wav, match):
    with pytest.raises(AudioError, match=match) as info:
        save_audio(tmp_path / "bad.wav", wav, SR)
    assert info.value.path.endswith("bad.wav")


@pytest.mark.parametrize("sr_in", [8000, 44100])
def test_a_resampled_crop_equals_that_span_of_the_whole_file_resampled(tmp_path, sr_in):
    """Context decoded around the crop keeps the resampler's edge transients out of it."""
    import soxr

    x = np.random.default_rng(0).uniform(-0.5, 0.5, 3 * sr_in).astype(np.float32)
    sf.write(tmp_path / "n.wav", x, sr_in, subtype="FLOAT")
    whole = soxr.resample(x, sr_in, SR, quality="HQ")
    crop = load_audio(tmp_path / "n.wav", SR, offset=1.0, duration=1.0)[0].numpy()
    assert crop.shape == (SR,)
    np.testing.assert_allclose(crop, whole[SR:2 * SR], atol=1e-5)
