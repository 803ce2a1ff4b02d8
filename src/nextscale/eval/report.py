"""A self-contained HTML report: audio players, log-mel spectrograms, coarse-to-fine previews,
metric tables and training curves, in one folder that opens from disk (no server, no CDN).

Usage::

    from nextscale.eval.report import Audio, Curves, Image, ScalePreviews, Section, Table, write_report

    write_report("out/report", "SAT demo", [
        Section("Reconstruction", text="Held-out clips, 1 s at 24 kHz.", items=[
            Table([{"metric": "SI-SDR (dB)", "value": 7.1}, {"metric": "mel distance", "value": 0.61}]),
            Audio("original", wav=x, sample_rate=24000),           # tensor/array → WAV + spectrogram PNG
            Audio("reconstruction", path="recon/0001.wav"),        # an existing file is copied in
            ScalePreviews("coarse → fine", previews=[sat.decode(codes[:k]) for k in (1, 4, 8, 16)],
                          scales=[1, 6, 20, 75], sample_rate=24000),
        ]),
        Section("Training", items=[Curves("runs/sat/metrics.jsonl", keys=("loss", "mel"))]),
    ], metrics_jsonl="runs/sat/metrics.jsonl")                     # optional: adds a curves section

Everything the page references is written under `out_dir/assets/` and linked relatively, so the
folder can be zipped, copied or served as is. Writing again to the same folder replaces the page.
"""
from __future__ import annotations

import html
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch

from ..errors import NextscaleError
from ..io import atomic_write_bytes

Waveform = Union[torch.Tensor, np.ndarray]


@dataclass
class Audio:
    """A player (and, unless `spectrogram=False`, a log-mel PNG) for `wav` or an existing audio file."""

    label: str
    wav: Waveform | None = None
    path: str | Path | None = None
    sample_rate: int = 24000
    caption: str = ""
    spectrogram: bool = True


@dataclass
class Table:
    """Rows of dicts; columns are `columns` or the union of keys in first-seen order. Floats get 4 significant digits."""

    rows: Sequence[dict]
    title: str = ""
    columns: Sequence[str] | None = None


@dataclass
class Image:
    """An existing PNG/JPG/SVG, copied into the report."""

    path: str | Path
    caption: str = ""


@dataclass
class ScalePreviews:
    """Coarse-to-fine previews (previews[k] decoded from the first scales): a spectrogram grid + players."""

    label: str
    previews: Sequence[Waveform]
    sample_rate: int = 24000
    scales: Sequence[int] | None = None
    players: bool = True


@dataclass
class Curves:
    """Training curves from a run's metrics.jsonl: one plot per key (`keys=None`: every numeric key)."""

    metrics: str | Path
    keys: Sequence[str] | None = None
    title: str = ""


Item = Union[Audio, Table, Image, ScalePreviews, Curves]


@dataclass
class Section:
    title: str
    items: Sequence[Item] = field(default_factory=list)
    text: str = ""


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ddd;border-radius:6px;padding:.6em;width:330px}
.card img{width:100%}.wide img{max-width:100%}audio{width:100%}.caption{color:#666;font-size:.9em}"""


class _Assets:
    """Names and writes files under out_dir/assets, returning links relative to out_dir."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.dir = out_dir / "assets"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.used: set[str] = set()

    def name(self, label: str, suffix: str) -> Path:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-.").lower() or "item"
        candidate, n = f"{stem}{suffix}", 1
        while candidate in self.used:
            n += 1
            candidate = f"{stem}-{n}{suffix}"
        self.used.add(candidate)
        return self.dir / candidate

    def link(self, path: Path) -> str:
        return path.relative_to(self.out_dir).as_posix()

    def copy(self, src: str | Path, label: str) -> Path:
        src = Path(src)
        if not src.is_file():
            raise NextscaleError(f"report: {src} does not exist")
        dst = self.name(label, src.suffix.lower())
        shutil.copyfile(src, dst)
        return dst

    def wav(self, wav: Waveform, sample_rate: int, label: str) -> Path:
        import soundfile as sf

        x = wav.detach().float().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav, dtype=np.float32)
        x = np.squeeze(x)
        if x.ndim != 1:
            raise NextscaleError(f"report: audio '{label}' must be one mono clip, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise NextscaleError(f"report: audio '{label}' holds NaN or inf samples")
        dst = self.name(label, ".wav")
        sf.write(dst, np.clip(x, -1.0, 1.0), sample_rate, subtype="PCM_16")  # 16-bit plays in every browser
        return dst


def _fmt(value) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return html.escape(str(value))


def _table(t: Table) -> str:
    columns = list(t.columns) if t.columns else list(dict.fromkeys(k for row in t.rows for k in row))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(row.get(c, ''))}</td>" for c in columns) + "</tr>" for row in t.rows)
    title = f"<h3>{html.escape(t.title)}</h3>" if t.title else ""
    return f"{title}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _card(label: str, audio_link: str | None, image_link: str | None, caption: str = "") -> str:
    parts = [f"<div class='card'><b>{html.escape(label)}</b>"]
    if image_link:
        parts.append(f"<img src='{html.escape(image_link)}' alt='{html.escape(label)} log-mel spectrogram'>")
    if audio_link:
        parts.append(f"<audio controls preload='none' src='{html.escape(audio_link)}'></audio>")
    if caption:
        parts.append(f"<div class='caption'>{html.escape(caption)}</div>")
    return "".join(parts) + "</div>"


def _audio(item: Audio, assets: _Assets) -> str:
    from ..plots import plot_spectrogram

    if (item.wav is None) == (item.path is None):
        raise NextscaleError(f"report: audio '{item.label}' needs exactly one of wav= or path=")
    if item.wav is not None:
        wav, dst = item.wav, assets.wav(item.wav, item.sample_rate, item.label)
        sr = item.sample_rate
    else:
        import soundfile as sf

        dst = assets.copy(item.path, item.label)
        wav, sr = sf.read(dst, dtype="float32", always_2d=True)
        wav = wav.mean(axis=1)
    image = None
    if item.spectrogram:
        image = assets.link(plot_spectrogram(wav, sr, assets.name(item.label, ".png")))
    return _card(item.label, assets.link(dst), image, item.caption)


def _previews(item: ScalePreviews, assets: _Assets) -> str:
    from ..plots import plot_scale_previews

    grid = plot_scale_previews(list(item.previews), item.sample_rate, assets.name(item.label, ".png"),
                               scales=item.scales, title=item.label)
    out = [f"<div class='wide'><img src='{html.escape(assets.link(grid))}' alt='{html.escape(item.label)}'></div>"]
    if item.players:
        cards = []
        for k, wav in enumerate(item.previews):
            label = f"{item.label}: scales 1–{k + 1}" + (f" ({item.scales[k]} tokens)" if item.scales else "")
            cards.append(_card(label, assets.link(assets.wav(wav, item.sample_rate, label)), None))
        out.append("<div class='grid'>" + "".join(cards) + "</div>")
    return "".join(out)


def _curves(item: Curves, assets: _Assets) -> str:
    from ..plots import plot_loss_curve, read_metrics

    keys = list(item.keys) if item.keys else list(dict.fromkeys(
        k for row in read_metrics(item.metrics) for k, v in row.items()
        if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)))
    cards = [_card(key, None, assets.link(plot_loss_curve(item.metrics, assets.name(f"curve-{key}", ".png"), keys=(key,))))
             for key in keys]
    title = f"<h3>{html.escape(item.title)}</h3>" if item.title else ""
    return title + "<div class='grid'>" + "".join(cards) + "</div>"


def _render(item: Item, assets: _Assets) -> str:
    if isinstance(item, Table):
        return _table(item)
    if isinstance(item, Audio):
        return _audio(item, assets)
    if isinstance(item, Image):
        dst = assets.copy(item.path, Path(item.path).stem)
        return _card(item.caption or Path(item.path).name, None, assets.link(dst))
    if isinstance(item, ScalePreviews):
        return _previews(item, assets)
    if isinstance(item, Curves):
        return _curves(item, assets)
    raise NextscaleError(f"report: cannot render a {type(item).__name__}; use Audio, Table, Image, ScalePreviews or Curves")


def write_report(out_dir: str | Path, title: str, sections: Sequence[Section],
                 metrics_jsonl: str | Path | None = None) -> Path:
    """Write `out_dir/index.html` (+ `out_dir/assets/`) and return the page's path.

    `metrics_jsonl`, when given, appends a "Training curves" section plotting every numeric key.
    Consecutive Audio items are laid out side by side.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_dir / "assets", ignore_errors=True)
    assets = _Assets(out_dir)
    sections = list(sections)
    if metrics_jsonl is not None:
        sections.append(Section("Training curves", [Curves(metrics_jsonl)], text=f"From {Path(metrics_jsonl).name}."))
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            body.append(f"<p>{html.escape(section.text)}</p>")
        run: list[str] = []
        for item in section.items:
            rendered = _render(item, assets)
            if isinstance(item, Audio):
                run.append(rendered)
                continue
            if run:
                body.append("<div class='grid'>" + "".join(run) + "</div>")
                run = []
            body.append(rendered)
        if run:
            body.append("<div class='grid'>" + "".join(run) + "</div>")
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    path = out_dir / "index.html"
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
