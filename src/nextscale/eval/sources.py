"""Which audio files an evaluation reads, with their labels/captions when known.

A source is a folder (every .wav/.flac/.ogg/.mp3 below it, sorted) or a manifest (.csv / .jsonl
with a `path` column, optional `labels` and `caption`; relative paths resolve against the manifest).
Labels of files in a folder come from, in order:
1. `labels.json` in that folder: {"file.wav": "chirp"} or {"file.wav": {"label": "chirp", "caption": "…"}};
2. the file name: a stem that starts with a class name followed by `_`, `-`, `.` or nothing
   (`chirp_003.wav`); the longest matching class wins;
3. the parent folder's name when it is a class name (`generated/chirp/003.wav`).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import DataError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
LABELS_FILE = "labels.json"


@dataclass
class AudioSource:
    path: str
    label: str | None = None
    caption: str = ""


def _label_from_name(path: Path, classes: Sequence[str]) -> str | None:
    stem = path.stem.lower()
    matches = [c for c in classes if stem == c.lower() or (stem.startswith(c.lower()) and stem[len(c)] in "_-.")]
    if matches:
        return max(matches, key=len)
    return path.parent.name if path.parent.name in classes else None


def _read_labels_json(directory: Path) -> dict[str, dict]:
    path = directory / LABELS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object mapping file names to a label or {{label, caption}}")
    out = {}
    for name, value in data.items():
        if isinstance(value, str):
            out[name] = {"label": value}
        elif isinstance(value, dict):
            out[name] = {"label": value.get("label"), "caption": str(value.get("caption") or value.get("prompt") or "")}
        else:
            raise DataError(f"{path}: entry {name!r} must be a label string or an object, got {value!r}")
    return out


def _folder(directory: Path, classes: Sequence[str]) -> list[AudioSource]:
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    tables: dict[Path, dict[str, dict]] = {}
    sources = []
    for f in files:
        table = tables.setdefault(f.parent, _read_labels_json(f.parent))
        entry = table.get(f.name) or table.get(f.relative_to(directory).as_posix()) or {}
        label = entry.get("label") or _label_from_name(f, classes)
        sources.append(AudioSource(str(f), label, entry.get("caption", "")))
    return sources


def _first_label(value, classes: Sequence[str]) -> str | None:
    labels = value if isinstance(value, list) else [s.strip() for s in str(value or "").replace(";", ",").split(",")]
    labels = [str(x) for x in labels if str(x)]
    known = [x for x in labels if x in classes]
    return known[0] if known else (labels[0] if labels else None)


def _manifest(path: Path, classes: Sequence[str]) -> list[AudioSource]:
    rows: list[dict] = []
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        else:
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}:{number}: not valid JSON ({e.msg})") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read manifest ({e})") from None
    sources = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not row.get("path"):
            raise DataError(f"{path}: row {number} has no 'path'")
        p = Path(row["path"])
        p = p if p.is_absolute() else path.parent / p
        sources.append(AudioSource(str(p), _first_label(row.get("labels", row.get("label")), classes),
                                   str(row.get("caption") or "")))
    return sources


def list_sources(location: str | Path, classes: Sequence[str] = ()) -> list[AudioSource]:
    """Files of a folder or manifest; an empty result is an error naming the location."""
    location = Path(location)
    if location.is_dir():
        sources = _folder(location, classes)
    elif location.is_file() and location.suffix.lower() in (".csv", ".jsonl"):
        sources = _manifest(location, classes)
    elif location.is_file():
        raise DataError(f"{location}: expected a folder of audio files or a .csv/.jsonl manifest")
    else:
        raise DataError(f"{location}: no such folder or manifest")
    if not sources:
        raise DataError(f"{location}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")
    return sources
