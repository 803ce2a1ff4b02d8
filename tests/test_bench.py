"""Speed benchmark: the floor in closed form, robust statistics, and a tiny end-to-end run's JSON.

Times are never asserted; the run checks structure and the quantities derived from the times.
"""
from __future__ import annotations

import json
import statistics

import pytest
import torch
from typer.testing import CliRunner

from nextscale.cli import app
from nextscale.errors import ConfigError
from nextscale.bench.generation import MODELS, BenchSettings, add_speedups, run_benchmark
from nextscale.bench.measure import (PeakMemory, floor_seconds, known_bandwidth, summarize,
                                          weight_bytes_per_step)
from nextscale.bench.table import markdown

RESULT_KEYS = {"depth", "ar_depth", "width", "heads", "model", "steps", "batch", "parameters", "decoder_parameters",
               "times_s", "median_s", "iqr_s", "min_s", "max_s", "clips_per_s", "rtf", "speedup_of_next_scale",
               "peak_memory_bytes", "peak_memory_kind", "weight_bytes_per_step", "floor_s", "load_average_1min"}


def test_floor_closed_form():
    # Embedding tables are gathered, not streamed: only the Linear (4*8 weights + 8 biases) counts.
    net = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 8))
    assert weight_bytes_per_step(net, 2) == (4 * 8 + 8) * 2
    assert floor_seconds(80, 16, 1000.0) == pytest.approx(80 * 16 / 1000.0)
    assert floor_seconds(80, 16, None) is None
    # DESIGN.md: 16 scales × 615 MB of bf16 weights on an H100 SXM (3.35 TB/s) ≈ 2.9 ms.
    assert floor_seconds(615e6, 16, known_bandwidth("NVIDIA H100 80GB HBM3")) == pytest.approx(9.84e9 / 3.35e12)


def test_known_bandwidths():
    assert known_bandwidth("NVIDIA H100 80GB HBM3") == 3.35e12
    assert known_bandwidth("NVIDIA H100 PCIe") == 2.0e12
    assert known_bandwidth("NVIDIA H200") == 4.8e12
    assert known_bandwidth("NVIDIA A100-SXM4-80GB") == 2.039e12
    assert known_bandwidth("AMD EPYC 9654") is None


def test_summary_is_median_and_iqr():
    times = [0.3, 0.1, 0.2, 5.0, 0.4]            # one straggler must not move the median
    s = summarize(times)
    q1, _, q3 = statistics.quantiles(sorted(times), n=4, method="inclusive")
    assert s["median_s"] == 0.3 and s["iqr_s"] == pytest.approx(q3 - q1) and s["iqr_s"] == pytest.approx(0.2)
    assert summarize([2.0])["iqr_s"] == 0.0


def test_peak_memory_sees_a_large_allocation():
    mem = PeakMemory(torch.device("cpu"))
    mem.reset()
    before = mem.read()
    block = torch.ones(64 * 2**20 // 4)               # 64 MiB, touched
    after = mem.read()
    del block
    assert before is not None and after - before >= 48 * 2**20


def test_speedups_are_ratios_to_next_scale():
    rows = [dict(depth="tiny", batch=1, model="next_scale", median_s=0.5),
            dict(depth="tiny", batch=1, model="next_token_rvq", median_s=10.0)]
    assert add_speedups(rows) == [dict(depth="tiny", batch=1, baseline="next_token_rvq", speedup=20.0)]
    assert rows[0]["speedup_of_next_scale"] == 1.0


def test_settings_are_validated():
    with pytest.raises(ConfigError, match="depths"):
        BenchSettings(depths=["huge"])
    with pytest.raises(ConfigError, match="models"):
        BenchSettings(models=["next_pixel"])
    with pytest.raises(ConfigError, match="cuda"):
        BenchSettings(device="cpu", cuda_graph=True)


@pytest.fixture(scope="module")
def tiny_report():
    settings = BenchSettings(depths=["tiny"], batch_sizes=[1], device="cpu", warmup=0, repeats=2, budget_s=0.0,
                             bandwidth=1e9, threads=1)
    partial: list[dict] = []
    report = run_benchmark(settings, progress=False, on_setting=partial.append)
    return report, partial


def test_tiny_benchmark_json(tiny_report, tmp_path):
    from nextscale.bench.generation import write_json

    tiny_report, partial = tiny_report
    assert [len(p["results"]) for p in partial] == [1, 2, 3]     # saved after every setting
    report = json.loads(write_json(tiny_report, tmp_path / "r.json").read_text())   # JSON-clean
    assert report["schema_version"] == 1
    assert {"created", "machine", "versions", "settings", "results", "speedups"} <= set(report)
    assert report["machine"]["cpu_cores"] >= 1 and report["versions"]["torch"] == torch.__version__
    assert [r["model"] for r in report["results"]] == list(MODELS)
    steps = {r["model"]: r["steps"] for r in report["results"]}
    assert steps == {"next_scale": 16, "next_token_scale": 455, "next_token_rvq": 750}
    for r in report["results"]:
        assert set(r) >= RESULT_KEYS
        assert len(r["times_s"]) >= 1 and all(t > 0 for t in r["times_s"])
        assert r["min_s"] <= r["median_s"] <= r["max_s"]
        assert r["clips_per_s"] == pytest.approx(1 / r["median_s"])
        assert r["rtf"] == pytest.approx(r["median_s"])
        assert r["floor_s"] == pytest.approx(r["weight_bytes_per_step"] * r["steps"] / 1e9)
        assert r["peak_memory_kind"] == "cpu_peak_rss" and r["peak_memory_bytes"] > 0
    widths = {r["width"] for r in report["results"]}
    assert widths == {64}                                  # equal size for every contender
    assert {s["baseline"] for s in report["speedups"]} == {"next_token_scale", "next_token_rvq"}
    table = markdown(report)
    assert table.count("\n| tiny |") == 3 and "next-token, RVQ order" in table


def test_cli_writes_json_and_names_bad_options(tmp_path):
    runner = CliRunner()
    out = tmp_path / "speed_{device}.json"
    res = runner.invoke(app, ["bench", "--depths", "tiny", "--batch", "2", "--models", "next_scale", "--device", "cpu",
                              "--repeats", "1", "--warmup", "0", "--threads", "1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "speed_cpu.json").read_text())
    assert report["results"][0]["batch"] == 2 and report["speedups"] == []
    bad = runner.invoke(app, ["bench", "--batch", "one,8"])
    assert isinstance(bad.exception, ConfigError) and "--batch" in str(bad.exception)
