"""What every file-backed dataset is made of: a list of entries (file + segment + labels + caption),
plus the shared ways of reporting entries that had to be dropped."""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from typing import Sequence

from ..errors import DataError

MAX_REPORTED = 20  # a warning lists this many problems, then points at `dataset.skipped`


class DataWarning(UserWarning):
    """Files or manifest rows were skipped; the message names each (path and reason)."""


@dataclass(frozen=True)
class Entry:
    path: str                    # absolute or as resolved by the reader
    key: str                     # stable id independent of where the dataset lives (for splits)
    labels: tuple[str, ...] = ()
    caption: str = ""
    start: float = 0.0           # segment start in the file, seconds
    duration: float | None = None  # segment length, seconds (None: to the end of the file)


def parse_labels(value: object) -> tuple[str, ...]:
    """A list, or a string separated by ';' or ',' → tuple of non-empty stripped labels."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        text = str(value)
        items = text.split(";") if ";" in text else text.split(",")
    return tuple(s.strip() for s in items if s.strip())


def report(name: str, problems: Sequence[tuple[str, str]], total: int, what: str = "files") -> None:
    """Warn once about every skipped item (path: reason), however many there are."""
    if not problems:
        return
    lines = [f"  {path}: {reason}" for path, reason in problems[:MAX_REPORTED]]
    if len(problems) > MAX_REPORTED:
        lines.append(f"  ... and {len(problems) - MAX_REPORTED} more (see dataset.skipped)")
    warnings.warn(f"{name}: skipped {len(problems)} of {total} {what}:\n" + "\n".join(lines), DataWarning, stacklevel=3)


def split_entries(entries: Sequence[Entry], split: str, heldout_fraction: float = 0.0,
                  heldout_n: int = 0) -> list[Entry]:
    """Deterministic train / held-out split by a hash of each entry's key: stable across machines
    and file orders, and adding files never moves an existing one to the other split."""
    if split not in ("train", "heldout", "all"):
        raise DataError(f"split must be 'train', 'heldout' or 'all', got {split!r}")
    if split == "all":
        return list(entries)
    count = heldout_n if heldout_n > 0 else (max(1, round(heldout_fraction * len(entries))) if heldout_fraction > 0 else 0)
    count = min(count, len(entries) - 1)  # the training split always keeps at least one file
    ranked = sorted(range(len(entries)), key=lambda i: hashlib.sha1(entries[i].key.encode()).hexdigest())
    heldout = set(ranked[:count])
    if split == "heldout":
        if not heldout:
            raise DataError(f"the held-out split is empty ({len(entries)} entries, heldout_n={heldout_n}, "
                            f"heldout_fraction={heldout_fraction}); set data.heldout_n or data.heldout_fraction")
        return [e for i, e in enumerate(entries) if i in heldout]
    return [e for i, e in enumerate(entries) if i not in heldout]
