"""Torch datasets over audio files: a manifest, a folder, or AudioSet segment lists.

Every file is checked up front from its header (cheap: no decoding); unusable ones are
reported once in a `DataWarning` (path + reason), skipped and listed in `dataset.skipped`.
A file that passes the header check but fails to decode later is reported the same way and
the item falls back to the next readable index, deterministically — a model never sees
silence standing in for a broken file. No readable file at all is a `DataError`.
"""
from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..audio import AUDIO_EXTENSIONS, AudioInfo, audio_info, crop_or_pad, load_audio
from ..errors import AudioError, DataError
from .audioset import index_clips, read_class_names, read_segments, segment_entries
from .entries import DataWarning, Entry, report
from .manifest import read_manifest

Select = Callable[[list[Entry]], list[Entry]]
PROBE_PROGRESS_FROM = 2000  # show a progress bar when checking at least this many files


class AudioDataset(Dataset):
    """Items `{"audio": (1, S), "label", "labels", "caption", "path"}` from a list of entries.

    `clip_seconds=None` returns whole segments (variable length); otherwise each item is a crop
    of that length (random when `random_crop`, else from the segment start), zero-padded when
    the segment is shorter. `classes` defaults to the sorted labels of all entries.
    """

    def __init__(self, entries: Sequence[Entry], name: str, sample_rate: int = 24000,
                 clip_seconds: float | None = 1.0, random_crop: bool = True, classes: Sequence[str] | None = None,
                 select: Select | None = None, skipped: Sequence[tuple[str, str]] = ()):
        if sample_rate <= 0:
            raise DataError(f"{name}: sample_rate must be positive, got {sample_rate}")
        if clip_seconds is not None and clip_seconds <= 0:
            raise DataError(f"{name}: clip_seconds must be positive, got {clip_seconds}")
        self.name = name
        self.sample_rate, self.clip_seconds, self.random_crop = int(sample_rate), clip_seconds, bool(random_crop)
        self.classes: list[str] = list(classes) if classes is not None else sorted({l for e in entries for l in e.labels})
        self._class_index = {c: i for i, c in enumerate(self.classes)}
        chosen = select(list(entries)) if select is not None else list(entries)
        self.skipped: list[tuple[str, str]] = list(skipped)
        self.entries: list[Entry] = []
        self.seconds: list[float] = []  # usable length of each entry's segment
        for entry in tqdm(chosen, desc=f"checking {name}", unit="file", disable=len(chosen) < PROBE_PROGRESS_FROM):
            try:
                entry, seconds = self._check(entry, audio_info(entry.path))
            except AudioError as e:
                self.skipped.append((e.path, e.reason))
                continue
            self.entries.append(entry)
            self.seconds.append(seconds)
        report(name, self.skipped, len(chosen) + len(skipped))
        if not self.entries:
            first = "; ".join(f"{p}: {r}" for p, r in self.skipped[:3])
            raise DataError(f"{name}: no readable audio among {len(chosen)} file(s)" + (f" ({first})" if first else ""))
        self._failed: set[int] = set()

    def _check(self, entry: Entry, info: AudioInfo) -> tuple[Entry, float]:
        """Header-level validation of one entry; returns it (possibly adjusted) and its usable seconds."""
        if entry.start >= info.duration:
            raise AudioError(entry.path, f"start {entry.start:g} s is past the end of the file ({info.duration:.3f} s)")
        available = info.duration - entry.start
        return entry, available if entry.duration is None else min(entry.duration, available)

    def __len__(self) -> int:
        return len(self.entries)

    def label_of(self, entry: Entry) -> int:
        return next((self._class_index[l] for l in entry.labels if l in self._class_index), -1)

    def _load(self, index: int) -> dict:
        entry, seconds = self.entries[index], self.seconds[index]
        offset, length = entry.start, seconds
        if self.clip_seconds is not None:
            if self.random_crop and seconds > self.clip_seconds:
                offset += float(torch.rand(())) * (seconds - self.clip_seconds)
            length = min(seconds, self.clip_seconds)
        wav = load_audio(entry.path, self.sample_rate, mono=True, offset=offset, duration=length)
        if self.clip_seconds is not None:
            wav, _ = crop_or_pad(wav, int(round(self.clip_seconds * self.sample_rate)))
        return {"audio": wav, "label": self.label_of(entry), "labels": list(entry.labels),
                "caption": entry.caption, "path": entry.path}

    def __getitem__(self, index: int) -> dict:
        n = len(self.entries)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"{self.name} has {n} items, index {index} is out of range")
        for step in range(n):
            j = (index + step) % n
            if j in self._failed:
                continue
            try:
                return self._load(j)
            except AudioError as e:
                self._failed.add(j)
                self.skipped.append((e.path, e.reason))
                warnings.warn(f"{self.name}: {e.path}: {e.reason}; skipped (item {index} falls back to the next "
                              "readable file)", DataWarning, stacklevel=2)
        raise DataError(f"{self.name}: every file failed to decode ({len(self._failed)} files; see dataset.skipped)")


class ManifestDataset(AudioDataset):
    """Clips listed in a CSV / TSV / JSONL manifest (see `nextscale.data.manifest`)."""

    def __init__(self, path: str | Path, sample_rate: int = 24000, clip_seconds: float | None = 1.0,
                 random_crop: bool = True, classes: Sequence[str] | None = None, select: Select | None = None):
        manifest = read_manifest(path)
        self.duplicates = manifest.duplicates
        report(str(path), manifest.duplicates, len(manifest.entries) + len(manifest.duplicates), "rows as duplicates")
        if not manifest.entries:
            raise DataError(f"{path}: the manifest lists no usable rows" +
                            (f" ({manifest.skipped[0][0]}: {manifest.skipped[0][1]})" if manifest.skipped else ""))
        super().__init__(manifest.entries, str(path), sample_rate, clip_seconds, random_crop, classes, select,
                         skipped=manifest.skipped)


def folder_entries(root: Path, labels_from_folders: bool) -> list[Entry]:
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    entries = []
    for p in files:
        rel = p.relative_to(root)
        labels = (rel.parts[0],) if labels_from_folders and len(rel.parts) > 1 else ()
        entries.append(Entry(path=str(p), key=rel.as_posix(), labels=labels))
    return entries


class FolderDataset(AudioDataset):
    """Every audio file below `root` (recursive, sorted). With `labels_from_folders`, a file in
    `root/<class>/...` gets the label `<class>` (the torchvision ImageFolder convention)."""

    def __init__(self, root: str | Path, sample_rate: int = 24000, clip_seconds: float | None = 1.0,
                 random_crop: bool = True, classes: Sequence[str] | None = None, select: Select | None = None,
                 labels_from_folders: bool = True):
        root = Path(root).absolute()
        if not root.is_dir():
            raise DataError(f"{root}: audio folder not found")
        entries = folder_entries(root, labels_from_folders)
        if not entries:
            raise DataError(f"{root}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) below this folder")
        super().__init__(entries, str(root), sample_rate, clip_seconds, random_crop, classes, select)


class AudioSetDataset(AudioDataset):
    """AudioSet segments (`csv_path`) whose clips are in `audio_dir`; labels are display names when
    `class_csv` (class_labels_indices.csv) is given — then `classes` follows its index order."""

    def __init__(self, csv_path: str | Path, audio_dir: str | Path, class_csv: str | Path | None = None,
                 sample_rate: int = 24000, clip_seconds: float | None = 1.0, random_crop: bool = True,
                 select: Select | None = None):
        segments, bad_rows = read_segments(csv_path)
        names = read_class_names(class_csv) if class_csv else None
        entries, missing = segment_entries(segments, index_clips(audio_dir), names, str(csv_path))
        classes = list(names.values()) if names else None
        super().__init__(entries, str(csv_path), sample_rate, clip_seconds, random_crop, classes, select,
                         skipped=bad_rows + missing)

    def _check(self, entry: Entry, info: AudioInfo) -> tuple[Entry, float]:
        if entry.start > 0 and info.duration < entry.start + (entry.duration or 0.0) - 0.5:
            entry = replace(entry, start=0.0)  # a bare-YTID file that is already the cut segment
        return super()._check(entry, info)


def collate_batch(items: Sequence[dict]) -> dict:
    """Stack `audio` → (B, 1, S) and `label` → LongTensor (B,); every other key becomes a list."""
    if not items:
        raise DataError("collate_batch: empty batch")
    lengths = {tuple(item["audio"].shape) for item in items}
    if len(lengths) > 1:
        raise DataError(f"collate_batch: clips have different shapes {sorted(lengths)}; set clip_seconds to crop/pad them")
    batch = {"audio": torch.stack([item["audio"] for item in items]),
             "label": torch.tensor([int(item["label"]) for item in items], dtype=torch.long)}
    for key in items[0]:
        if key not in batch:
            batch[key] = [item[key] for item in items]
    return batch
