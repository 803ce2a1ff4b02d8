"""`nextscale generate` end to end on a tiny saved pipeline: WAVs, PNGs and settings.json are written,
the audio is finite and of the pipeline's length, and bad input exits with one clear line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

os.environ["HF_HUB_OFFLINE"] = "1"

from nextscale.cli import app
from nextscale.outputs import clip_stem
from nextscale.errors import NextscaleError
from nextscale.pipeline import Pipeline

from tiny_models import tiny_pipeline


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli") / "pipeline"
    tiny_pipeline().save_pretrained(directory)
    return directory


def run(*args):
    return CliRunner().invoke(app, ["generate", *map(str, args)])


def test_generate_writes_clips_pngs_and_settings(pipeline_dir, tmp_path):
    out = tmp_path / "out"
    result = run("a siren wailing", "-n", 3, "--cfg", 2, "--top-k", 8, "--seed", 5, "--checkpoint", pipeline_dir,
                 "-o", out, "--previews", "--batch-size", 2, "--device", "cpu")
    assert result.exit_code == 0, result.output
    pipe = Pipeline.from_pretrained(pipeline_dir)
    settings = json.loads((out / "settings.json").read_text())
    assert settings["prompt"] == "a siren wailing" and settings["num"] == 3 and settings["seed"] == 5
    assert settings["cfg"] == 2 and settings["top_k"] == 8 and settings["sample_rate"] == pipe.sample_rate
    assert len(settings["files"]) == 3
    expected = pipe(["a siren wailing"] * 3, cfg=2, top_k=8, top_p=0.95, seed=5, batch_size=2)
    for i, entry in enumerate(settings["files"]):
        assert entry["wav"] == f"{clip_stem('a siren wailing', i)}.wav" == f"a-siren-wailing_{i:02d}.wav"
        audio, sr = sf.read(out / entry["wav"], dtype="float32")
        assert sr == pipe.sample_rate and audio.shape == (pipe.num_samples,)
        assert torch.isfinite(torch.from_numpy(audio)).all()
        # the file holds what the library call gives for the same settings (to 16-bit PCM precision or better)
        torch.testing.assert_close(torch.from_numpy(audio), expected[i, 0].clamp(-1, 1), atol=1e-4, rtol=0)
        for key in ("spectrogram", "previews"):
            png = (out / entry[key]).read_bytes()
            assert png[:4] == b"\x89PNG" and len(png) > 2000
    assert "a-siren-wailing_02.wav" in result.output


def test_class_option_and_errors(pipeline_dir, tmp_path):
    result = run("--class", "Bell", "-n", 1, "--checkpoint", pipeline_dir, "-o", tmp_path / "b", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "b" / "settings.json").read_text())["class"] == "Bell"
    assert (tmp_path / "b" / "bell_00.wav").is_file()
    for args, message in ((["violin"], "unknown class 'violin'"), ([], "PROMPT or --class"),
                          (["tone", "--class", "tone"], "not both"), (["tone", "--top-p", "2"], "top_p"),
                          (["tone", "--seconds", "0.1"], "makes single windows"),
                          (["tone", "--overlap", "99"], "overlap: must be 0..")):
        result = run(*args, "--checkpoint", pipeline_dir, "-o", tmp_path / "c", "--device", "cpu")
        assert isinstance(result.exception, NextscaleError) and message in str(result.exception)
    assert not (tmp_path / "c" / "settings.json").exists()


def test_cli_reports_bad_input_in_one_line(pipeline_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nextscale", "generate", "violin", "--checkpoint", str(pipeline_dir),
                           "-o", str(tmp_path / "x"), "--device", "cpu"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown class 'violin'" in proc.stderr and "Traceback" not in proc.stderr


def test_shipped_name_loads_and_is_the_default(pipeline_dir, tmp_path, monkeypatch):
    """A pipeline in the package's models/ folder loads by name, and generate uses DEFAULT_MODEL when given none."""
    import shutil

    from nextscale import hub
    from nextscale.pipeline import set_pipeline_sampling

    shipped = tmp_path / "models"
    shutil.copytree(pipeline_dir, shipped / "tiny-shipped")
    (shipped / "tiny-shipped" / "README.md").write_text("# A tiny shipped pipeline\n\nTrained by the test.\n")
    set_pipeline_sampling(shipped / "tiny-shipped", {"cfg": 1.5, "top_k": 4})
    monkeypatch.setattr(hub, "SHIPPED_DIR", shipped)
    monkeypatch.setattr(hub, "DEFAULT_MODEL", "tiny-shipped")
    monkeypatch.chdir(tmp_path)
    assert Pipeline.from_pretrained("tiny-shipped").sampling == {"cfg": 1.5, "top_k": 4}
    listing = CliRunner().invoke(app, ["models"])
    line = next(line for line in listing.output.splitlines() if line.startswith("tiny-shipped"))
    assert line.split(None, 1)[1] == "A tiny shipped pipeline  [in the package (the default of nextscale generate)]"
    result = run("siren", "-n", 2, "-o", tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "out" / "settings.json").read_text())
    assert settings["checkpoint"] == "tiny-shipped"
    assert (settings["cfg"], settings["top_k"], settings["top_p"]) == (1.5, 4, 0.95)   # the model's own, then defaults


def test_the_shipped_model_generates_through_the_public_api():
    """The pipeline shipped in the package loads by name and generates finite clips of its length."""
    from nextscale.hub import DEFAULT_MODEL, shipped_models

    assert DEFAULT_MODEL in shipped_models()
    pipe = Pipeline.from_pretrained(DEFAULT_MODEL)
    assert pipe.sampling["top_k"] == 8 and "siren" in pipe.conditioner.classes
    audio = pipe(["siren", "kick"], seed=0)
    assert audio.shape == (2, 1, pipe.num_samples) and torch.isfinite(audio).all()
    assert audio.abs().amax(dim=-1).min() > 1e-3                       # not silence
