"""Published models by name: a fake hub cache served offline -> download -> convert once -> load;
offline or missing files give one error naming the repository, the file and the import command."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nextscale import hub
from nextscale.errors import CheckpointError

FIXTURES = Path(os.environ.get("NEXTSCALE_PARITY_DIR") or Path(__file__).resolve().parents[2] / "shared" / "reference-parity")
needs_fixtures = pytest.mark.skipif(not (FIXTURES / "aar_reference_layout.pth").is_file(),
                                    reason=f"published parity fixtures not found in {FIXTURES}")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_hub(root: Path, files: dict[str, Path]) -> Path:
    """A Hugging Face cache holding `files` (hub name -> local file) for the published repository."""
    repo = root / ("models--" + hub.PUBLISHED_REPO.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        shutil.copy(source, snapshot / name)
    return root


def offline_env(tmp_path: Path, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "NEXTSCALE_CACHE"))}
    return env | {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "NEXTSCALE_CACHE": str(tmp_path / "converted")}


SCRIPT = """
import json, torch
import nextscale.ar.published as published
from nextscale import hub
from nextscale.pipeline import load_ar
from nextscale.tokenizer.model import SAT
from nextscale.tokenizer.published import convert_published_sat
calls = []
original = published.import_published
published.import_published = lambda *a, **k: (calls.append(a[0]), original(*a, **k))[1]
first = SAT.from_pretrained("sat-audioset-lat128")
second = SAT.from_pretrained("sat-audioset-lat128")
reference = convert_published_sat(FIXTURE_SAT)
same = all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), reference.state_dict().values()))
pipe_dir = hub.published_dir("aar-audioset")
ar = load_ar(pipe_dir / "ar")
again = hub.published_dir("aar-audioset")
print(json.dumps({"conversions": len(calls), "same_weights": same, "second_equal": all(torch.equal(a, b)
      for a, b in zip(first.state_dict().values(), second.state_dict().values())),
      "pipeline": json.loads((pipe_dir / "pipeline.json").read_text()), "ar_depth": ar.config.depth,
      "dirs": [str(pipe_dir), str(again)]}))
"""


@needs_fixtures
def test_name_downloads_converts_once_and_loads(tmp_path):
    cache = fake_hub(tmp_path / "hf", {"SAT_d128_lat128.pth": FIXTURES / "sat_reference_layout.pth",
                                       "AAR_d16_bs2048.pth": FIXTURES / "aar_reference_layout.pth"})
    script = SCRIPT.replace("FIXTURE_SAT", repr(str(FIXTURES / "sat_reference_layout.pth")))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env=offline_env(tmp_path, cache))
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["conversions"] == 2             # the SAT once, the pipeline once; every later call loads
    assert result["same_weights"] and result["second_equal"]
    assert result["pipeline"]["conditioner"] == {"kind": "clap", "model": "laion/larger_clap_general"}
    meta = json.loads((FIXTURES / "reference_meta.json").read_text())
    assert result["ar_depth"] == meta["aar"]["depth"]
    assert result["dirs"][0] == result["dirs"][1] == str(tmp_path / "converted" / "published" / "aar-audioset")


def test_offline_without_the_files_names_repo_file_and_fallback(tmp_path):
    cache = fake_hub(tmp_path / "hf", {})
    run = subprocess.run([sys.executable, "-m", "nextscale", "generate", "a dog barking", "--model", "aar-audioset",
                          "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=300,
                         env=offline_env(tmp_path, cache))
    assert run.returncode == 2, run.stderr
    message = " ".join(run.stderr.split())
    for needle in ("qiuk6/AAR", "SAT_d128_lat128.pth",
                   "nextscale import-checkpoint --sat SAT_d128_lat128.pth --aar AAR_d16_bs2048.pth --out DIR"):
        assert needle in message, (needle, message)
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "converted" / "published" / "aar-audioset").exists()


def test_a_missing_second_file_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("NEXTSCALE_CACHE", str(tmp_path / "converted"))
    got = []

    def download(repo: str, filename: str) -> str:
        got.append(filename)
        if filename == "AAR_d16_bs2048.pth":
            raise FileNotFoundError(f"{repo} has no {filename}")
        return str(tmp_path / filename)

    with pytest.raises(CheckpointError, match=r"aar-audioset: could not get AAR_d16_bs2048\.pth .*qiuk6/AAR"):
        hub.published_dir("aar-audioset", download=download)
    assert got == ["SAT_d128_lat128.pth", "AAR_d16_bs2048.pth"]
    assert not (tmp_path / "converted").exists()


def test_unknown_name_is_not_looked_up_as_published(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="sat-audioset-lat64: not a published model"):
        hub.published_dir("sat-audioset-lat64")
    from nextscale.tokenizer.model import SAT

    with pytest.raises(CheckpointError, match="checkpoint directory not found"):
        SAT.from_pretrained("sat-audioset-lat64")


def test_models_command_lists_every_name():
    from typer.testing import CliRunner

    from nextscale.cli import app

    listing = CliRunner().invoke(app, ["models"])
    assert listing.exit_code == 0
    for name, model in hub.PUBLISHED.items():
        assert name in listing.output and model.sat_file in listing.output
