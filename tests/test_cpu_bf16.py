"""bf16 autocast on CPU: only when asked for (CPU 'auto' stays fp32), and a Fourier SAT still trains under it."""
from __future__ import annotations

import torch

from nextscale.runtime import autocast, cpu_has_native_bf16
from nextscale.tokenizer.model import SAT
from tiny_fourier import train_tiny

CPU = torch.device("cpu")


def test_cpu_autocast_runs_matmuls_in_bf16_only_when_asked_for():
    layer, x = torch.nn.Linear(8, 8), torch.randn(2, 8)
    with autocast(CPU, "bf16"):
        assert layer(x).dtype == torch.bfloat16
    for precision in ("auto", "fp32"):
        with autocast(CPU, precision):
            assert layer(x).dtype == torch.float32


def test_native_bf16_is_read_from_the_cpus_capabilities(monkeypatch):
    for caps, expected in [({"avx512_bf16": True, "amx_bf16": False}, True), ({"avx512_bf16": False, "amx_bf16": True}, True),
                           ({"avx512_bf16": False, "amx_bf16": False}, False), ({}, False)]:
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda caps=caps: caps)
        assert cpu_has_native_bf16() is expected


def test_a_fourier_sat_trains_under_cpu_bf16_autocast_and_saves_float32_weights(tmp_path):
    rows = train_tiny(tmp_path, {"fourier_phase": "centred"}, train={"precision": "bf16"})
    assert rows[-1]["mel"] <= 0.6 * rows[0]["mel"], (rows[0]["mel"], rows[-1]["mel"])
    sat = SAT.from_pretrained(tmp_path / "tokenizer")
    assert all(p.dtype == torch.float32 for p in sat.parameters())
    wav = 0.2 * torch.randn(2, 1, sat.clip_samples)
    with torch.no_grad():
        out = sat(wav)
    torch.testing.assert_close(sat.decode(sat.encode(wav)), out.audio, atol=1e-6, rtol=0)


def test_the_demo_trains_under_bf16_only_on_a_cpu_that_multiplies_it_natively(monkeypatch):
    from nextscale import demo, runtime

    for native in (True, False):
        monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda native=native: native)
        assert demo.training_precision("cpu") == ("bf16" if native else "auto")
        assert demo.training_precision("cuda") == "auto"          # CUDA's auto is bf16 already
        assert demo.train_section(10, 4, "cpu", False, precision=demo.training_precision("cpu"))["precision"] == \
            ("bf16" if native else "auto")
