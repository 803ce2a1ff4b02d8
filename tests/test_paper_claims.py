"""`benchmarks/paper_claims.py`: the scale-coherence metric against hand-computed cases, the schedules it
compares, its statistics, and the whole run on the smoke budget (every contender, JSON schema, resume
after a killed stage, the per-audio-type comparison on a stand-in recorded corpus)."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nextscale.audio import save_audio
from nextscale.bench.paper import BUDGETS, GENERATION_TRIO, PaperRun, tokenizer_specs
from nextscale.bench.paper_table import collect, correlations, markdown, mean_std
from nextscale.errors import ConfigError
from nextscale.eval.scale_coherence import N_FFT, HOP, N_MELS, coherence_summary, scale_changes, scale_coherence
from nextscale.tokenizer.mel import log_mel_spectrogram
from nextscale.tokenizer.schedules import make_schedule, spread_schedule
from bench_scripts import load_script
from tiny_models import tiny_sat


# ---------------------------------------------------------------------- the boundary metric
def test_identical_scales_change_nothing():
    mel = torch.randn(3, 8, 10)
    summary = coherence_summary(scale_changes([mel, mel.clone(), mel.clone()]))
    assert summary == {"changes": [0.0, 0.0], "non_monotone": 0.0, "final_share": 0.0}


def test_known_steps_give_the_hand_computed_changes():
    base = torch.zeros(2, 4, 5)
    shrinking = coherence_summary(scale_changes([base, base + 1.0, base + 1.5]))   # changes 1, 0.5
    assert shrinking["changes"] == pytest.approx([1.0, 0.5])
    assert shrinking["non_monotone"] == 0.0
    assert shrinking["final_share"] == pytest.approx(0.5 / 1.5)
    growing = coherence_summary(scale_changes([base, base + 0.5, base - 0.5]))     # changes 0.5, 1.0
    assert growing["changes"] == pytest.approx([0.5, 1.0])
    assert growing["non_monotone"] == pytest.approx(0.5 / 1.5)                     # the rise over the total


def test_changes_average_over_clips_and_bins():
    a = torch.zeros(2, 2, 3)
    b = a.clone()
    b[0, 0] = 4.0          # clip 0: one of two bands moves by 4 -> 2; clip 1 unchanged -> 0
    changes = scale_changes([a, b])
    assert changes[0].tolist() == pytest.approx([2.0, 0.0])
    assert coherence_summary(changes)["changes"] == pytest.approx([1.0])


def test_bad_previews_are_named():
    with pytest.raises(ConfigError, match="at least two"):
        scale_changes([torch.zeros(1, 2, 3)])
    with pytest.raises(ConfigError, match="differ in shape"):
        scale_changes([torch.zeros(1, 2, 3), torch.zeros(1, 2, 4)])


def test_scale_coherence_of_a_sat_matches_prefix_decodes_by_hand():
    sat = tiny_sat()
    torch.manual_seed(0)
    with torch.no_grad():
        codes = sat.encode(0.3 * torch.randn(3, 1, sat.clip_samples))
        mels = [log_mel_spectrogram(sat.decode(codes[:k + 1])[:, 0].double(), sat.sample_rate, N_FFT, HOP, N_MELS)
                for k in range(len(codes))]
    expected = [float(np.mean([(mels[k] - mels[k - 1]).abs().mean().item()])) for k in range(1, len(codes))]
    got = scale_coherence(sat, codes, batch_size=2)      # batched in pieces of two: same figures
    assert got["changes"] == pytest.approx(expected, rel=1e-4, abs=1e-6)


# ---------------------------------------------------------------------- schedules and statistics
@pytest.mark.parametrize("kind,K", [("quadratic", 16), ("linear", 16), ("quadratic", 8)])
def test_spread_schedule_is_the_schedule_where_it_already_fits(kind, K):
    assert spread_schedule(kind, 75, K) == make_schedule(kind, 75, K)


@pytest.mark.parametrize("kind,K", [("log", 16), ("quadratic", 32), ("log", 75)])
def test_spread_schedule_pushes_colliding_scales_apart(kind, K):
    with pytest.raises(ConfigError):
        make_schedule(kind, 75, K)
    scales = spread_schedule(kind, 75, K)
    assert len(scales) == K and scales[0] >= 1 and scales[-1] == 75
    assert all(b > a for a, b in zip(scales, scales[1:]))
    if K < 75:   # the large scales keep the kind's spacing
        assert scales[-2] == {"log": 56, "quadratic": 70}[kind]


def test_spread_schedule_refuses_more_scales_than_frames():
    with pytest.raises(ConfigError, match="cannot fit"):
        spread_schedule("quadratic", 10, 11)


def test_mean_std_and_correlations_against_numpy():
    assert mean_std([1.0, 2.0, 4.0]) == {"mean": pytest.approx(7 / 3), "std": pytest.approx(np.std([1, 2, 4], ddof=1)),
                                         "n": 3}
    assert mean_std([5.0])["std"] is None
    rows = [{"x": float(i), "y": 2.0 * i + 1, "z": float((-1) ** i)} for i in range(5)]
    corr = correlations(rows, ("x",), ("y", "z"))
    assert corr["x~y"]["pearson"] == pytest.approx(1.0) and corr["x~y"]["spearman"] == pytest.approx(1.0)
    assert corr["x~z"]["pearson"] == pytest.approx(np.corrcoef([r["x"] for r in rows], [r["z"] for r in rows])[0, 1])
    assert correlations(rows[:2], ("x",), ("y",))["x~y"]["pearson"] is None     # too few tokenizers


def test_every_budget_names_valid_tokenizers():
    for budget in BUDGETS.values():
        specs = tokenizer_specs(budget)
        assert {"quadratic", "linear", "log", "rvq", "phi_none", "phi_shared", "phi_unshared"} <= set(specs)
        assert specs["quadratic"]["scales"][-1] == specs["log"]["scales"][-1]


def test_unknown_budget_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="budget 'huge'"):
        PaperRun(tmp_path, budget="huge")


# ---------------------------------------------------------------------- the whole run, smoke size
def _script():
    return load_script("paper_claims")


def _recorded_standin(root: Path) -> Path:
    """Two 'kinds' of short WAVs in train.csv / heldout.csv, the layout recorded_corpus.py writes."""
    rng = np.random.default_rng(0)
    t = np.arange(24000) / 24000
    for split, n in (("train", 8), ("heldout", 4)):
        with open(root / f"{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "labels", "start", "duration"])
            for i in range(n):
                kind = ("speech", "music")[i % 2]
                wav = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.01 * rng.standard_normal(t.size)
                path = root / f"{split}_{kind}_{i}.wav"
                save_audio(path, torch.tensor(wav, dtype=torch.float32), 24000)
                w.writerow([str(path), kind, 0.0, ""])
    return root


@pytest.mark.slow
def test_smoke_run_covers_every_comparison_and_resumes_after_a_killed_stage(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    script = _script()
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    _recorded_standin(recorded)
    out, results = tmp_path / "run", tmp_path / "results"

    def killed(self):
        raise KeyboardInterrupt("killed while timing")

    monkeypatch.setattr(PaperRun, "stage_speed", killed)
    with pytest.raises(KeyboardInterrupt):
        script.main(device="cpu", budget="smoke", out=out, results=results, recorded=recorded, threads=1, progress=False)
    partial = json.loads((results / "paper_claims_smoke_cpu.json").read_text())
    assert "speed" not in partial["stages_done"] and partial["speed"] is None
    assert len(partial["generation"]) == 3                      # every contender, every seed, before the kill
    finished = set(partial["stages_done"])
    monkeypatch.undo()

    logs: list[str] = []
    run = PaperRun(out, budget="smoke", progress=False, recorded=recorded, log=logs.append)
    run.run()
    reused = {line.split("]")[0][1:] for line in logs if "already done" in line}
    ran = {line.split("]")[0][1:] for line in logs if line.endswith("running …")}
    assert finished <= reused and "speed" in ran and not (finished & ran)

    script.main(device="cpu", budget="smoke", out=out, results=results, recorded=recorded, threads=1, progress=False)
    data = json.loads((results / "paper_claims_smoke_cpu.json").read_text())
    assert data["machine"] and data["versions"]["torch"] == torch.__version__
    assert data["stages_planned"] == len(data["stages_done"])
    budget = BUDGETS["smoke"]
    for model, tok in GENERATION_TRIO:
        g = data["generation"][model]
        assert g["tokenizer"] == tok and g["fad"]["n"] == budget.seeds and g["parameters"] > 0
        assert all(math.isfinite(g[m]["mean"]) for m in ("fad", "accuracy", "inception_score", "non_monotone"))
    steps = {m: data["generation"][m]["steps_per_clip"] for m, _ in GENERATION_TRIO}
    assert steps["aar"] == budget.scales[0]
    assert steps["next_token_scale"] == data["tokenizers"]["quadratic"]["tokens"]
    assert steps["next_token_rvq"] == budget.rvq_levels * data["tokenizers"]["rvq"]["scales"][0]
    assert {r["model"] for r in data["speed"]["rows"]} == {m for m, _ in GENERATION_TRIO}
    assert [r["num_scales"] for r in data["schedules"]] == [4, 4, 4, 3, 6]
    assert [r["phi"] for r in data["phi"]] == ["none", "shared", "partial", "unshared"]
    assert all("aar_fad" in r for r in data["schedules"] + data["phi"])
    assert set(data["audio_types"]) == {"quadratic", "linear", "log"}
    assert set(data["audio_types"]["log"]["per_kind"]) == {"speech", "music"}
    assert data["utilisation"]["correlation"]["n"] == len(tokenizer_specs(budget))
    md = (results / "paper_claims_smoke_cpu.md").read_text()
    assert "AAR (next-scale)" in md and "Phi sharing" in md and "(not run yet)" not in md
    assert (out / "report" / "index.html").is_file()
    assert (results / "paper_claims_smoke_cpu_spectrograms.png").stat().st_size > 0
    assert markdown(collect(run)).count("###") == 7
