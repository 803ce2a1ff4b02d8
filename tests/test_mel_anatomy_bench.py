"""benchmarks/mel_anatomy.py: its splits add up to the eval metric, and it runs on a saved tiny Fourier SAT."""
from __future__ import annotations

import json

import pytest
import torch

from bench_scripts import load_script
from tiny_fourier import TINY

anatomy_script = load_script("mel_anatomy")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny untrained Fourier SAT saved and loaded back, and 0.5 s held-out clips of the synthetic corpus."""
    from nextscale.data.export import export_corpus
    from nextscale.tokenizer.model import SAT, SATConfig

    root = tmp_path_factory.mktemp("anatomy")
    torch.manual_seed(0)
    SAT(SATConfig(**TINY, clip_seconds=0.5, fourier_phase="centred")).save_pretrained(root / "sat")
    manifest = export_corpus(root / "heldout", 6, seed=3, sample_rate=8000, clip_seconds=0.5, progress=False)
    return root, SAT.from_pretrained(root / "sat").eval(), manifest


def test_the_cell_split_adds_up_to_the_metric_at_its_resolution(saved):
    """Too loud + too quiet over the three level bands is the mean |log-mel error|, i.e. `mel_distance` at that one
    resolution; the bands' cell shares sum to one."""
    from nextscale.eval.recon import mel_distance

    _, sat, _ = saved
    torch.manual_seed(1)
    ref = 0.3 * torch.randn(1, 1, sat.clip_samples) * torch.linspace(1, 0, sat.clip_samples) ** 4
    est = ref + 0.01 * torch.randn_like(ref)
    for resolution in ((2048, 512, 128), (128, 32, 16)):
        parts = anatomy_script.cell_split(ref, est, sat.sample_rate, resolution)
        total = sum(parts[f"{b}_too_loud"] + parts[f"{b}_too_quiet"] for b in anatomy_script.BANDS)
        assert total == pytest.approx(float(mel_distance(ref[0], est[0], sat.sample_rate, [resolution])), rel=1e-5)
        assert sum(parts[f"{b}_cells"] for b in anatomy_script.BANDS) == pytest.approx(1.0)
        assert parts["quiet_cells"] > 0          # the decaying clip reaches 80 dB under its peak


def test_an_untrained_codec_has_a_distance_for_every_reconstruction_and_the_cli_writes_json_and_png(saved):
    root, sat, manifest = saved
    anatomy_script.main(None, model=root / "sat", manifest=manifest, threads=1, out=root / "out")
    result = json.loads((root / "out" / "mel_anatomy_cpu.json").read_text())
    assert set(result) >= {"round_trip", "not_quantised", *anatomy_script.SWAPS, "round_trip_cells"}
    labels = {json.loads(line)["labels"][0] for line in manifest.read_text().splitlines()}
    for name in ("round_trip", "not_quantised", *anatomy_script.SWAPS):
        row = result[name]
        assert set(row["per_class"]) == labels
        assert row["mel_distance"] == pytest.approx(sum(row["per_resolution"].values()) / 5, rel=1e-6)
    # an untrained decoder is far from the clips; the true magnitudes with random phases are much closer
    assert result["true_magnitude_random_phase"]["mel_distance"] < 0.5 * result["round_trip"]["mel_distance"]
    assert (root / "out" / result["spectrograms"]).stat().st_size > 10_000


def test_swapping_back_both_halves_of_the_round_trip_gives_the_round_trip_and_the_input(saved):
    """The swaps join one STFT's magnitudes with another's phases at the codec's frames: with the round trip's own
    phases its magnitudes give the round trip back (its frames are consistent, up to the overlap-add's edges), and
    the input's magnitudes with its own phases give the input."""
    from nextscale.eval.recon import mel_distance

    _, sat, _ = saved
    torch.manual_seed(2)
    wav = 0.3 * torch.sin(torch.arange(sat.clip_samples) * 0.05)[None, None] + 0.01 * torch.randn(1, 1, sat.clip_samples)
    rec = anatomy_script.reconstructions(sat, wav)
    stft = sat.decoder.stft.parts[0]
    with torch.no_grad():
        spec, decoded = stft(wav), stft(rec["round_trip"])
        own = stft.inverse(torch.polar(decoded.abs(), decoded.angle()))[..., : wav.shape[-1]]
        back = stft.inverse(torch.polar(spec.abs(), spec.angle()))[..., : wav.shape[-1]]
    assert float(mel_distance(rec["round_trip"][0], own[0], sat.sample_rate)) < 0.05
    assert float(mel_distance(wav[0], back[0], sat.sample_rate)) < 0.05
    # an untrained decoder's magnitudes are wrong, so with the true phases it stays far; true magnitudes come close
    far = float(mel_distance(wav[0], rec["decoded_magnitude_true_phase"][0], sat.sample_rate))
    near = float(mel_distance(wav[0], rec["true_magnitude_decoded_phase"][0], sat.sample_rate))
    assert near < 0.5 * far


def test_without_a_demo_folder_it_needs_model_and_manifest(tmp_path):
    from nextscale.errors import ConfigError

    with pytest.raises(ConfigError, match="--model and --manifest"):
        anatomy_script.main(None, model=tmp_path, manifest=None, threads=1, out=tmp_path)

