"""benchmarks/tokenizer_quality.py at a microscopic size: both contenders trained, scored and reported."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "tokenizer_quality.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("tokenizer_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tokenizer_quality"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    bench = _load_benchmark()
    out = tmp_path_factory.mktemp("bench")
    settings = bench.Settings(steps=2, batch=2, n_train=4, n_eval=2, threads=1, timing_repeats=2)
    bench.run_benchmark(settings, out, runs=out / "runs", progress=False)
    return out, json.loads((out / "tokenizer_quality_cpu.json").read_text())


def test_json_holds_both_contenders_with_their_token_budgets(report):
    out, r = report
    assert r["benchmark"] == "tokenizer_quality"
    assert r["settings"]["steps"] == 2 and r["settings"]["batch"] == 2
    assert {"torch", "python"} <= set(r["versions"]) and r["machine"]["device"] == "cpu"
    by_name = {x["name"]: x for x in r["results"]}
    assert set(by_name) == {"SAT-455", "RVQ-750"}
    sat, rvq = by_name["SAT-455"], by_name["RVQ-750"]
    assert sat["scales"] == [1, 2, 4, 6, 9, 12, 16, 20, 25, 31, 37, 43, 50, 58, 66, 75] and sat["tokens_per_second"] == 455
    assert rvq["scales"] == [75] * 10 and rvq["tokens_per_second"] == 750
    assert rvq["phi"] == "none" and sat["phi"] == "partial"


def test_metrics_are_finite_and_per_scale_usage_matches_the_schedule(report):
    out, r = report
    for x in r["results"]:
        h = x["heldout"]
        assert h["n"] == 2
        for key in ("mel_distance", "stft_distance", "si_sdr", "mean_usage"):
            assert math.isfinite(h[key]), (x["name"], key)
        assert h["mel_distance"] > 0 and 0 < h["mean_usage"] <= 1
        assert [row["tokens"] for row in x["per_scale"]] == [2 * n for n in x["scales"]]   # 2 clips per scale
        assert x["encode_s_per_audio_s"] > 0 and x["decode_s_per_audio_s"] > 0
        assert x["train"]["steps"] == 2
        assert (out / "runs" / x["name"] / "tokenizer" / "config.json").is_file()


def test_markdown_table_has_one_row_per_contender(report):
    out, r = report
    table = (out / "tokenizer_quality_cpu.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| SAT") or line.startswith("| RVQ")]
    assert len(rows) == 2 and "| 455 |" in rows[0] and "| 750 |" in rows[1]


def test_bad_options_give_clear_errors():
    bench = _load_benchmark()
    from nextscale.errors import ConfigError

    with pytest.raises(ConfigError, match="--device"):
        bench.main(device="tpu", steps=1, batch=1, n_train=1, n_eval=1, size="", adversarial=None, threads=-1,
                   seed=0, out=Path("."), runs=None, progress=False)
    with pytest.raises(ConfigError, match="--size"):
        bench.main(device="cpu", steps=1, batch=1, n_train=1, n_eval=1, size="huge", adversarial=None, threads=-1,
                   seed=0, out=Path("."), runs=None, progress=False)
