"""`nextscale evaluate` / `evaluate-tokenizer` end to end on small folders of audio."""
import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from nextscale.cli import app
from nextscale.errors import DataError
from nextscale.eval.embeddings.synth import ClassifierConfig, SynthClassifier

SR = 24000


def _tones(directory, n, seed, noise=0.0, prefix="tone"):
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    for i in range(n):
        x = 0.3 * np.sin(2 * math.pi * rng.uniform(200, 800) * t) + noise * rng.normal(size=SR)
        sf.write(directory / f"{prefix}_{i:03d}.wav", x.astype(np.float32), SR)
    return directory


def _run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result


def test_evaluate_mel_writes_json_counts_bad_files_and_caches(tmp_path):
    real = _tones(tmp_path / "real", 6, 0)
    gen = _tones(tmp_path / "gen", 6, 1)
    (gen / "broken.wav").write_bytes(b"not audio at all")
    out, cache = tmp_path / "fad.json", tmp_path / "cache"
    result = _run("evaluate", "--real", real, "--generated", gen, "--embedding", "mel", "--out", out,
                  "--cache-dir", cache, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "SMOKE CHECK ONLY" in result.output
    data = json.loads(out.read_text())
    assert data["embedding"] == "mel" and data["smoke_only"] is True
    assert data["n_real"] == 6 and data["n_generated"] == 6 and data["skipped_generated"] == 1
    assert data["skipped"][0]["path"].endswith("broken.wav")
    assert data["fad"] >= 0 and data["cache_hits"] == 0
    again = _run("evaluate", "--real", real, "--generated", gen, "--embedding", "mel", "--out", out,
                 "--cache-dir", cache, "--device", "cpu")
    assert again.exit_code == 0
    second = json.loads(out.read_text())
    assert second["cache_hits"] == 12 and second["fad"] == pytest.approx(data["fad"], rel=1e-6)
    noisy = _tones(tmp_path / "noisy", 6, 2, noise=0.3)
    third = _run("evaluate", "--real", real, "--generated", noisy, "--embedding", "mel", "--out", out, "--no-cache")
    assert third.exit_code == 0 and json.loads(out.read_text())["fad"] > data["fad"]


def test_evaluate_synth_reports_classifier_metrics(tmp_path):
    torch.manual_seed(0)
    classes = ["tone", "noise", "chirp"]
    SynthClassifier(ClassifierConfig(classes=classes, channels=[4, 8], n_mels=16, feature_dim=8)).save_pretrained(tmp_path / "clf")
    real = _tones(tmp_path / "real", 5, 0)
    gen = _tones(tmp_path / "gen", 5, 1, noise=0.1, prefix="noise")
    (gen / "labels.json").write_text(json.dumps({"noise_000.wav": "chirp"}))
    out = tmp_path / "r.json"
    result = _run("evaluate", "--real", real, "--generated", gen, "--classifier", tmp_path / "clf", "--out", out,
                  "--no-cache", "--device", "cpu")
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["embedding"] == "synth" and data["n_labelled_generated"] == 5 and data["n_labelled_real"] == 5
    for key in ("accuracy_generated", "inception_score", "label_kl", "fad"):
        assert math.isfinite(data[key]), key
    assert 1.0 <= data["inception_score"] <= 3.0 + 1e-6 and data["label_kl"] >= 0


def test_evaluate_errors_are_clear(tmp_path):
    result = _run("evaluate", "--real", tmp_path / "missing", "--generated", tmp_path, "--embedding", "mel")
    assert isinstance(result.exception, DataError) and "no such folder" in str(result.exception)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run("evaluate", "--real", empty, "--generated", empty, "--embedding", "mel")
    assert isinstance(result.exception, DataError) and "no audio files" in str(result.exception)


def test_evaluate_tokenizer_on_a_tiny_sat(tmp_path):
    from nextscale.tokenizer.model import SAT

    torch.manual_seed(0)
    sat = SAT.from_config("sat-tiny")
    sat.save_pretrained(tmp_path / "sat")
    data = _tones(tmp_path / "clips", 3, 0)
    sf.write(data / "short.wav", np.zeros(SR // 2, dtype=np.float32) + 0.1, SR)
    (data / "bad.wav").write_bytes(b"RIFF nope")
    out = tmp_path / "recon.json"
    result = _run("evaluate-tokenizer", "--checkpoint", tmp_path / "sat", "--data", data, "--n", 10,
                  "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    res = json.loads(out.read_text())
    assert res["n"] == 4 and len(res["skipped"]) == 1 and len(res["per_scale"]) == len(sat.scales)
    assert all(0 < r["usage"] <= 1 and r["perplexity"] >= 1 for r in res["per_scale"])
    assert math.isfinite(res["mel_distance"]) and math.isfinite(res["si_sdr"])
