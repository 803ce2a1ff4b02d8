"""benchmarks/tokenizer_quality.py at a microscopic size: learned contenders trained, Opus scored, all reported."""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
from html import unescape
from pathlib import Path

import numpy as np
import pytest

from bench_scripts import load_script

MICRO = {"quantizer": dict(latent_dim=8, codebook_size=16, kmeans_iters=2),
         "seanet": dict(n_filters=4, dimension=16, lstm_layers=1),
         "fourier": dict(convnext_width=32, convnext_layers=1, dimension=16)}
LEARNED = ("SAT-455 (SEANet)", "SAT-455 (Fourier)", "RVQ-750 (Fourier)")


def _load_benchmark():
    module = load_script("tokenizer_quality")
    module.SIZES["micro"] = MICRO
    return module


def _opus_or_skip(bench) -> None:
    reason = bench.opus_unavailable()
    if reason:
        pytest.skip(f"no Opus encoder: {reason}")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    bench = _load_benchmark()
    out = tmp_path_factory.mktemp("bench")
    settings = bench.Settings(size="micro", steps=2, batch=2, n_train=4, n_eval=2, threads=1, timing_repeats=2)
    bench.run_benchmark(settings, out, runs=out / "runs", progress=False)
    return out, json.loads((out / "tokenizer_quality_cpu.json").read_text())


def test_json_holds_every_contender_with_its_token_budget(report):
    out, r = report
    assert r["benchmark"] == "tokenizer_quality"
    assert r["settings"]["steps"] == 2 and r["settings"]["batch"] == 2
    assert {"torch", "python", "soundfile", "libsndfile"} <= set(r["versions"]) and r["machine"]["device"] == "cpu"
    by_name = {x["name"]: x for x in r["results"]}
    assert set(LEARNED) <= set(by_name) and set(by_name) - set(LEARNED) <= {"Opus ~6 kbps"}
    quadratic = [1, 2, 4, 6, 9, 12, 16, 20, 25, 31, 37, 43, 50, 58, 66, 75]
    for name in ("SAT-455 (SEANet)", "SAT-455 (Fourier)"):
        assert by_name[name]["scales"] == quadratic and by_name[name]["tokens_per_second"] == 455
        assert by_name[name]["phi"] == "partial"
    rvq = by_name["RVQ-750 (Fourier)"]
    assert rvq["scales"] == [75] * 10 and rvq["tokens_per_second"] == 750 and rvq["phi"] == "none"
    assert [by_name[n]["codec"] for n in LEARNED] == ["seanet", "fourier", "fourier"]
    assert rvq["kbps"] == pytest.approx(750 * 4 / 1000)     # 16-entry codebooks: 4 bits a token


def test_learned_metrics_are_finite_and_per_scale_usage_matches_the_schedule(report):
    out, r = report
    for x in r["results"][:3]:
        h = x["heldout"]
        assert h["n"] == 2 and "per_kind" not in h          # synthetic clips have no kinds
        for key in ("mel_distance", "stft_distance", "si_sdr", "mean_usage"):
            assert math.isfinite(h[key]), (x["name"], key)
        assert h["mel_distance"] > 0 and 0 < h["mean_usage"] <= 1
        assert [row["tokens"] for row in x["per_scale"]] == [2 * n for n in x["scales"]]   # 2 clips per scale
        assert x["encode_s_per_audio_s"] > 0 and x["decode_s_per_audio_s"] > 0 and x["parameters"] > 0
        assert x["train"]["steps"] == 2 and x["train"]["budget_s"] is None    # --steps overrides the budget
        assert (out / "runs" / x["run"] / "tokenizer" / "config.json").is_file()


def test_spectrogram_grid_is_written_and_named_in_the_json(report):
    out, r = report
    png = out / r["spectrograms"]
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


CARD = re.compile(r"<div class='card'><b>([^<]+)</b><audio controls preload='none' src='([^']+)'></audio>"
                  r"(?:<div class='caption'>mel distance ([0-9.]+)</div>)?</div>")


def test_listening_page_plays_each_example_through_every_contender(report):
    import soundfile as sf

    out, r = report
    page = out / r["listening_page"]
    text = page.read_text()
    names = ["original", *(x["name"] for x in r["results"])]
    cards = CARD.findall(text)
    assert [unescape(label) for label, _, _ in cards] == names * 2     # both held-out synthetic clips (n_eval 2)
    for label, src, caption in cards:
        wav, rate = sf.read(page.parent / src, dtype="float32")
        assert rate == 24000 and wav.shape == (24000,), label
        assert (caption == "") == (label == "original"), label
    assert re.search(r"<img src='assets/[^']+\.png'", text)          # the spectrogram grid


def test_listening_page_captions_and_files_match_the_clips(tmp_path):
    """Each caption is the clip's mel distance to its original (recomputed here), each file the clip itself
    within 16-bit rounding."""
    import soundfile as sf
    import torch

    from nextscale.eval.recon import mel_distance

    bench = _load_benchmark()
    t = torch.arange(24000) / 24000
    tone = 0.3 * torch.sin(2 * torch.pi * 440 * t)[None]
    heard = [0.5 * tone, tone + 0.05 * torch.randn(1, 24000, generator=torch.Generator().manual_seed(0))]
    results = [{"name": "half level", "kbps": 1.0, "heldout": {"mel_distance": 0.7}},
               {"name": "noisy", "kbps": 2.0, "heldout": {"mel_distance": 1.2}}]
    grid = tmp_path / "grid.png"
    grid.write_bytes(b"\x89PNG\r\n\x1a\n")
    page = bench.write_listening_page([("tone", [tone, *heard])], results, bench.Settings(), grid, tmp_path / "listen")
    cards = CARD.findall(page.read_text())
    assert [label for label, _, _ in cards] == ["original", "half level", "noisy"]
    for (label, src, caption), clip in zip(cards, [tone, *heard]):
        wav, _ = sf.read(page.parent / src, dtype="float32")
        assert np.abs(wav - clip[0].numpy()).max() <= 1 / 32768, label
        if label != "original":
            assert float(caption) == pytest.approx(float(mel_distance(tone, clip, 24000)), abs=5e-4), label
    assert float(cards[1][2]) != float(cards[2][2])


def test_markdown_table_has_one_row_per_contender(report):
    out, r = report
    table = (out / "tokenizer_quality_cpu.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    rows = {line.split("|")[1].strip(): line for line in lines}
    assert set(LEARNED) <= set(rows)
    assert "| 455 |" in rows["SAT-455 (Fourier)"] and "| 750 |" in rows["RVQ-750 (Fourier)"]
    if "Opus ~6 kbps" in rows:
        assert "n/a" in rows["Opus ~6 kbps"] and "kbps of payload" in table


def test_a_rerun_reuses_finished_contenders_and_settings_changes_retrain(report, monkeypatch):
    out, r = report
    bench = _load_benchmark()
    import nextscale.train.tokenizer as train

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(train, "train_tokenizer", no_training)
    s = bench.Settings(size="micro", steps=2, batch=2, n_train=4, n_eval=2, threads=1, timing_repeats=2)
    again = bench.run_contender("RVQ-750 (Fourier)", s, out / "runs", "synth", 2, {}, progress=False)
    assert again == next(x for x in r["results"] if x["name"] == "RVQ-750 (Fourier)")
    with pytest.raises(AssertionError, match="trained again"):
        bench.run_contender("RVQ-750 (Fourier)", dataclasses.replace(s, steps=3), out / "runs", "synth", 2, {},
                            progress=False)


def test_recipes_come_from_the_packaged_configs():
    """The Fourier contenders train with the demo tokenizer's recipe (its spectral loss on the decoded waveform);
    SEANet with sat-tiny's."""
    bench = _load_benchmark()
    s = bench.Settings()
    fourier, seanet = (bench.train_config(n, s, 10) for n in ("SAT-455 (Fourier)", "SAT-455 (SEANet)"))
    assert fourier["loss"]["fine_spectral_weight"] > 0 and "fine_spectral_weight" not in seanet["loss"]
    assert fourier["model"]["dimension"] == 16 and seanet["model"]["n_filters"] == 8
    shared = ("latent_dim", "codebook_size", "schedule", "num_scales", "phi", "phi_count")
    assert {k: fourier["model"][k] for k in shared} == {k: seanet["model"][k] for k in shared}


def test_budget_gives_each_contender_its_own_step_count(monkeypatch):
    bench = _load_benchmark()
    import nextscale.train.budget as budget

    monkeypatch.setattr(budget, "sat_seconds_per_step", lambda cfg: 0.5 if cfg["model"]["codec"] == "fourier" else 2.0)
    s = bench.Settings(seconds=100.0)
    steps = {name: bench.training_steps(name, s)[0] for name in LEARNED}
    assert steps == {"SAT-455 (SEANet)": 50, "SAT-455 (Fourier)": 200, "RVQ-750 (Fourier)": 200}
    assert bench.training_steps("SAT-455 (SEANet)", bench.Settings(seconds=100.0, steps=7)) == (7, None)
    cfg = bench.train_config("SAT-455 (Fourier)", s, 200)
    assert cfg["train"]["steps"] == 200 and cfg["optim"]["warmup_steps"] == 10


def test_opus_round_trips_a_clip_near_6_kbps_with_finite_metrics():
    bench = _load_benchmark()
    _opus_or_skip(bench)
    s = bench.Settings(n_eval=4, timing_repeats=2)
    r = bench.run_opus(s, "synth", 4, {}, progress=False)
    # VBR follows the content: 3.5 to 10 kbps per synthetic clip, ~6.5 on average at compression level 1.0
    assert 4.0 <= r["kbps"] <= 9.0, r["kbps"]
    assert r["file_kbps"] > r["kbps"] and r["header_bytes"] > 0
    h = r["heldout"]
    assert h["n"] == 4 and all(math.isfinite(h[k]) for k in ("mel_distance", "stft_distance", "si_sdr"))
    assert h["si_sdr"] > 0 and h["mean_usage"] is None and r["train"] is None
    assert r["encode_s_per_audio_s"] > 0 and r["decode_s_per_audio_s"] > 0
    # a decoder running at another rate is resampled back and aligned to the input's length
    x = 0.3 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000).astype(np.float32)
    y = bench.opus_decode(bench.opus_encode(x, 48000, 1.0), 24000, 24000)
    assert y.shape == (24000,) and y.dtype == np.float32 and np.abs(y).max() > 0.1


@pytest.fixture()
def recorded(tmp_path):
    """A recorded-corpus folder: heldout.csv of 5 synthesized WAVs labelled speech (3) or music (2)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    rows = []
    for i, kind in enumerate(["speech", "music", "speech", "music", "speech"]):
        path = tmp_path / "clips" / f"{kind}_{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, (0.1 * rng.standard_normal(24000)).astype(np.float32), 24000)
        rows.append({"path": f"clips/{path.name}", "labels": kind})
    for name in ("heldout.csv", "train.csv"):
        with (tmp_path / name).open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["path", "labels"])
            w.writeheader()
            w.writerows(rows)
    return tmp_path


def test_per_kind_aggregation_groups_rows_by_manifest_label(recorded, tmp_path):
    bench = _load_benchmark()
    kinds = bench.manifest_kinds(recorded / "heldout.csv")
    assert sorted(kinds.values()) == ["music"] * 2 + ["speech"] * 3
    rows = [{"path": p, "mel_distance": float(i), "si_sdr": 10.0 * i} for i, p in enumerate(sorted(kinds))]
    groups = bench.by_kind(rows, kinds)
    expect = {k: [i for i, p in enumerate(sorted(kinds)) if kinds[p] == k] for k in ("music", "speech")}
    assert set(groups) == {"music", "speech"}
    for kind, idx in expect.items():
        assert groups[kind]["n"] == len(idx) and groups[kind]["mel_distance"] == pytest.approx(np.mean(idx))
        assert groups[kind]["si_sdr"] == pytest.approx(10 * np.mean(idx)) and "path" not in groups[kind]
    # --n-eval 2 on recorded data scores one clip of each kind
    s = bench.Settings(data="recorded", recorded=str(recorded), n_eval=2)
    heldout, n, subset_kinds = bench.held_out_clips(s, tmp_path / "work")
    assert n == 2 and sorted(subset_kinds.values()) == ["music", "speech"]
    assert bench.held_out_clips(bench.Settings(data="recorded", recorded=str(recorded), n_eval=0), tmp_path)[1] == 5
    # the training config reads all of train.csv
    from nextscale.train.tokenizer import load_sat_train_config

    cfg = load_sat_train_config(bench.train_config("SAT-455 (Fourier)", s, 10))
    assert cfg.data.source == "manifest" and cfg.data.path == str(recorded / "train.csv")
    assert cfg.data.heldout_fraction == 0


def test_opus_scores_recorded_clips_per_kind(recorded, tmp_path):
    bench = _load_benchmark()
    _opus_or_skip(bench)
    s = bench.Settings(data="recorded", recorded=str(recorded), n_eval=0, timing_repeats=2)
    heldout, n, kinds = bench.held_out_clips(s, tmp_path)
    r = bench.run_opus(s, heldout, n, kinds, progress=False)
    per_kind = r["heldout"]["per_kind"]
    assert {k: v["n"] for k, v in per_kind.items()} == {"music": 2, "speech": 3}
    assert all(math.isfinite(v["mel_distance"]) and v["kbps"] > 0 for v in per_kind.values())


def _main_args(**changes):
    args = dict(device="cpu", data="synth", recorded=Path("."), seconds=0.0, steps=1, batch=1, n_train=1, n_eval=1,
                size="", adversarial=None, threads=-1, seed=0, out=Path("."), runs=None, progress=False)
    return args | changes


def test_bad_options_give_clear_errors(tmp_path):
    bench = _load_benchmark()
    from nextscale.errors import ConfigError

    with pytest.raises(ConfigError, match="--device"):
        bench.main(**_main_args(device="tpu"))
    with pytest.raises(ConfigError, match="--size"):
        bench.main(**_main_args(size="huge"))
    with pytest.raises(ConfigError, match="--data"):
        bench.main(**_main_args(data="podcasts"))
    with pytest.raises(ConfigError, match="recorded_corpus.py"):
        bench.main(**_main_args(data="recorded", recorded=tmp_path))
