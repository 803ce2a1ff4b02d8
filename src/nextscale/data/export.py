"""Writing the synthetic corpus to disk: 16-bit WAVs, a `manifest.jsonl` that `ManifestDataset`
reads back, a `corpus.json` summary and, on request, spectrogram PNGs to look at each kind.

The manifest is written last and atomically, so an interrupted export never leaves a manifest
that points at clips which were not written.
"""
from __future__ import annotations

import io
import json
import time
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from ..audio import save_audio
from ..errors import DataError
from ..io import atomic_write_bytes, atomic_write_json
from .synth import KINDS, SynthClip, synth_clip

MANIFEST_NAME = "manifest.jsonl"
SUMMARY_NAME = "corpus.json"
PREVIEWS_PER_KIND = 3


def clip_name(index: int, kind: str) -> str:
    """`<kind>_<index>.wav`: the kind first, so tools that infer a label from the file name find it."""
    return f"{kind}_{index:06d}.wav"


def write_preview(clips: list[SynthClip], sample_rate: int, path: Path) -> None:
    """One PNG per kind: the log-mel spectrograms of a few of its clips, captions as titles."""
    from matplotlib.figure import Figure

    from ..plots import log_mel

    fig = Figure(figsize=(3.2 * len(clips), 2.6))
    for i, clip in enumerate(clips):
        spec = log_mel(clip.audio, sample_rate, n_mels=64)
        ax = fig.add_subplot(1, len(clips), i + 1)
        ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=spec.max() - 8.0,
                  extent=(0.0, clip.audio.size / sample_rate, 0, spec.shape[0]))
        ax.set_title(clip.caption, fontsize=8)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("mel bin" if i == 0 else "")
    fig.suptitle(clips[0].kind)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    atomic_write_bytes(path, buffer.getvalue())


def export_corpus(out_dir: str | Path, n: int, seed: int = 0, preview: bool = False, sample_rate: int = 24000,
                  clip_seconds: float = 1.0, progress: bool = True) -> Path:
    """Render clips 0..n−1 of the corpus with `seed` into `out_dir`; returns the manifest's path."""
    if n <= 0:
        raise DataError(f"synthetic corpus: n must be positive, got {n}")
    out = Path(out_dir)
    audio_dir = out / "wav"
    audio_dir.mkdir(parents=True, exist_ok=True)
    rows, counts = [], Counter()
    render_seconds = 0.0
    previews = []
    for index in tqdm(range(n), desc="synthesising", unit="clip", disable=not progress):
        start = time.perf_counter()
        clip = synth_clip(index, seed, sample_rate, clip_seconds)
        render_seconds += time.perf_counter() - start
        rel = f"wav/{clip_name(index, clip.kind)}"
        save_audio(out / rel, clip.audio, sample_rate)
        rows.append({"path": rel, "caption": clip.caption, "labels": [clip.kind], "index": index, "seed": seed})
        counts[clip.kind] += 1
        if preview and counts[clip.kind] <= PREVIEWS_PER_KIND:
            previews.append(clip)
    for kind in tqdm(KINDS if previews else (), desc="previews", unit="png", disable=not progress):
        write_preview([c for c in previews if c.kind == kind], sample_rate, out / "preview" / f"{kind}.png")
    summary = {"n": n, "seed": seed, "sample_rate": sample_rate, "clip_seconds": clip_seconds,
               "total_seconds": n * clip_seconds, "clips_per_kind": {k: counts[k] for k in KINDS},
               "render_ms_per_clip": round(1000 * render_seconds / n, 3), "manifest": MANIFEST_NAME,
               "previews": len(KINDS) if previews else 0}
    atomic_write_json(out / SUMMARY_NAME, summary)
    manifest = out / MANIFEST_NAME
    atomic_write_bytes(manifest, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))
    return manifest
