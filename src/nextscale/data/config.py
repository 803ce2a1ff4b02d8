"""`DataConfig` (the `data:` section of a training config) and `build_dataset` for every source."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from .entries import split_entries

HELDOUT_SEED_OFFSET = 100_003  # synthetic held-out clips come from seed + this: never the training clips


@dataclass
class DataConfig:
    source: Literal["synth", "manifest", "folder", "audioset"] = "synth"
    path: str = ""               # manifest file, audio folder, or AudioSet segments CSV
    audio_dir: str = ""          # audioset: folder holding the downloaded clips
    class_csv: str = ""          # audioset: class_labels_indices.csv (mids → names); optional
    n: int = 2400                # synth: number of training clips
    seed: int = 0                # synth: corpus seed
    sample_rate: int = 24000
    clip_seconds: float = 1.0
    sequence: bool = False       # synth: each clip a sequence of one-second events of its kind (long-audio AR data)
    random_crop: bool = True     # training crops; the held-out split always crops from the start
    heldout_fraction: float = 0.1
    heldout_n: int = 0           # when > 0, overrides heldout_fraction

    def __post_init__(self) -> None:
        if self.source != "synth" and not self.path:
            raise ConfigError(f"data.path: required for source '{self.source}'")
        if self.source == "audioset" and not self.audio_dir:
            raise ConfigError("data.audio_dir: required for source 'audioset' (the folder of downloaded clips)")
        if self.n <= 0:
            raise ConfigError(f"data.n: must be positive, got {self.n}")
        if self.seed < 0:
            raise ConfigError(f"data.seed: must be non-negative, got {self.seed}")
        if self.sample_rate <= 0:
            raise ConfigError(f"data.sample_rate: must be positive, got {self.sample_rate}")
        if self.clip_seconds <= 0:
            raise ConfigError(f"data.clip_seconds: must be positive, got {self.clip_seconds}")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ConfigError(f"data.heldout_fraction: must be in [0, 1), got {self.heldout_fraction}")
        if self.sequence and self.source != "synth":
            raise ConfigError(f"data.sequence: only the synthetic corpus renders event sequences, not '{self.source}'")
        if self.heldout_n < 0:
            raise ConfigError(f"data.heldout_n: must be non-negative, got {self.heldout_n}")


def _synth(cfg: DataConfig, split: str) -> Dataset:
    from .synth import SynthDataset

    if split == "heldout":
        n = cfg.heldout_n or int(round(cfg.heldout_fraction * cfg.n))
        if n <= 0:
            raise DataError("the held-out split is empty; set data.heldout_n or data.heldout_fraction")
        return SynthDataset(n, cfg.seed + HELDOUT_SEED_OFFSET, cfg.sample_rate, cfg.clip_seconds, cfg.sequence)
    return SynthDataset(cfg.n, cfg.seed, cfg.sample_rate, cfg.clip_seconds, cfg.sequence)


def build_dataset(cfg: DataConfig, split: str = "train") -> Dataset:
    """The dataset a config describes. File sources are split by a stable hash of each file's
    key (see `split_entries`); the synthetic held-out split is drawn from another seed."""
    from .datasets import AudioSetDataset, FolderDataset, ManifestDataset

    if split not in ("train", "heldout", "all"):
        raise DataError(f"split must be 'train', 'heldout' or 'all', got {split!r}")
    if cfg.source == "synth":
        return _synth(cfg, "train" if split == "all" else split)
    select = partial(split_entries, split=split, heldout_fraction=cfg.heldout_fraction, heldout_n=cfg.heldout_n)
    common = dict(sample_rate=cfg.sample_rate, clip_seconds=cfg.clip_seconds,
                  random_crop=cfg.random_crop and split != "heldout", select=select)
    if cfg.source == "manifest":
        return ManifestDataset(cfg.path, **common)
    if cfg.source == "folder":
        return FolderDataset(cfg.path, **common)
    return AudioSetDataset(cfg.path, cfg.audio_dir, cfg.class_csv or None, **common)
