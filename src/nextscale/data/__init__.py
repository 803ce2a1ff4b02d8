"""Datasets: manifests, folders, AudioSet segment lists and the built-in synthetic corpus.

Items are dicts `{"audio": (1, S) float32, "label": int, "labels": list[str], "caption": str,
"path": str}`; `collate_batch` stacks them. `build_dataset(DataConfig(...), split)` picks the source.
"""
from .config import DataConfig, build_dataset
from .datasets import AudioDataset, AudioSetDataset, FolderDataset, ManifestDataset, collate_batch
from .entries import DataWarning, Entry
from .synth import KINDS, SynthDataset, synth_clip

__all__ = ["AudioDataset", "AudioSetDataset", "DataConfig", "DataWarning", "Entry", "FolderDataset", "KINDS",
           "ManifestDataset", "SynthDataset", "build_dataset", "collate_batch", "synth_clip"]
