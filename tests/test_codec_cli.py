"""`nextscale encode | decode | reconstruct` on a tiny saved SAT."""
from __future__ import annotations

import math

import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from nextscale.audio import load_audio, save_audio
from nextscale.cli import app
from nextscale.errors import CheckpointError, ConfigError, DataError
from nextscale.tokenizer.codec_io import load_codes
from nextscale.tokenizer.model import SAT, SATConfig

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    sat = SAT(SATConfig(n_filters=4, dimension=8, latent_dim=4, codebook_size=16, lstm_layers=1, num_scales=4,
                        clip_seconds=0.1, phi_count=2, kmeans_iters=3))
    sat.train()
    sat(torch.randn(4, 1, sat.clip_samples) * 0.3)
    path = tmp_path_factory.mktemp("ckpt") / "sat"
    sat.eval().save_pretrained(path)
    return path


def _tone(path, seconds=0.25, freq=440.0):
    t = torch.arange(int(24000 * seconds)) / 24000
    return save_audio(path, 0.4 * torch.sin(2 * math.pi * freq * t), 24000)


def _ok(args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_encode_then_decode_round_trip(ckpt, tmp_path):
    wav_path = _tone(tmp_path / "tone.wav")
    codes_path = tmp_path / "codes.safetensors"
    _ok(["encode", wav_path, "-o", codes_path, "--checkpoint", ckpt, "--device", "cpu"])
    sat = SAT.from_pretrained(ckpt)
    stored = load_codes(codes_path, sat)
    codes, num = stored.codes, stored.num_samples
    assert num == 6000 and stored.overlap == 0 and [tuple(c.shape) for c in codes] == [(3, n) for n in sat.scales]   # 3 windows, one row each
    wav = load_audio(wav_path)
    in_memory = sat.encode(wav[None])                 # the whole file at once: (1, 3 * n_k) per scale
    assert all(torch.equal(a.reshape(1, -1), b) for a, b in zip(codes, in_memory))

    out = tmp_path / "out.wav"
    _ok(["decode", codes_path, "-o", out, "--checkpoint", ckpt, "--device", "cpu"])
    decoded, rate = sf.read(out, dtype="float32")
    assert rate == 24000 and decoded.shape == (6000,)
    expected = sat.decode(in_memory, length=6000).reshape(-1).clamp(-1, 1)
    assert (torch.from_numpy(decoded) - expected).abs().max().item() <= 1.0 / 32768 + 1e-6

    preview = tmp_path / "preview.wav"
    _ok(["decode", codes_path, "-o", preview, "--scales", "2", "--checkpoint", ckpt, "--device", "cpu"])
    coarse, _ = sf.read(preview, dtype="float32")
    expected = sat.decode(in_memory[:2], length=6000).reshape(-1).clamp(-1, 1)
    assert (torch.from_numpy(coarse) - expected).abs().max().item() <= 1.0 / 32768 + 1e-6


def test_encode_with_an_overlap_records_it_and_decode_crossfades_with_it(ckpt, tmp_path):
    wav_path = _tone(tmp_path / "tone.wav")
    codes_path = tmp_path / "codes.safetensors"
    _ok(["encode", wav_path, "-o", codes_path, "--checkpoint", ckpt, "--overlap", "3", "--device", "cpu"])
    sat = SAT.from_pretrained(ckpt)
    stored = load_codes(codes_path, sat)
    wav = load_audio(wav_path)
    # 19 latent frames in windows of 8 every 5 frames: 4 windows (3 side by side)
    assert stored.overlap == 3 and stored.codes[0].shape[0] == sat.num_windows(6000, 3) == 4
    assert all(torch.equal(a.reshape(1, -1), b) for a, b in zip(stored.codes, sat.encode(wav[None], overlap=3)))
    out = tmp_path / "out.wav"
    _ok(["decode", codes_path, "-o", out, "--checkpoint", ckpt, "--device", "cpu"])
    decoded, _ = sf.read(out, dtype="float32")
    expected = sat.decode([c.reshape(1, -1) for c in stored.codes], length=6000, overlap=3).reshape(-1).clamp(-1, 1)
    assert (torch.from_numpy(decoded) - expected).abs().max().item() <= 1.0 / 32768 + 1e-6
    for bad in ("-1", "5"):
        result = runner.invoke(app, ["encode", str(wav_path), "-o", str(tmp_path / "x.safetensors"), "--checkpoint",
                                     str(ckpt), "--overlap", bad, "--device", "cpu"])
        assert isinstance(result.exception, ConfigError) and "overlap: must be 0..4" in str(result.exception)


def test_reconstruct_file_and_folder(ckpt, tmp_path):
    src = tmp_path / "in"
    _tone(src / "a.wav", 0.1)
    _tone(src / "sub" / "b.flac", 0.33, 880.0)
    (src / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    _ok(["reconstruct", src, "-o", out, "--checkpoint", ckpt, "--device", "cpu"])
    assert sf.info(out / "a.wav").frames == 2400
    assert sf.info(out / "sub" / "b.wav").frames == int(24000 * 0.33)
    single = tmp_path / "single.wav"
    _ok(["reconstruct", src / "a.wav", "-o", single, "--checkpoint", ckpt, "--device", "cpu", "--scales", "1"])
    assert sf.info(single).frames == 2400


def test_clear_errors(ckpt, tmp_path):
    result = runner.invoke(app, ["encode", str(_tone(tmp_path / "t.wav")), "-o", str(tmp_path / "c.safetensors"),
                                 "--checkpoint", str(tmp_path / "nope")])
    assert isinstance(result.exception, CheckpointError) and "not found" in str(result.exception)
    codes = tmp_path / "c.safetensors"
    _ok(["encode", tmp_path / "t.wav", "-o", codes, "--checkpoint", ckpt, "--device", "cpu"])
    result = runner.invoke(app, ["decode", str(codes), "-o", str(tmp_path / "o.wav"), "--scales", "9",
                                 "--checkpoint", str(ckpt), "--device", "cpu"])
    assert isinstance(result.exception, ConfigError) and "--scales" in str(result.exception)
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    result = runner.invoke(app, ["decode", str(tmp_path / "bad.safetensors"), "-o", str(tmp_path / "o.wav"),
                                 "--checkpoint", str(ckpt), "--device", "cpu"])
    assert isinstance(result.exception, DataError) and "bad.safetensors" in str(result.exception)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["reconstruct", str(empty), "-o", str(tmp_path / "x"), "--checkpoint", str(ckpt)])
    assert isinstance(result.exception, DataError) and "no audio files" in str(result.exception)
