"""Which audio files an evaluation reads, with their labels/captions when known.

A source is a folder (every audio file below it, sorted) or a manifest (.csv/.tsv/.jsonl, read by
`nextscale.data.manifest`: `path`, optional `labels`, `caption`, `start`, `duration`).
Labels of files in a folder come from, in order:
1. `labels.json` in that folder: {"file.wav": "chirp"} or {"file.wav": {"label": "chirp", "caption": "…"}};
2. the file name: a stem that starts with a class name followed by `_`, `-`, `.` or nothing
   (`rising_chirp_003.wav`); the longest matching class wins;
3. the parent folder's name when it is a class name (`generated/siren/003.wav`).
A manifest row's label is its first label that is a class name (else its first label).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..io import read_json
from ..data.datasets import folder_entries
from ..data.entries import report
from ..data.manifest import MANIFEST_SUFFIXES, read_manifest
from ..errors import DataError

LABELS_FILE = "labels.json"


@dataclass
class AudioSource:
    path: str
    label: str | None = None
    caption: str = ""
    start: float = 0.0
    duration: float | None = None


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
    data = read_json(path, DataError)
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
    tables: dict[Path, dict[str, dict]] = {}
    sources = []
    for entry in folder_entries(directory, labels_from_folders=False):
        f = Path(entry.path)
        table = tables.setdefault(f.parent, _read_labels_json(f.parent))
        info = table.get(f.name) or table.get(entry.key) or {}
        sources.append(AudioSource(str(f), info.get("label") or _label_from_name(f, classes), info.get("caption", "")))
    return sources


def _manifest(path: Path, classes: Sequence[str]) -> list[AudioSource]:
    manifest = read_manifest(path)
    report(str(path), manifest.skipped, len(manifest.entries) + len(manifest.skipped), what="rows")
    sources = []
    for e in manifest.entries:
        known = [label for label in e.labels if label in classes]
        label = known[0] if known else (e.labels[0] if e.labels else None)
        sources.append(AudioSource(e.path, label, e.caption, e.start, e.duration))
    return sources


def list_sources(location: str | Path, classes: Sequence[str] = ()) -> list[AudioSource]:
    """Files of a folder or manifest; an empty result is an error naming the location."""
    location = Path(location)
    if location.is_dir():
        sources = _folder(location, classes)
    elif location.is_file() and location.suffix.lower() in MANIFEST_SUFFIXES:
        sources = _manifest(location, classes)
    elif location.is_file():
        raise DataError(f"{location}: expected a folder of audio files or a manifest ({', '.join(MANIFEST_SUFFIXES)})")
    else:
        raise DataError(f"{location}: no such folder or manifest")
    if not sources:
        raise DataError(f"{location}: no audio files found")
    return sources
