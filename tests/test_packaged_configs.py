"""Configs ship inside the package: bare names resolve anywhere, paths still win, a wheel carries them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextscale.cli import app
from nextscale.config import CONFIG_DIR, packaged_configs, resolve_config_path
from nextscale.errors import ConfigError
from nextscale.train.ar import load_ar_train_config
from nextscale.train.tokenizer import load_sat_train_config

REPO = Path(__file__).resolve().parents[1]


def test_every_packaged_config_loads_by_name():
    shipped = packaged_configs()
    assert {"sat-paper", "sat-paper-d128", "sat-fourier-tiny", "rvq-750", "aar-d16", "aar-tiny"} <= set(shipped)
    for name, path in shipped.items():
        assert path.parent == CONFIG_DIR
        is_ar = any(f"kind: {kind}" in path.read_text() for kind in ("aar", "next_token"))
        cfg = (load_ar_train_config if is_ar else load_sat_train_config)(name)
        assert cfg.model is not None, name


@pytest.mark.parametrize("ar_name, sat_name", [("aar-synth", "sat-fourier-tiny"), ("aar-synth", "sat-tiny"),
                                               ("aar-d16", "sat-paper-d128")])
def test_ar_configs_fit_the_tokenizer_they_are_paired_with(ar_name, sat_name):
    """The scales / codebook / latent width an AR config writes out must be its SAT's (built, not read)."""
    from nextscale.ar.config import fit_problems
    from nextscale.tokenizer.model import SAT

    sat = SAT.from_config(sat_name)
    assert fit_problems(load_ar_train_config(ar_name).model, sat) == []


def test_name_forms_resolve_to_the_same_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                      # no configs/ folder here
    target = CONFIG_DIR / "sat-paper.yaml"
    for form in ("sat-paper", "sat-paper.yaml", "configs/sat-paper.yaml", Path("sat-paper")):
        assert resolve_config_path(form) == target
    from nextscale.tokenizer.model import SAT

    assert SAT.from_config("sat-paper").config.dimension == 1024


def test_an_existing_file_wins_over_a_packaged_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sat-tiny.yaml").write_text("model:\n  codec: fourier\n  n_fft: 1024\n")
    from nextscale.tokenizer.model import SAT

    assert SAT.from_config("sat-tiny.yaml").config.codec == "fourier"     # the local file
    assert SAT.from_config("sat-tiny").config.codec == "seanet"           # the packaged one


def test_unknown_name_lists_the_packaged_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"sat-papr: config file not found.*sat-paper"):
        resolve_config_path("sat-papr")
    with pytest.raises(ConfigError, match="not found"):              # a directory part is never a packaged name
        resolve_config_path("elsewhere/sat-paper.yaml")


def test_cli_lists_the_packaged_configs():
    runner = CliRunner()
    listing = runner.invoke(app, ["configs"])
    assert listing.exit_code == 0, listing.output
    for name in packaged_configs():
        assert name in listing.output
    assert "published AudioSet SAT" in listing.output                   # the file's own description


@pytest.mark.slow
def test_a_wheel_install_resolves_packaged_names(tmp_path):
    """Build a wheel, install it into a fresh venv outside the repo, load a packaged config there."""
    source = tmp_path / "source"                      # a copy, so the build leaves nothing in the checkout
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(dist), str(source)], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(f"wheel build failed: {build.stderr[-2000:]}")
    wheel = next(dist.glob("nextscale-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)   # torch etc. from this interpreter
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True)
    script = ("import nextscale, pathlib; from nextscale.tokenizer.model import SAT; "
              "print(pathlib.Path(nextscale.__file__).resolve()); print(SAT.from_config('sat-paper').config.latent_dim)")
    run = subprocess.run([str(python), "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert run.returncode == 0, run.stderr[-2000:]
    where, latent = run.stdout.split()
    assert Path(where).is_relative_to(env_dir.resolve()), where            # the wheel, not the checkout
    assert latent == "64"
