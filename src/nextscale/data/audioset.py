"""AudioSet segment lists (`balanced_train_segments.csv` & co.) mapped to a folder of downloaded clips.

Segment rows look like `--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"` after '#' comment
lines. Downloaders name clips differently, so a segment is matched to the first existing file
stem among `<YTID>_<start>_<end>`, `<YTID>_<start>`, `<YTID>` (each also with a `Y` prefix),
with start/end written as `30`, `30.0`, `30.000` or milliseconds `30000`. A file named by the bare
YTID that is longer than the segment is taken to be the whole video and is cropped to the segment.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from ..audio import AUDIO_EXTENSIONS
from ..errors import DataError
from ..io import read_text
from .entries import Entry


@dataclass(frozen=True)
class Segment:
    ytid: str
    start: float
    end: float
    mids: tuple[str, ...]
    line: int


def read_segments(path: str | Path) -> tuple[list[Segment], list[tuple[str, str]]]:
    """Segments of an AudioSet CSV, plus (where, reason) of malformed rows."""
    path = Path(path)
    text = read_text(path, DataError, what="segment list")
    segments, bad = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        row = next(csv.reader([line], skipinitialspace=True))
        where = f"{path} line {number}"
        if len(row) < 4:
            bad.append((where, f"expected YTID, start_seconds, end_seconds, positive_labels; got {len(row)} columns"))
            continue
        try:
            start, end = float(row[1]), float(row[2])
        except ValueError:
            bad.append((where, f"start/end are not numbers: {row[1]!r}, {row[2]!r}"))
            continue
        if not 0 <= start < end:
            bad.append((where, f"segment {start}–{end} s is empty or negative"))
            continue
        mids = tuple(m.strip() for m in ",".join(row[3:]).split(",") if m.strip())
        segments.append(Segment(row[0].strip(), start, end, mids, number))
    if not segments:
        raise DataError(f"{path}: no AudioSet segments (expected rows 'YTID, start_seconds, end_seconds, \"labels\"')")
    return segments, bad


def read_class_names(path: str | Path) -> dict[str, str]:
    """mid → display name from `class_labels_indices.csv` (index, mid, display_name), in index order."""
    path = Path(path)
    reader = csv.DictReader(io.StringIO(read_text(path, DataError, what="segment list")))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    if "mid" not in columns or "display_name" not in columns:
        raise DataError(f"{path}: expected columns index, mid, display_name (found: {', '.join(columns) or 'none'})")
    reader.fieldnames = columns
    names = {row["mid"].strip(): row["display_name"].strip() for row in reader if row.get("mid")}
    if not names:
        raise DataError(f"{path}: no classes listed")
    return names


def _numbers(x: float) -> list[str]:
    forms = [f"{x:g}", f"{x:.1f}", f"{x:.3f}", f"{x:.6f}", str(int(x)), str(int(round(x * 1000)))]
    return list(dict.fromkeys(forms))


def candidate_stems(segment: Segment) -> list[str]:
    stems = []
    for s in _numbers(segment.start):
        stems += [f"{segment.ytid}_{s}_{e}" for e in _numbers(segment.end)]
        stems.append(f"{segment.ytid}_{s}")
    stems.append(segment.ytid)
    return stems + ["Y" + stem for stem in stems]


def index_clips(audio_dir: str | Path) -> dict[str, Path]:
    """File stem → path of every audio file below `audio_dir` (first in sorted order wins)."""
    root = Path(audio_dir)
    if not root.is_dir():
        raise DataError(f"{root}: AudioSet audio folder not found")
    index: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file():
            index.setdefault(p.stem, p)
    return index


def segment_entries(segments: list[Segment], clips: dict[str, Path], names: dict[str, str] | None,
                    where: str) -> tuple[list[Entry], list[tuple[str, str]]]:
    """Entries for the segments that have a clip; (where, reason) for those that do not."""
    entries, missing = [], []
    for seg in segments:
        stem = next((s for s in candidate_stems(seg) if s in clips), None)
        if stem is None:
            missing.append((f"{where} line {seg.line}", f"no clip for {seg.ytid} ({seg.start:g}–{seg.end:g} s) in the audio folder"))
            continue
        whole_video = stem in (seg.ytid, "Y" + seg.ytid)
        labels = tuple(names.get(m, m) for m in seg.mids) if names else seg.mids
        entries.append(Entry(path=str(clips[stem]), key=f"{seg.ytid}_{seg.start:g}", labels=labels,
                             start=seg.start if whole_video else 0.0, duration=seg.end - seg.start))
    return entries, missing
