"""Plot helpers: the mel analysis is right (checked on sines) and every plot writes a real PNG."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nextscale.errors import DataError, NextscaleError
from nextscale.plots import log_mel, plot_loss_curve, plot_scale_previews, plot_spectrogram
from nextscale.tokenizer.mel import log_mel_spectrogram

SR = 16000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sine(freq: float, seconds: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(SR * seconds), dtype=torch.float64) / SR
    return torch.sin(2 * torch.pi * freq * t).float()[None, None]  # (1, 1, S)


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 2000
    assert path.stat().st_mode & 0o777 == 0o644  # shareable output, not mkstemp's 0600


def test_plots_use_the_losses_mel_front_end():
    """One mel analysis in the project (outside VGGish): a plot is the losses' log-mel, in log10 power."""
    wav = sine(440.0)
    expected = log_mel_spectrogram(wav[0, 0], SR, 1024, 256, 64).numpy() * 2 / np.log(10)
    np.testing.assert_allclose(log_mel(wav, SR, n_fft=1024, hop=256, n_mels=64), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("freq", [300.0, 2500.0])
def test_log_mel_of_a_sine_peaks_in_the_band_of_its_frequency(freq):
    spec = log_mel(sine(freq), SR, n_fft=1024, hop=256, n_mels=64)
    assert spec.shape == (64, 1 + (SR // 2) // 256)                         # centred frames
    hz_to_mel = lambda hz: 2595.0 * np.log10(1.0 + hz / 700.0)              # HTK, independent of the code
    centres = 700.0 * (10.0 ** (np.linspace(0, hz_to_mel(SR / 2), 66) / 2595.0) - 1.0)[1:-1]
    expected = int(np.argmin(np.abs(centres - freq)))
    assert abs(int(spec.mean(axis=1).argmax()) - expected) <= 1


def test_nan_audio_is_refused():
    wav = sine(440.0)
    wav[..., 10] = float("nan")
    with pytest.raises(NextscaleError, match="NaN"):
        log_mel(wav, SR)


def test_spectrogram_and_preview_grid_png(tmp_path):
    out = plot_spectrogram(sine(440.0), SR, tmp_path / "a" / "spec.png", title="440 Hz")
    assert_png(out)
    previews = [sine(220.0 * (k + 1)) for k in range(5)]
    grid = plot_scale_previews(previews, SR, tmp_path / "grid.png", scales=[1, 2, 4, 6, 9])
    assert_png(grid)
    with pytest.raises(NextscaleError, match="5 previews but 2"):
        plot_scale_previews(previews, SR, tmp_path / "bad.png", scales=[1, 2])


def test_loss_curve_from_metrics_jsonl(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "loss": 5.0 / (s + 1), "lr": 1e-3} for s in range(0, 50, 5)]
    rows.insert(3, {"step": 12, "eval_fad": 3.2})  # rows without the key are skipped, not an error
    metrics.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert_png(plot_loss_curve(metrics, tmp_path / "loss.png", keys=("loss", "eval_fad"), log_y=True))
    with pytest.raises(DataError, match="no rows"):
        plot_loss_curve(metrics, tmp_path / "x.png", keys=("nope",))
    metrics.write_text('{"step": 1, "loss": 2}\n{broken\n')
    with pytest.raises(DataError, match=r"metrics.jsonl line 2: not valid JSON"):
        plot_loss_curve(metrics, tmp_path / "x.png")


def test_previews_quieter_than_the_shared_floor_still_plot(tmp_path):
    """A coarse preview can be 80 dB below the full decode (a near-silent first scale): drawn black, no error."""
    loud = 0.5 * torch.sin(torch.arange(24000) / 24000 * 2 * 3.14159 * 440)[None]
    path = plot_scale_previews([1e-6 * loud, loud], 24000, tmp_path / "p.png", scales=[1, 75])
    assert path.stat().st_size > 0
