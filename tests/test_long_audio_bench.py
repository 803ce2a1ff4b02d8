"""benchmarks/long_audio.py: a long file through the SAT side by side, chunked and with overlapping windows
crossfaded, each scored at its own joins, and the JSON that records them."""
from __future__ import annotations

import json
import math

import numpy as np
import soundfile as sf
import torch

from bench_scripts import load_script
from tiny_models import SAT_CONFIG

long_audio = load_script("long_audio")


def window_sat():
    """A tiny SAT whose windows (0.4 s at 8 kHz, T = 50 frames of hop 64) are long against the join metric's
    64 ms analysis window, so each join has changes away from it to compare with."""
    from nextscale.tokenizer.model import SAT

    torch.manual_seed(0)
    sat = SAT.from_config(SAT_CONFIG | {"clip_seconds": 0.4, "ratios": [8, 8], "scales": [1, 3, 6, 12, 25, 50],
                                        "codebook_size": 16, "latent_dim": 4})
    with torch.no_grad():                                  # seed the codebooks as training would
        sat.train()(torch.randn(4, 1, sat.clip_samples) * 0.3)
    return sat.eval()


def tone_file(path, sample_rate: int, seconds: float):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 1.5 * t)), sample_rate)
    return path


def run(tmp_path, overlap: int, tag: str) -> dict:
    sat = window_sat()
    sat.save_pretrained(tmp_path / "sat")
    wav = tone_file(tmp_path / "tone.wav", sat.sample_rate, 4.0)
    long_audio.main(files=[wav], tokenizer=str(tmp_path / "sat"), seconds=4.0, overlap=overlap, offset=0.0,
                    threads=1, device="cpu", out=tmp_path, tag=tag)
    return json.loads((tmp_path / f"long_audio_cpu{tag}.json").read_text())


def test_overlap_adds_a_crossfaded_reconstruction_scored_at_the_shared_stretches(tmp_path):
    report = run(tmp_path, overlap=8, tag="_o8")
    row = report["files"][0]
    assert report["overlap_frames"] == 8 and row["overlap_frames"] == 8
    assert row["windows"] == 10 and row["windows_crossfaded"] == 1 + math.ceil((500 - 50) / 42)   # T 50, stride 42
    for name in ("seamless", "chunked", "crossfaded"):
        assert all(math.isfinite(row[name][k]) for k in ("ratio", "ratio_centre", "mel_distance")), name
    assert math.isfinite(row["original_at_crossfades"]["ratio"])
    assert row["crossfaded"]["joins_changes"] != row["seamless"]["joins_changes"]    # other joins: the stretches
    assert (tmp_path / "long_audio_cpu_o8_joins.png").is_file()


def test_overlap_zero_keeps_the_side_by_side_report(tmp_path):
    row = run(tmp_path, overlap=0, tag="")["files"][0]
    assert {"seamless", "chunked", "original"} <= set(row) and "crossfaded" not in row and "overlap_frames" not in row


def test_crossfaded_reconstruction_is_the_sats_overlapping_round_trip():
    sat = window_sat()
    wav = torch.randn(1, 3 * sat.window_samples) * 0.2
    coded = long_audio.reconstructions(sat, wav, 5)
    with torch.no_grad():
        direct = sat.decode(sat.encode(wav[None], overlap=5), length=wav.shape[-1], overlap=5)[0]
        seamless = sat.decode(sat.encode(wav[None]), length=wav.shape[-1])[0]
    assert torch.equal(coded["crossfaded"], direct) and torch.equal(coded["seamless"], seamless)
    assert set(long_audio.reconstructions(sat, wav, 0)) == {"seamless", "chunked"}
