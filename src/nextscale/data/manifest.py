"""Reading manifests: CSV / TSV with a header, or JSON Lines, one clip per row.

Columns: `path` (required; relative paths resolve against the manifest's folder), optional
`caption`, `labels` (a list, or a ';'- or ','-separated string), `start` and `duration` in
seconds. Structural problems (not UTF-8, no `path` column, broken JSON) stop with a `DataError`
naming the file; problems of single rows (empty path, bad number) skip the row and say which;
repeated rows are dropped, keeping the first.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import DataError
from ..io import parse_jsonl, read_text
from .entries import Entry, parse_labels

MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")


@dataclass
class Manifest:
    entries: list[Entry]
    skipped: list[tuple[str, str]] = field(default_factory=list)     # (where, reason) of rejected rows
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (where, "repeats line N: path")


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    columns = [c.strip() for c in (reader.fieldnames or [])]
    if "path" not in columns:
        raise DataError(f"{path}: no 'path' column (columns found: {', '.join(columns) or 'none'})")
    reader.fieldnames = columns
    for row in reader:
        yield reader.line_num, {k: v for k, v in row.items() if k is not None}


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    seen_path = False
    for number, row in parse_jsonl(text, str(path), DataError):
        seen_path = seen_path or "path" in row
        yield number, row
    if not seen_path:
        raise DataError(f"{path}: no row has a 'path' field")


def _seconds(value: Any, name: str, default: float | None) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(x) or x < 0 or (name == "duration" and x == 0):
        raise ValueError(f"{name} must be a {'positive' if name == 'duration' else 'non-negative'} number of seconds, got {value!r}")
    return x


def _entry(manifest: Path, row: dict[str, Any]) -> Entry:
    raw_path = row.get("path")
    if raw_path is None or not str(raw_path).strip():
        raise ValueError("empty 'path'")
    raw_path = str(raw_path).strip()
    resolved = Path(raw_path).expanduser()
    if not resolved.is_absolute():
        resolved = manifest.parent.absolute() / resolved
    caption = row.get("caption")
    return Entry(path=str(resolved), key=raw_path, labels=parse_labels(row.get("labels")),
                 caption="" if caption is None else str(caption),
                 start=_seconds(row.get("start"), "start", 0.0),
                 duration=_seconds(row.get("duration"), "duration", None))


def read_manifest(path: str | Path) -> Manifest:
    """Parse a manifest into entries, rejected rows and dropped duplicates (see module docstring)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise DataError(f"{path}: unknown manifest type '{suffix}'; expected one of {', '.join(MANIFEST_SUFFIXES)}")
    text = read_text(path, DataError, what="manifest")
    rows = _jsonl_rows(path, text) if suffix in (".jsonl", ".ndjson") else _csv_rows(path, text)
    manifest = Manifest(entries=[])
    first_line: dict[tuple[str, float, float | None], int] = {}
    for number, row in rows:
        where = f"{path} line {number}"
        try:
            entry = _entry(path, row)
        except ValueError as e:
            manifest.skipped.append((where, str(e)))
            continue
        identity = (entry.path, entry.start, entry.duration)
        if identity in first_line:
            manifest.duplicates.append((where, f"repeats line {first_line[identity]} ({entry.key})"))
            continue
        first_line[identity] = number
        manifest.entries.append(entry)
    return manifest
