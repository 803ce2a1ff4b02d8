"""bf16 autocast on CPU: only when asked for (CPU 'auto' stays fp32), and a Fourier SAT still trains under it; where a
CPU trains in fp32, the demo's narrower, longer-trained SAT."""
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


def test_a_cpu_that_trains_in_fp32_gets_the_default_presets_narrower_sat_for_more_steps(monkeypatch, tmp_path):
    from nextscale import demo, runtime
    from nextscale.config import read_yaml
    from nextscale.train.tokenizer import load_sat_train_config

    recipe_width = read_yaml(demo.SAT_CONFIG)["model"]["convnext_width"]
    p = demo.PRESETS["default"]
    assert p.fp32_sat_model["convnext_width"] < recipe_width and p.fp32_sat_steps > p.sat_steps
    for native, width, floor in ((True, recipe_width, p.sat_steps), (False, p.fp32_sat_model["convnext_width"],
                                                                     p.fp32_sat_steps)):
        monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda native=native: native)
        cfg = load_sat_train_config(demo.tokenizer_stage_config(demo.Demo(tmp_path / str(native), "default")))
        assert (cfg.model.convnext_width, cfg.train.steps) == (width, floor)
        assert cfg.optim.warmup_steps == floor // 20 and cfg.train.time_budget_s == p.sat_seconds  # same minutes
        on_gpu = demo.tokenizer_stage_config(demo.Demo(tmp_path / "gpu", "default", device="cuda"))
        assert (on_gpu["model"]["convnext_width"], on_gpu["train"]["steps"]) == (recipe_width, p.sat_steps)
        smoke = demo.fp32_sat_sizes(demo.PRESETS["smoke"], "cpu")       # a preset without fp32 sizes keeps its own
        assert smoke == (demo.PRESETS["smoke"].sat_model, demo.PRESETS["smoke"].sat_steps)
        fixed = demo.tokenizer_stage_config(demo.Demo(tmp_path / "fixed", "default"), steps=300)  # the recipe bench
        assert (fixed["model"]["convnext_width"], fixed["train"]["steps"], fixed["train"]["time_budget_s"]) == \
            (width, 300, 0.0)
