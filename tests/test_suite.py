"""The speed suite: requests are checked, every section lands in one JSON, rows resume, ratios and MFU follow.

Times are never asserted. The quick run measures one row or two of each section of the smoke budget;
the whole smoke budget runs under the `slow` marker.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nextscale.bench.measure import count_flops, known_peak_flops
from nextscale.bench.suite import BUDGETS, SCOPES, check_request, run_suite
from nextscale.bench.suite_table import derived, markdown
from nextscale.errors import ConfigError
from nextscale.runtime import cpu_has_native_bf16

ROOT = Path(__file__).resolve().parents[1]
QUICK = ("generation/tiny/next_scale/", "codec/sat-fourier-tiny/", "train_ar/", "train_sat/sat-fourier-tiny/")


def quick(key: str) -> bool:
    return key.startswith(QUICK)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("suite") / "suite.json"
    lines: list[str] = []
    report = run_suite("cpu", "smoke", path, threads=1, only=quick, log=lines.append)
    return path, report, lines


def test_requests_are_checked():
    with pytest.raises(ConfigError, match="unknown budget 'huge'"):
        check_request("cpu", "huge")
    with pytest.raises(ConfigError, match="expected cpu or cuda"):
        check_request("tpu", "smoke")
    with pytest.raises(ConfigError, match="need --device cuda"):
        check_request("cpu", "gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            check_request("cuda", "gpu")


def test_quick_run_has_every_section(quick_run):
    path, report, lines = quick_run
    on_disk = json.loads(path.read_text())
    assert on_disk["rows"].keys() == report["rows"].keys()
    keys = list(report["rows"])
    assert [k for k in keys if k.startswith("generation/")] == [
        f"generation/tiny/next_scale/b1/eager/{scope}" for scope in SCOPES]
    assert {k.split("/")[0] for k in keys} == {"generation", "codec", "train_ar", "train_sat"}
    assert not [k for k, r in report["rows"].items() if "error" in r]
    m = report["machine"]
    assert m["cpu"] and m["torch_threads"] == 1 and m["peak_flops"] is None          # CPU: MFU unknown, not made up
    assert m["cpu_capability"] in {"DEFAULT", "VSX", "Z VECTOR", "NO AVX", "AVX2", "AVX512", "SVE256", "SVE128"}
    assert m["cpu_native_bf16"] == cpu_has_native_bf16()      # what tells two VMs with the same CPU name apart
    assert report["versions"]["torch"] == torch.__version__ and report["settings"]["budget"] == "smoke"
    gen = report["rows"]["generation/tiny/next_scale/b1/eager/end_to_end"]
    assert gen["steps"] == 16 and gen["median_s"] > 0 and gen["weight_floor_s"] is None
    assert gen["flops_floor_s"] is None and gen["scope"] == "end_to_end"
    codec = report["rows"]["codec/sat-fourier-tiny/b1"]
    assert codec["codec"] == "fourier" and codec["decode_s_per_audio_s"] == pytest.approx(codec["decode_s"])
    ar = report["rows"]["train_ar/tiny/b4/fp32"]
    assert ar["tokens_per_step"] == 4 * 455 and ar["tokens_per_s"] == pytest.approx(4 * 455 / ar["median_s"])
    assert ar["mfu"] is None and ar["flops_per_step"] > 0 and ar["loader_s"] >= 0 and 0 <= ar["loader_share"] < 1
    sat = report["rows"]["train_sat/sat-fourier-tiny/b2/fp32"]
    assert sat["clips_per_s"] == pytest.approx(2 / sat["median_s"]) and sat["adversarial"] is False
    text = markdown(report)
    for title in ("Generation of 1 s", "SAT encode and decode", "AR training", "SAT training"):
        assert f"### {title}" in text
    assert "0 of 5 rows done" in lines[0]


def test_a_rerun_skips_finished_rows_and_retries_failed_ones(quick_run, tmp_path):
    path, report, _ = quick_run
    copy = tmp_path / "suite.json"
    failed = "train_sat/sat-fourier-tiny/b2/fp32"
    saved = json.loads(path.read_text())
    saved["rows"][failed] = {"error": "RuntimeError: out of memory"}
    copy.write_text(json.dumps(saved))
    lines: list[str] = []
    again = run_suite("cpu", "smoke", copy, threads=1, only=quick, log=lines.append)
    assert "4 of 5 rows done, 1 to measure" in lines[0] and len(lines) == 2 and failed in lines[1]
    assert "error" not in again["rows"][failed]
    for key, row in saved["rows"].items():
        if key != failed:
            assert again["rows"][key] == row                   # untouched


def test_other_settings_are_not_mixed_in(quick_run, tmp_path):
    path, _, _ = quick_run
    copy = tmp_path / "suite.json"
    copy.write_text(path.read_text())
    with pytest.raises(ConfigError, match="other settings.*threads"):
        run_suite("cpu", "smoke", copy, threads=2, only=lambda key: False, log=lambda line: None)
    fresh = run_suite("cpu", "smoke", copy, threads=2, fresh=True, only=lambda key: False, log=lambda line: None)
    assert fresh["rows"] == {} and fresh["settings"]["threads"] == 2


def test_ratios_are_derived_from_the_rows():
    def row(model, batch, median):
        return dict(model=model, batch=batch, median_s=median)

    report = {"rows": {
        "generation/8/next_scale/b1/eager/transformer": row("next_scale", 1, 0.4),
        "generation/8/next_scale/b1/compiled/transformer": row("next_scale", 1, 0.1),
        "generation/8/next_token_rvq/b1/eager/transformer": row("next_token_rvq", 1, 8.0),
        "generation/8/next_token_rvq/b1/compiled/transformer": row("next_token_rvq", 1, 2.0),
        "generation/8/next_scale/b8/eager/transformer": {"error": "RuntimeError: boom"},
    }}
    d = derived(report)
    assert sorted((x["mode"], x["speedup"]) for x in d["next_scale_over_baselines"]) == [("compiled", 20.0),
                                                                                         ("eager", 20.0)]
    assert sorted((x["model"], x["speedup"]) for x in d["mode_over_eager"]) == [("next_scale", 4.0),
                                                                               ("next_token_rvq", 4.0)]


def test_a_paired_timing_outranks_the_two_rows():
    rows = {"generation/8/next_scale/b1/eager/transformer": dict(model="next_scale", batch=1, median_s=0.4),
            "generation/8/next_scale/b1/compiled/transformer": dict(model="next_scale", batch=1, median_s=0.1,
                                                                    speedup_over_eager_paired=2.5)}
    (ratio,) = derived({"rows": rows})["mode_over_eager"]
    assert ratio["speedup"] == 2.5 and ratio["paired"]
    del rows["generation/8/next_scale/b1/eager/transformer"]          # no eager row needed
    assert derived({"rows": rows})["mode_over_eager"][0]["speedup"] == 2.5


def test_interleaved_timing_alternates_the_calls():
    from nextscale.bench.measure import time_interleaved

    calls: list[str] = []
    times = time_interleaved([lambda: calls.append("a"), lambda: calls.append("b")], torch.device("cpu"),
                             warmup=1, rounds=3)
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert [len(t) for t in times] == [3, 3] and all(x >= 0 for t in times for x in t)


def test_paired_over_eager_times_both_generators():
    from nextscale.bench.generation import BenchSettings, build_contenders, paired_over_eager

    settings = BenchSettings(depths=["tiny"], batch_sizes=[1], device="cpu", models=["next_scale"])
    (c,) = build_contenders("tiny", settings, torch.device("cpu"))
    out = paired_over_eager(c, 1, settings, torch.device("cpu"), decode=False, rounds=2)
    assert out["paired_rounds"] == 2 and out["paired_median_s"] > 0 and out["paired_eager_median_s"] > 0
    assert out["speedup_over_eager_paired"] == pytest.approx(out["paired_eager_median_s"] / out["paired_median_s"])


def test_training_row_computes_mfu_and_the_floor_from_a_peak():
    from nextscale.bench.training import TrainSetting, ar_train_row

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = ar_train_row(TrainSetting("tiny", 2, warmup=0, steps=1), torch.device("cpu"), peak_flops=1e12)
    finally:
        torch.set_num_threads(before)
    assert r["mfu"] == pytest.approx(r["flops_per_step"] / r["median_s"] / 1e12)
    assert r["floor_s"] == pytest.approx(r["flops_per_step"] / 1e12)
    # 6 N per token for the per-token matrices dominates a tiny model's count (attention and AdaLN add a little)
    assert 0.8 < r["flops_per_step"] / (6 * r["parameters"] * r["tokens_per_step"]) < 1.3


def test_flop_count_and_peaks():
    x, lin = torch.randn(4, 8), torch.nn.Linear(8, 16)
    assert count_flops(lambda: lin(x)) == 2 * 4 * 8 * 16
    q = torch.randn(1, 2, 10, 16)
    mask = torch.ones(10, 10, dtype=torch.bool).tril()
    attention = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=mask))
    assert attention == 2 * 2 * 2 * 10 * 10 * 16        # QK^T and AV, 2 heads, dense (the mask is not skipped)
    assert known_peak_flops("NVIDIA H100 80GB HBM3", "bf16") == 989e12
    assert known_peak_flops("NVIDIA H200", "bf16") == 989e12
    assert known_peak_flops("NVIDIA H100 80GB HBM3", "fp32") is None
    assert known_peak_flops("", "bf16") is None


def test_the_script_names_a_bad_budget():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "suite.py"), "--budget", "huge"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "unknown budget 'huge'" in out.stderr


@pytest.mark.slow
def test_smoke_budget_measures_every_row(tmp_path):
    report = run_suite("cpu", "smoke", tmp_path / "suite.json", threads=1, log=lambda line: None)
    b = BUDGETS["smoke"]
    assert len(report["rows"]) == 3 * len(SCOPES) + len(b.codecs) * len(b.codec_batches) + len(b.train) + len(b.codecs)
    assert not [k for k, r in report["rows"].items() if "error" in r]
    assert len(report["derived"]["next_scale_over_baselines"]) == 2 * len(SCOPES)
