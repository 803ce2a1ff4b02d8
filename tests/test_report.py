"""The HTML report renders, parses and references only files that exist."""
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from nextscale.errors import NextscaleError
from nextscale.eval.report import Audio, Curves, Image, ScalePreviews, Section, Table, write_report


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for key, value in attrs:
            if key in ("src", "href"):
                self.links.append(value)


def test_report_renders_with_every_item(tmp_path):
    t = torch.arange(24000) / 24000
    tone = 0.3 * torch.sin(2 * math.pi * 440 * t)
    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.parent.mkdir()
    metrics.write_text("\n".join(json.dumps({"step": s, "loss": 1 / (s + 1), "mel": 2 / (s + 1), "lr": 1e-3})
                                 for s in range(20)))
    import soundfile as sf

    sf.write(tmp_path / "existing.wav", tone.numpy(), 24000)
    png = tmp_path / "figure.png"
    from nextscale.plots import plot_spectrogram

    plot_spectrogram(tone, 24000, png)
    page = write_report(tmp_path / "report", "Demo <&> report", [
        Section("Metrics", [Table([{"metric": "FAD", "value": 1.23456789}, {"metric": "N", "value": 10}])],
                text="Numbers & things"),
        Section("Audio", [Audio("tone", wav=tone), Audio("existing file", path=tmp_path / "existing.wav"),
                          Image(png, caption="a figure"),
                          ScalePreviews("coarse to fine", [tone * 0.2, tone * 0.6, tone], scales=[1, 2, 4])]),
        Section("Curves", [Curves(metrics, keys=("loss",))]),
    ], metrics_jsonl=metrics)
    text = page.read_text()
    parser = _Links()
    parser.feed(text)
    assert "audio" in parser.tags and "table" in parser.tags
    assert "Demo &lt;&amp;&gt; report" in text and "1.235" in text
    assert len(parser.links) >= 10
    for link in parser.links:
        assert not link.startswith(("/", "http")), link  # relative, no server
        assert (page.parent / link).is_file(), link
    # the curves section plotted every numeric key of the run
    assert any("curve-lr" in link for link in parser.links) and any("curve-mel" in link for link in parser.links)


def test_report_errors_are_clear(tmp_path):
    with pytest.raises(NextscaleError, match="exactly one of wav= or path="):
        write_report(tmp_path, "x", [Section("s", [Audio("a")])])
    with pytest.raises(NextscaleError, match="does not exist"):
        write_report(tmp_path, "x", [Section("s", [Image(tmp_path / "missing.png")])])
    with pytest.raises(NextscaleError, match="NaN"):
        write_report(tmp_path, "x", [Section("s", [Audio("a", wav=torch.full((100,), float("nan")))])])
