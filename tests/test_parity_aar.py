"""Parity with the published AAR on the shared fixtures (../shared/reference-parity).

Teacher-forced logits use a small independent re-implementation of the published MSRQ
read straight from the SAT .pth (codebooks + Phi convs), so this check does not depend on
our tokenizer; the greedy CFG-4 generation is decoded with our converted SAT.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nextscale.ar.published import convert_published_aar


def parity_dir() -> Path:
    env = os.environ.get("NEXTSCALE_PARITY_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "reference-parity"


FIXTURES = parity_dir()
needs_fixtures = pytest.mark.skipif(not (FIXTURES / "aar_reference_layout.pth").is_file(),
                                    reason=f"published parity fixtures not found in {FIXTURES} (set NEXTSCALE_PARITY_DIR)")


class ReferenceMSRQ:
    """The published multi-scale residual quantizer's AR-facing half, from raw SAT tensors."""

    def __init__(self, sat_state: dict, scales: list[int]):
        pre = "quantizer.vq."
        self.scales = scales
        self.codebooks = [sat_state[f"{pre}layers.{k}._codebook.embed"].double() for k in range(len(scales))]
        n_phi = len({k for k in sat_state if k.startswith(f"{pre}quant_resi.qresi_ls.") and k.endswith(".weight")})
        self.phi = [(sat_state[f"{pre}quant_resi.qresi_ls.{j}.weight"].double(),
                     sat_state[f"{pre}quant_resi.qresi_ls.{j}.bias"].double()) for j in range(n_phi)]
        self.ticks = np.linspace(1 / (2 * n_phi), 1 - 1 / (2 * n_phi), n_phi)

    def embed(self, k: int, idx: torch.Tensor) -> torch.Tensor:
        q = self.codebooks[k][idx].transpose(1, 2)
        T = self.scales[-1]
        if q.shape[-1] != T:
            q = F.interpolate(q, size=T, mode="linear")
        w, b = self.phi[int(np.argmin(np.abs(self.ticks - k / (len(self.scales) - 1))))]
        return 0.5 * q + 0.5 * F.conv1d(q, w, b, padding=w.shape[-1] // 2)

    def teacher_forcing_inputs(self, codes):
        f_hat, out = 0, []
        for k in range(len(self.scales) - 1):
            f_hat = f_hat + self.embed(k, codes[k])
            out.append(F.interpolate(f_hat, size=self.scales[k + 1], mode="area").transpose(1, 2))
        return torch.cat(out, dim=1)


@pytest.fixture(scope="module")
def reference():
    from safetensors.torch import load_file

    io = load_file(str(FIXTURES / "reference_io.safetensors"))
    codes = [io[f"codes_{k:02d}"] for k in range(16)]
    return io, codes


@needs_fixtures
def test_teacher_forced_logits_match_published(reference):
    io, codes = reference
    model = convert_published_aar(FIXTURES / "aar_reference_layout.pth")
    sat_state = torch.load(FIXTURES / "sat_reference_layout.pth", map_location="cpu", weights_only=True)
    sat_state = {k.removeprefix("module."): v for k, v in sat_state["generator_state_dict"].items()}
    inputs = ReferenceMSRQ(sat_state, model.config.scales).teacher_forcing_inputs(codes).float()
    with torch.no_grad():
        logits = model(io["aar_condition"], inputs)
    diff = (logits - io["aar_teacher_forced_logits"]).abs().max().item()
    print(f"teacher-forced logits max abs diff {diff:.3g}")
    assert diff <= 1e-4


@needs_fixtures
def test_greedy_cfg4_generation_matches_published_audio(reference):
    published = pytest.importorskip("nextscale.tokenizer.published",
                                    reason="SAT converter (nextscale.tokenizer.published) not available yet")
    io, _ = reference
    sat = published.convert_published_sat(FIXTURES / "sat_reference_layout.pth").eval()
    model = convert_published_aar(FIXTURES / "aar_reference_layout.pth")
    with torch.no_grad():
        codes = model.generate(sat.quantizer, io["aar_condition"], cfg=4.0, top_k=1)
        audio = sat.decode(codes)
    diff = (audio - io["aar_greedy_cfg4_audio"]).abs().max().item()
    print(f"greedy CFG-4 audio max abs diff {diff:.3g}")
    assert diff <= 1e-4
