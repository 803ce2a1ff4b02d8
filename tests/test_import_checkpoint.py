"""Published checkpoint import: key/shape checks with clear errors, and `nextscale import-checkpoint`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nextscale.ar import AAR, ARConfig
from nextscale.ar.published import _RENAMES, convert_published_aar, infer_published_config
from nextscale.errors import CheckpointError

FIXTURES = Path(os.environ.get("NEXTSCALE_PARITY_DIR") or Path(__file__).resolve().parents[2] / "shared" / "reference-parity")
needs_fixtures = pytest.mark.skipif(not (FIXTURES / "aar_reference_layout.pth").is_file(),
                                    reason=f"published parity fixtures not found in {FIXTURES}")
SCALES = [1, 2, 3, 5]


def published_layout(model: AAR) -> dict[str, torch.Tensor]:
    """Write our AAR in the published key layout (DDP 'module.' prefix, derived buffers included)."""
    inverse = {v: k for k, v in _RENAMES.items()}
    state = {}
    for key, value in model.state_dict().items():
        parts = key.split(".")
        if parts[0] == "blocks":
            name = inverse["blocks.{i}." + ".".join(parts[2:])].replace("{i}", parts[1])
        else:
            name = inverse[key]
        state["module." + name] = value.clone()
    L = model.config.num_tokens
    state["module.lvl_1L"] = model.levels[None].clone()
    state["module.attn_bias_for_masking"] = torch.zeros(1, 1, L, L)
    for i in range(model.config.depth):
        state[f"module.blocks.{i}.attn.zero_k_bias"] = torch.zeros(model.config.width)
    return state


@pytest.fixture()
def synthetic():
    cfg = ARConfig(depth=2, width=32, heads=2, scales=SCALES, codebook_size=16, latent_dim=4, cond_dim=12,
                   attention="cosine")
    torch.manual_seed(0)
    return AAR(cfg).eval()


def test_round_trip_through_published_layout(synthetic, tmp_path):
    path = tmp_path / "aar.pth"
    torch.save({"model_state_dict": published_layout(synthetic), "epoch": 0}, path)
    loaded = convert_published_aar(path)
    cfg = loaded.config
    assert (cfg.depth, cfg.width, cfg.heads, cfg.scales, cfg.cond_dim, cfg.attention) == (2, 32, 2, SCALES, 12, "cosine")
    for k, v in synthetic.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_wrong_shape_names_the_key(synthetic, tmp_path):
    state = published_layout(synthetic)
    state["module.blocks.1.ffn.fc2.weight"] = torch.zeros(32, 100)
    torch.save({"model_state_dict": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"blocks\.1\.ffn\.fc2\.weight.*\(32, 100\).*expected \(32, 128\)"):
        convert_published_aar(tmp_path / "bad.pth")


def test_missing_and_unknown_keys(synthetic):
    state = published_layout(synthetic)
    del state["module.head_nm.ada_lin.1.bias"]
    with pytest.raises(CheckpointError, match=r"head_nm\.ada_lin\.1\.bias.*missing"):
        convert_published_aar({"model_state_dict": state})
    state = published_layout(synthetic)
    state["module.extra_thing"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match="extra_thing"):
        convert_published_aar(state)
    with pytest.raises(CheckpointError, match="not found"):
        convert_published_aar("/nonexistent/aar.pth")


def test_dot_product_checkpoint_needs_heads_flag(synthetic):
    state = {k.removeprefix("module."): v for k, v in published_layout(synthetic).items() if "scale_mul" not in k}
    with pytest.raises(CheckpointError, match="heads="):
        infer_published_config(state)
    assert infer_published_config(state, heads=4).attention == "sdpa"


@needs_fixtures
def test_fixture_config_is_inferred():
    cfg = convert_published_aar(FIXTURES / "aar_reference_layout.pth").config
    meta = json.loads((FIXTURES / "reference_meta.json").read_text())
    assert cfg.scales == meta["scales"]
    assert (cfg.depth, cfg.width, cfg.heads, cfg.cond_dim) == (meta["aar"]["depth"], meta["aar"]["width"],
                                                                meta["aar"]["heads"], meta["aar"]["cond_dim"])
    assert cfg.attention == "cosine"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nextscale", *args], capture_output=True, text=True, timeout=120)


@needs_fixtures
def test_cli_imports_sat_and_pipeline(tmp_path):
    pytest.importorskip("nextscale.tokenizer.published", reason="SAT converter not available yet")
    res = _cli("import-checkpoint", "--sat", str(FIXTURES / "sat_reference_layout.pth"), "--out", str(tmp_path / "sat"))
    assert res.returncode == 0, res.stderr
    from nextscale.tokenizer.model import SAT

    assert SAT.from_pretrained(tmp_path / "sat").scales == convert_published_aar(FIXTURES / "aar_reference_layout.pth").config.scales
    res = _cli("import-checkpoint", "--sat", str(FIXTURES / "sat_reference_layout.pth"),
               "--aar", str(FIXTURES / "aar_reference_layout.pth"), "--out", str(tmp_path / "pipe"))
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "pipe" / "pipeline.json").read_text())
    assert manifest["conditioner"] == {"kind": "clap", "model": "laion/larger_clap_general"}
    ar = AAR.from_pretrained(tmp_path / "pipe" / "ar")
    ref = convert_published_aar(FIXTURES / "aar_reference_layout.pth")
    assert all(torch.equal(a, b) for a, b in zip(ar.state_dict().values(), ref.state_dict().values()))


def test_cli_reports_bad_checkpoint_clearly(synthetic, tmp_path):
    state = published_layout(synthetic)
    state["module.blocks.0.ada_lin.1.weight"] = torch.zeros(100, 32)
    torch.save({"model_state_dict": state}, tmp_path / "bad.pth")
    torch.save({"model_state_dict": published_layout(synthetic)}, tmp_path / "other.pth")
    sat = FIXTURES / "sat_reference_layout.pth"
    if not sat.is_file():
        pytest.skip(f"published SAT fixture not found in {FIXTURES}")
    pytest.importorskip("nextscale.tokenizer.published", reason="SAT converter not available yet")
    res = _cli("import-checkpoint", "--sat", str(sat), "--aar", str(tmp_path / "bad.pth"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2
    assert "blocks.0.ada_lin.1.weight" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists()
    # a well-formed AAR made for another tokenizer (4 scales, V=16) is refused before writing
    res = _cli("import-checkpoint", "--sat", str(sat), "--aar", str(tmp_path / "other.pth"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "scales" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists()
