"""Per-second generation cost window by window (`nextscale.bench.window_speed`): every model makes long clips
through the same windows and context, rows for both models at both lengths, ratios against next-scale, and
the benchmark script's JSON. Timings are never asserted, only that they were taken."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nextscale.bench.generation import BenchSettings, build_contenders
from nextscale.bench.window_speed import WindowSpeedSettings, baseline_ratios, run_window_speed, window_clip
from nextscale.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TWO_MODELS = ("next_scale", "next_token_scale")


def test_every_model_makes_long_clips_through_the_same_windows_and_context():
    device = torch.device("cpu")
    contenders = build_contenders("tiny", BenchSettings(depths=["tiny"], models=list(TWO_MODELS)), device,
                                  context_tokens=4)
    for c in contenders:
        assert c.fast.model.context is not None                        # the sliding context, both models
        sat = c.sat
        codes = window_clip(c, 2.0, 12, 1, device, seed=0, decode=False)()
        assert [x.shape for x in codes] == [(1, 3 * n) for n in sat.scales]    # 3 windows 63 frames apart
        audio = window_clip(c, 2.0, 12, 1, device, seed=0)()
        assert audio.shape == (1, 1, 2 * sat.sample_rate) and torch.isfinite(audio).all()


def test_report_has_both_models_at_both_lengths_with_and_without_decoding():
    report = run_window_speed(WindowSpeedSettings(depth="tiny", seconds=(1.0, 2.0), models=TWO_MODELS, repeats=1,
                                                  context_tokens=4))
    rows = {(r["model"], r["seconds"], r["decode"]): r for r in report["rows"]}
    assert set(rows) == {(m, s, d) for m in TWO_MODELS for s in (1.0, 2.0) for d in (True, False)}
    for (model, seconds, _), row in rows.items():
        assert row["windows"] == (1 if seconds == 1.0 else 3) and row["steps"] == row["windows"] * row["steps_per_window"]
        assert math.isfinite(row["s_per_audio_s"]) and row["s_per_audio_s"] > 0
        assert row["vs_shortest"] == (1.0 if seconds == 1.0 else pytest.approx(row["s_per_audio_s"] / rows[(model, 1.0, row["decode"])]["s_per_audio_s"]))
    assert rows[("next_scale", 1.0, True)]["steps_per_window"] < rows[("next_token_scale", 1.0, True)]["steps_per_window"]
    assert set(report["ratios"]) == {"1 s", "2 s", "1 s, AR only", "2 s, AR only"}
    assert all(set(r) == {"next_token_scale"} for r in report["ratios"].values())
    assert report["settings"]["overlap"] == 12 and report["machine"]["torch_threads"] == 1


def test_baseline_ratios_divide_by_next_scale_at_the_same_length_and_decode():
    rows = [{"model": m, "seconds": s, "decode": True, "s_per_audio_s": v}
            for m, s, v in (("next_scale", 1.0, 0.1), ("next_token_scale", 1.0, 0.4), ("next_scale", 10.0, 0.2),
                            ("next_token_scale", 10.0, 0.5))]
    assert baseline_ratios(rows) == {"1 s": {"next_token_scale": pytest.approx(4.0)},
                                     "10 s": {"next_token_scale": pytest.approx(2.5)}}


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="window_speed.models: unknown"):
        WindowSpeedSettings(models=("next_pixel",))
    with pytest.raises(ConfigError, match="window_speed.seconds: expected positive lengths"):
        WindowSpeedSettings(seconds=(1.0, 0.0))


@pytest.mark.slow
def test_script_writes_the_json(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "window_speed.py"), "--depth", "tiny",
                             "--seconds", "1,2", "--repeats", "1", "--context-tokens", "4", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "window_speed_cpu.json").read_text())
    assert {r["model"] for r in report["rows"]} == {"next_scale", "next_token_scale", "next_token_rvq"}
    assert "set_num_threads(1)" in report["note"] and report["machine"]["cpu"]
