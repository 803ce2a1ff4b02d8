"""Parity with the published SAT: loading its checkpoint layout and reproducing its outputs.

The fixtures (produced by running the published code) live in ../shared/reference-parity beside
the repository, or wherever NEXTSCALE_PARITY_DIR points; they are never copied into the repo.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from nextscale.errors import CheckpointError
from nextscale.tokenizer.model import SAT, SATConfig
from nextscale.tokenizer.published import convert_published_sat

PARITY_DIR = Path(os.environ.get("NEXTSCALE_PARITY_DIR")
                  or Path(__file__).resolve().parents[2] / "shared" / "reference-parity")


def _fixtures():
    ckpt, io = PARITY_DIR / "sat_reference_layout.pth", PARITY_DIR / "reference_io.safetensors"
    if not (ckpt.is_file() and io.is_file()):
        pytest.skip(f"parity fixtures not found in {PARITY_DIR} (set NEXTSCALE_PARITY_DIR to the "
                    f"reference-parity folder)")
    from safetensors.torch import load_file

    return ckpt, load_file(str(io))


def test_published_codes_decode_and_forward_match():
    ckpt, io = _fixtures()
    sat = convert_published_sat(ckpt)
    assert sat.scales == [1, 2, 4, 6, 9, 12, 16, 20, 25, 31, 37, 43, 50, 58, 66, 75]
    assert (sat.config.n_filters, sat.config.dimension, sat.latent_dim) == (4, 16, 8)
    assert (sat.config.phi_count, sat.config.phi_kernel, sat.codebook_size) == (6, 9, 1024)
    wav = io["input_wav"]
    codes = sat.encode(wav)
    assert len(codes) == 16
    for k, c in enumerate(codes):
        assert torch.equal(c, io[f"codes_{k:02d}"].long()), f"scale {k} codes differ"
    decoded = sat.decode(codes)
    with torch.no_grad():
        forward = sat(wav).audio
    assert (decoded - io["sat_decode_of_encode"]).abs().max().item() <= 1e-5
    assert (forward - io["sat_forward_output"]).abs().max().item() <= 1e-5


# ---- converter behaviour without the fixtures: our own model written in the published layout ----
def _to_published_layout(sat: SAT) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in sat.state_dict().items():
        key = re.sub(r"\.parametrizations\.weight\.original0$", ".weight_g", key)
        key = re.sub(r"\.parametrizations\.weight\.original1$", ".weight_v", key)
        key = re.sub(r"\.conv\.(weight_g|weight_v|bias)$", r".conv.conv.\1", key)
        key = re.sub(r"\.convtr\.(weight_g|weight_v|bias)$", r".convtr.convtr.\1", key)
        key = key.replace("quantizer.proj_in.", "quantizer.vq.project_in.")
        key = key.replace("quantizer.proj_out.", "quantizer.vq.project_out.")
        key = key.replace("quantizer.phis.", "quantizer.vq.quant_resi.qresi_ls.")
        key = re.sub(r"quantizer\.codebooks\.(\d+)\.", r"quantizer.vq.layers.\1._codebook.", key)
        out["module." + key] = value.clone()
    return out


def _tiny() -> SAT:
    torch.manual_seed(0)
    sat = SAT(SATConfig(n_filters=4, dimension=12, latent_dim=6, codebook_size=32, num_scales=5,
                        ratios=[4, 4, 2, 2], phi_count=3, phi_kernel=5, kmeans_iters=2, clip_seconds=0.1))
    sat.train()
    sat(torch.randn(2, 1, sat.clip_samples))
    return sat.eval()


def test_converter_infers_config_and_reproduces_outputs(tmp_path):
    sat = _tiny()
    path = tmp_path / "sat.pth"
    torch.save({"generator_state_dict": _to_published_layout(sat)}, path)
    loaded = convert_published_sat(path, clip_seconds=0.1)
    for field in ("n_filters", "dimension", "latent_dim", "ratios", "codebook_size", "phi_count", "phi_kernel",
                  "lstm_layers", "n_residual_layers"):
        assert getattr(loaded.config, field) == getattr(sat.config, field), field
    assert loaded.scales == sat.scales
    x = torch.randn(2, 1, sat.clip_samples)
    codes = sat.encode(x)
    assert all(torch.equal(a, b) for a, b in zip(codes, loaded.encode(x)))
    assert torch.equal(sat.decode(codes), loaded.decode(codes))


def test_converter_names_the_bad_key(tmp_path):
    state = _to_published_layout(_tiny())
    state["module.quantizer.vq.project_in.weight"] = torch.zeros(6, 13)
    with pytest.raises(CheckpointError, match=r"quantizer\.proj_in\.weight: checkpoint \(6, 13\)"):
        convert_published_sat(state, clip_seconds=0.1)
    state = _to_published_layout(_tiny())
    state["module.quantizer.vq.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="key 'quantizer.vq.extra.weight' has no place"):
        convert_published_sat(state, clip_seconds=0.1)
    with pytest.raises(CheckpointError, match="not a SAT generator checkpoint"):
        convert_published_sat({"model_state_dict": {"blocks.0.weight": torch.zeros(1)}})
    with pytest.raises(CheckpointError, match="file not found"):
        convert_published_sat(tmp_path / "missing.pth")
