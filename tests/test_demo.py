"""`nextscale demo` end to end at the `smoke` size: every artefact, finite metrics, resumable stages,
and the step a user takes next (their own manifest, with a corrupt file in it, through the demo's SAT)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from bench_scripts import load_script

from nextscale import demo as demo_module
from nextscale.cli import app
from nextscale.demo import STAGES, Demo
from nextscale.data.entries import DataWarning
from nextscale.errors import NextscaleError

pytestmark = pytest.mark.slow   # trains models for tens of seconds: `pytest -m "not slow"` skips them


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(app, ["demo", "--preset", "smoke", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return out, result.output


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_smoke_demo_writes_every_artefact(smoke):
    out, printed = smoke
    for stage in STAGES:
        assert (out / "stages" / f"{stage}.json").is_file(), stage
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "report" / "index.html").is_file() and "report" in printed and "class accuracy" in printed
    classes = summary["classes"]
    assert classes == 12 and summary["class_accuracy"]["chance"] == pytest.approx(1 / 12)
    for key in ("generated", "real_heldout", "random_tokens"):
        assert 0.0 <= summary["class_accuracy"][key] <= 1.0
    assert all(_finite(v) for v in summary["fad_synth"].values())
    # the FAD floor: as many real clips again from another seed, scored like the samples
    reference, heldout = (sorted((out / "corpus" / name / "wav").glob("*.wav")) for name in ("reference", "heldout"))
    assert len(reference) == len(heldout) == 24 and 0.0 <= summary["class_accuracy"]["real_reference"] <= 1.0
    assert not np.array_equal(sf.read(reference[0])[0], sf.read(heldout[0])[0])
    assert summary["fad_synth"]["real_reference"] > 0.0 and "other real clips" in printed
    assert all(_finite(v) for v in summary["reconstruction"].values())
    assert {"next_scale", "next_token_scale", "next_token_rvq"} <= set(summary["speed"])
    assert summary["speed"]["next_scale"]["steps"] < summary["speed"]["next_token_scale"]["steps"]
    assert summary["machine"]["cpu_cores_usable"] >= 1 and isinstance(summary["machine"]["cpu_native_bf16"], bool)
    # audio: one generated clip per class (smoke: 1 sample each), random-token floor, previews, curves
    generated = sorted((out / "samples" / "generated").glob("*.wav"))
    assert len(generated) == classes
    audio, rate = sf.read(generated[0])
    assert rate == 24000 and audio.shape == (24000,) and np.isfinite(audio).all()
    assert len(list((out / "samples" / "random").glob("*.wav"))) == classes
    assert len(list((out / "samples" / "previews").glob("*.png"))) == classes
    assert (out / "ar" / "pipeline" / "pipeline.json").is_file() and (out / "tokens" / "index.json").is_file()
    html = (out / "report" / "index.html").read_text()
    assert "<audio" in html and "<img" in html and "class accuracy by class" in html
    # every class has held-out and generated clips in equal numbers, so per-class accuracies average to the total
    evaluated = json.loads((out / "stages" / "evaluate.json").read_text())["result"]
    for name in ("generated", "reconstructed"):
        by_class = evaluated[name]["accuracy_by_class_generated"]
        assert len(by_class) == classes
        assert np.mean(list(by_class.values())) == pytest.approx(evaluated[name]["accuracy_generated"])
        # the misses per class, by what they were taken for, count exactly the clips accuracy calls wrong
        per_class = evaluated[name]["n_generated"] // classes
        missed = {c: sum(taken.values()) for c, taken in evaluated[name]["confusions_generated"].items()}
        assert missed == {c: round((1 - acc) * per_class) for c, acc in by_class.items() if acc < 1.0}
        assert all(c not in taken for c, taken in evaluated[name]["confusions_generated"].items())
    assert "AAR: taken for" in html


def test_smoke_demo_measures_long_audio(smoke):
    """The `long` stage: joins of real sequences through SAT (crossfaded and side by side) and of generated
    independent windows, per-window accuracy and cost per second, in summary.json, the report and WAVs."""
    out, printed = smoke
    long = json.loads((out / "summary.json").read_text())["long_audio"]
    assert long["seconds"] == 2.5 and long["overlap_frames"] == 12                 # 12 of 75 frames
    for group in ("reconstruction_join_ratio", "generated_join_ratio", "seconds_per_audio_second"):
        assert long[group] and all(_finite(v) and v > 0 for v in long[group].values()), (group, long[group])
    assert all(0.0 <= v <= 1.0 for v in long["accuracy"].values()) and _finite(long["cost_ratio"])
    stage = json.loads((out / "stages" / "long.json").read_text())["result"]
    generated = stage["generated"]
    assert generated["generated_windows"] == 3                      # 2.5 s of 1 s windows, 63 frames apart
    assert len(generated["accuracy_per_window"]) == 2               # the classifier scores whole seconds
    assert len(generated["join_ratio"]["per_clip"]) == generated["clips"] == 12
    for path in stage["wavs"].values():
        audio, rate = sf.read(path)
        assert rate == 24000 and audio.shape == (60000,) and np.isfinite(audio).all()
    assert "Long audio (2.5 s)" in (out / "report" / "index.html").read_text()
    assert "long audio (2.5 s" in printed


def test_training_stages_train_for_their_budget_and_keep_the_floor(smoke):
    """Smoke budgets are 1 ms: both stages are timed runs (train.time_budget_s) that stop at their 4-step floor."""
    out, _ = smoke
    for stage in ("tokenizer", "ar"):
        result = json.loads((out / "stages" / f"{stage}.json").read_text())["result"]
        plan = result["budget"]
        assert plan["floor"] == plan["steps"] == result["steps"] == 4 and plan["budget_s"] == 1e-3, (stage, plan)
        assert plan["train_s"] > plan["budget_s"]
        assert json.loads((out / stage / "config.json").read_text())["train"]["time_budget_s"] == 1e-3
    assert json.loads((out / "summary.json").read_text())["training_steps"] == {"tokenizer": 4, "ar": 4}


def test_rerun_reuses_every_finished_stage(smoke, monkeypatch):
    out, _ = smoke
    before = json.loads((out / "summary.json").read_text())

    def must_not_run(demo):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr(demo_module, "STAGE_FUNCTIONS", {name: must_not_run for name in STAGES})
    log: list[str] = []
    summary = Demo(out, "smoke", "cpu", progress=False, log=log.append).run()
    assert sum("already done" in line for line in log) == len(STAGES)
    assert summary["class_accuracy"] == before["class_accuracy"]


def test_a_lost_stage_is_the_only_one_redone(smoke, monkeypatch):
    out, _ = smoke
    (out / "stages" / "evaluate.json").unlink()   # as if interrupted during evaluation
    ran: list[str] = []
    real = dict(demo_module.STAGE_FUNCTIONS)

    def tracking(name):
        def run(demo):
            ran.append(name)
            return real[name](demo)
        return run

    monkeypatch.setattr(demo_module, "STAGE_FUNCTIONS", {name: tracking(name) for name in STAGES})
    Demo(out, "smoke", "cpu", progress=False, log=lambda _: None).run()
    assert ran == ["evaluate"] and (out / "stages" / "evaluate.json").is_file()


def test_unknown_preset_is_named():
    with pytest.raises(NextscaleError, match="demo preset 'huge': unknown; choose one of default, long, quick, smoke"):
        Demo("unused", "huge")


def test_own_manifest_with_a_corrupt_file_is_reported_and_skipped(smoke, tmp_path):
    """README's next step: cache tokens of your own audio with the demo's SAT; a bad file is named, not zeroed."""
    out, _ = smoke
    t = np.arange(24000) / 24000
    rows = []
    for i, freq in enumerate((220, 330, 440)):
        sf.write(tmp_path / f"tone{i}.wav", 0.3 * np.sin(2 * np.pi * freq * t), 24000)
        rows.append({"path": f"tone{i}.wav", "labels": ["tone"]})
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    rows.append({"path": "broken.wav", "labels": ["tone"]})
    manifest = tmp_path / "mine.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.warns(DataWarning, match=r"broken\.wav: .*not a readable audio file"):
        result = CliRunner().invoke(app, ["cache-tokens", "--tokenizer", str(out / "tokenizer" / "tokenizer"),
                                          "--out", str(tmp_path / "tokens"), "--device", "cpu", "--split", "all",
                                          "--set", "data.source=manifest", "--set", f"data.path={manifest}"])
    assert result.exit_code == 0, result.output
    index = json.loads((tmp_path / "tokens" / "index.json").read_text())
    assert index["count"] == 3 and index["complete"]


def test_sampling_benchmark_scores_every_setting_of_a_finished_demo(smoke, tmp_path):
    """benchmarks/demo_sampling.py on the smoke demo: one row per setting, each with the demo's classifier's
    accuracy and a finite FAD, written as JSON; a folder that is not a demo is named."""
    sampling = load_script("demo_sampling")
    out, _ = smoke
    grid = [[3, 8, 1.0], [1, 2, 0.8]]
    sampling.main(demo=out, settings=json.dumps(grid), top_p=0.95, per_class=1, seed=1, threads=1, out=tmp_path)
    rows = json.loads((tmp_path / "demo_sampling_cpu.json").read_text())["results"]
    assert [[r["cfg"], r["top_k"], r["temperature"]] for r in rows] == grid
    assert all(0.0 <= r["accuracy"] <= 1.0 and _finite(r["fad"]) for r in rows)
    with pytest.raises(NextscaleError, match="not a finished demo folder"):
        sampling.main(demo=tmp_path, settings="[]", top_p=0.95, per_class=1, seed=1, threads=1, out=tmp_path)
    with pytest.raises(NextscaleError, match="--settings: expected a JSON list"):
        sampling.main(demo=out, settings="[[3, 8]", top_p=0.95, per_class=1, seed=1, threads=1, out=tmp_path)


def test_ar_recipe_benchmark_trains_each_variant_on_the_demo_tokens_and_scores_it(smoke, tmp_path):
    """benchmarks/ar_recipe.py on the smoke demo: each variant trains from the demo's AR config with its
    overrides (the batch it asked for is the one it trained with), is scored with a finite FAD, and a
    re-run skips what is already measured; a folder that is not a demo is named."""
    recipe = load_script("ar_recipe")
    out, _ = smoke
    kwargs = dict(seconds=0.5, steps=0, per_class=1, seed=1, threads=1, work=tmp_path / "runs", out=tmp_path,
                  rerun=False, note="")
    recipe.main(demo=out, variant=["base", "b2 train.batch_size=2"], **kwargs)
    report = json.loads((tmp_path / "ar_recipe_demo_cpu.json").read_text())
    rows = {r["name"]: r for r in report["results"]}
    assert set(rows) == {"base", "b2"}
    assert all(0.0 <= r["accuracy"] <= 1.0 and _finite(r["fad"]) and r["steps"] >= 1 for r in rows.values())
    assert all(r["demo"] == str(out) and r["machine"]["threads"] == 1 for r in rows.values())
    trained = json.loads((tmp_path / "runs" / "b2" / "config.json").read_text())
    assert trained["train"]["batch_size"] == 2 and report["base"]["train"]["batch_size"] != 2
    recipe.main(demo=out, variant=["b2 train.batch_size=2"], **kwargs)       # skipped: same name and budget
    again = json.loads((tmp_path / "ar_recipe_demo_cpu.json").read_text())
    assert [r["train_s"] for r in again["results"]] == [r["train_s"] for r in report["results"]]
    recipe.main(demo=out, variant=["b2 train.batch_size=2"], **kwargs | {"steps": 3})   # equal steps: its own entry
    fixed = json.loads((tmp_path / "ar_recipe_demo_cpu.json").read_text())["results"][-1]
    assert (fixed["name"], fixed["steps"], fixed["budget_s"], fixed["probe_s_per_step"]) == ("b2", 3, "3 steps", None)
    with pytest.raises(NextscaleError, match="not a finished demo folder"):
        recipe.main(demo=tmp_path, variant=["x"], **kwargs)
    with pytest.raises(NextscaleError, match="--steps: a step count >= 1"):
        recipe.main(demo=out, variant=["x"], **kwargs | {"steps": -5})
