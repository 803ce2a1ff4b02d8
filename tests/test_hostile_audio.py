"""Hostile inputs (issue 8): every broken or extreme file gives a specific AudioError / DataError or a
reported skip — never a torch traceback and never silent zeros."""
from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import soundfile as sf

from nextscale.audio import audio_info, load_audio
from nextscale.data import DataWarning, FolderDataset, ManifestDataset
from nextscale.errors import AudioError, DataError

SR = 24000


def sine(freq, seconds, sr, amp=0.5):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def write(path, x, sr=SR, subtype="PCM_16"):
    sf.write(path, x, sr, subtype=subtype)
    return path


def expect_audio_error(path, match, **kwargs):
    with pytest.raises(AudioError, match=match) as info:
        load_audio(path, SR, **kwargs)
    assert info.value.path == str(path)
    return info.value


def test_missing_file_and_directory(tmp_path):
    expect_audio_error(tmp_path / "nope.wav", "file not found")
    expect_audio_error(tmp_path, "not a regular file")


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    expect_audio_error(path, "not a readable audio file")


def test_truncated_wav_is_detected_from_its_header(tmp_path):
    full = write(tmp_path / "full.wav", sine(440, 1.0, SR))
    data = full.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    expect_audio_error(tmp_path / "cut.wav", "truncated")
    (tmp_path / "header_only.wav").write_bytes(data[:30])
    expect_audio_error(tmp_path / "header_only.wav", "not a readable audio file")


def test_corrupt_flac_passes_the_header_check_but_fails_to_decode(tmp_path):
    full = write(tmp_path / "full.flac", np.random.default_rng(0).uniform(-0.5, 0.5, SR).astype(np.float32))
    data = bytearray(full.read_bytes())
    (tmp_path / "cut.flac").write_bytes(bytes(data[: len(data) // 2]))
    assert audio_info(tmp_path / "cut.flac").frames == SR  # the header still claims the full length
    expect_audio_error(tmp_path / "cut.flac", "undecodable|truncated")


def test_zero_sample_file(tmp_path):
    write(tmp_path / "empty.wav", np.zeros(0, np.float32))
    expect_audio_error(tmp_path / "empty.wav", "zero-length")


def test_one_sample_file_loads_and_resamples(tmp_path):
    write(tmp_path / "one.wav", np.array([0.25], np.float32), subtype="FLOAT")
    y = load_audio(tmp_path / "one.wav", SR)
    assert y.shape == (1, 1) and float(y[0, 0]) == 0.25
    write(tmp_path / "one8k.wav", np.array([0.25], np.float32), sr=8000, subtype="FLOAT")
    assert load_audio(tmp_path / "one8k.wav", SR).shape == (1, 3)
    write(tmp_path / "one192k.wav", np.array([0.25], np.float32), sr=192000, subtype="FLOAT")
    expect_audio_error(tmp_path / "one192k.wav", "too short")  # 1/8 of an output sample


def test_eight_channel_file_mixes_down_to_the_mean(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.5, 0.5, (4800, 8)).astype(np.float32)
    write(tmp_path / "oct.wav", x, subtype="FLOAT")
    y = load_audio(tmp_path / "oct.wav", SR)
    np.testing.assert_allclose(y[0].numpy(), x.mean(axis=1), atol=1e-6)
    assert load_audio(tmp_path / "oct.wav", SR, mono=False).shape == (8, 4800)
    expect_audio_error(tmp_path / "oct.wav", "wrong channel layout: the file has 8 channels, 2", mono=False, channels=2)


@pytest.mark.parametrize("sr_in,freq", [(8000, 1000.0), (192000, 3000.0)])
def test_extreme_sample_rates_keep_pitch_and_length(tmp_path, sr_in, freq):
    x = sine(freq, 0.5, sr_in)
    write(tmp_path / "x.wav", x, sr=sr_in, subtype="FLOAT")
    y = load_audio(tmp_path / "x.wav", SR)[0].numpy()
    assert abs(y.size - 12000) <= 1
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    assert abs(np.fft.rfftfreq(y.size, 1 / SR)[spectrum.argmax()] - freq) <= 2


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_named(tmp_path, bad):
    x = sine(440, 0.1, SR)
    x[1234] = bad
    write(tmp_path / "nan.wav", x, subtype="FLOAT")
    err = expect_audio_error(tmp_path / "nan.wav", "NaN or infinite samples")
    assert "frame 1234" in err.reason


def test_bad_offsets_are_reported_with_the_file(tmp_path):
    write(tmp_path / "s.wav", sine(440, 1.0, SR))
    expect_audio_error(tmp_path / "s.wav", "past the end", offset=2.0)
    expect_audio_error(tmp_path / "s.wav", "negative", offset=-1.0)
    expect_audio_error(tmp_path / "s.wav", "must be positive", duration=0.0)


def test_one_hour_file_is_cropped_without_loading_it(tmp_path):
    """A 1-hour file (1 kHz to keep it at 7 MB) read at 30:00 for one second: the traced peak memory
    stays far below the ~14 MB a full float32 decode would need, and the right second comes back."""
    rate, hour = 1000, 3600
    path = tmp_path / "hour.wav"
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
        for minute in range(60):  # a slow ramp: the sample value encodes the position in the file
            n = np.arange(minute * 60 * rate, (minute + 1) * 60 * rate)
            f.write((0.9 * n / (hour * rate)).astype(np.float32))
    assert audio_info(path).duration == hour
    tracemalloc.start()
    try:
        y = load_audio(path, sample_rate=rate, offset=1800.0, duration=1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert y.shape == (1, rate)
    assert peak < 200_000, f"peak {peak} bytes: the whole file was decoded"
    np.testing.assert_allclose(y[0].numpy(), 0.9 * np.arange(1800 * rate, 1801 * rate) / (hour * rate), atol=1e-4)


# ---- datasets over hostile files ---------------------------------------------------------------

def make_files(tmp_path):
    good = [write(tmp_path / f"good{i}.wav", sine(200 * (i + 1), 1.0, SR)) for i in range(2)]
    (tmp_path / "text.wav").write_text("not audio")
    write(tmp_path / "empty.wav", np.zeros(0, np.float32))
    return good


def test_folder_dataset_skips_and_counts_bad_files_once(tmp_path):
    make_files(tmp_path)
    with pytest.warns(DataWarning) as record:
        ds = FolderDataset(tmp_path)
    assert len(ds) == 2 and len(ds.skipped) == 2
    assert len(record) == 1  # one report listing every skipped file with its reason
    text = str(record[0].message)
    assert "text.wav: not a readable audio file" in text and "empty.wav: zero-length" in text


def test_file_that_fails_at_decode_falls_back_deterministically_and_is_counted(tmp_path):
    write(tmp_path / "a_good.wav", sine(300, 1.0, SR))
    noise = write(tmp_path / "b_bad.flac", np.random.default_rng(0).uniform(-0.5, 0.5, SR).astype(np.float32))
    data = noise.read_bytes()
    noise.write_bytes(data[: len(data) // 2])
    ds = FolderDataset(tmp_path, random_crop=False)
    assert len(ds) == 2 and ds.skipped == []  # the header looks fine
    bad_index = [i for i, e in enumerate(ds.entries) if e.path.endswith("b_bad.flac")][0]
    with pytest.warns(DataWarning, match="b_bad.flac"):
        item = ds[bad_index]
    assert item["path"].endswith("a_good.wav") and float(item["audio"].abs().max()) > 0.1  # real audio, not zeros
    assert [p for p, _ in ds.skipped] == [str(noise)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once: the second access neither retries nor warns again
        assert ds[bad_index]["path"] == item["path"]


def test_dataset_without_any_readable_file_stops(tmp_path):
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.warns(DataWarning), pytest.raises(DataError, match="no readable audio"):
        FolderDataset(tmp_path)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="empty_dir: no audio files"):
        FolderDataset(tmp_path / "empty_dir")
    with pytest.raises(DataError, match="missing_dir: audio folder not found"):
        FolderDataset(tmp_path / "missing_dir")


# ---- hostile manifests ---------------------------------------------------------------------------

def test_manifest_without_path_column_names_the_file(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("file,caption\na.wav,hello\n")
    with pytest.raises(DataError, match=r"m\.csv: no 'path' column \(columns found: file, caption\)"):
        ManifestDataset(csv)
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text('{"file": "a.wav"}\n')
    with pytest.raises(DataError, match=r"m\.jsonl: no row has a 'path' field"):
        ManifestDataset(jsonl)


def test_manifest_bad_paths_and_bad_rows_are_skipped_and_reported(tmp_path):
    good = make_files(tmp_path)
    csv = tmp_path / "m.csv"
    csv.write_text("path,start\n" + f"{good[0].name},0\n" + "missing.wav,0\n" + ",0\n" + f"{good[1].name},abc\n"
                   + "text.wav,0\n")
    with pytest.warns(DataWarning) as record:
        ds = ManifestDataset(csv)
    assert len(ds) == 1
    reasons = dict(ds.skipped)
    assert reasons[str(tmp_path / "missing.wav")] == "file not found"
    assert reasons[f"{csv} line 4"] == "empty 'path'"
    assert "start must be a number" in reasons[f"{csv} line 5"]
    assert "not a readable audio file" in reasons[str(tmp_path / "text.wav")]
    assert len(record) == 1


def test_manifest_duplicated_rows_are_dropped_and_named(tmp_path):
    good = make_files(tmp_path)
    jsonl = tmp_path / "m.jsonl"
    rows = [good[0].name, good[1].name, good[0].name, str(good[1])]  # the last one: same file, absolute path
    jsonl.write_text("".join(f'{{"path": "{p}"}}\n' for p in rows))
    with pytest.warns(DataWarning, match="skipped 2 of 4 rows as duplicates"):
        ds = ManifestDataset(jsonl)
    assert len(ds) == 2
    assert ds.duplicates == [(f"{jsonl} line 3", f"repeats line 1 ({good[0].name})"),
                             (f"{jsonl} line 4", f"repeats line 2 ({good[1]})")]


def test_non_utf8_manifest_names_file_and_byte_offset(tmp_path):
    csv = tmp_path / "latin1.csv"
    raw = "path,caption\na.wav,caf".encode() + b"\xe9 au lait\n"  # Latin-1 é in a UTF-8 file
    csv.write_bytes(raw)
    offset = raw.index(b"\xe9")
    with pytest.raises(DataError, match=rf"latin1\.csv: not UTF-8 text: byte 0xe9 at byte offset {offset} \(line 2\)"):
        ManifestDataset(csv)
    csv.write_bytes(b"\xef\xbb\xbf" + raw)  # with a BOM the offset still counts from the file's first byte
    with pytest.raises(DataError, match=rf"byte offset {offset + 3} "):
        ManifestDataset(csv)


def test_broken_json_line_names_the_line(tmp_path):
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text('{"path": "a.wav"}\n{"path": \n')
    with pytest.raises(DataError, match=r"m\.jsonl line 2: not valid JSON"):
        ManifestDataset(jsonl)
