"""Token cache: a dataset encoded once by SAT, so AR training reads integers instead of audio.

DIR/index.json  scales, codebook size, tokenizer path + sha256, classes, condition, count, shards
DIR/shard_00000.safetensors  codes (N, W * L) int16/int32 (W windows one after another, each with all
                             its scales concatenated), label (N,), cond (N, D) float32 when a vector
                             conditioner was used
Clips longer than one window (W > 1) give consecutive windows, what a context AR model trains on.
Shards are written atomically and a re-run keeps finished shards, so an interrupted cache job
continues where it stopped; a re-run against another tokenizer or dataset is refused.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..ar.windows import split_windows
from ..checkpoint import WEIGHTS_NAME
from ..errors import ConfigError, DataError
from ..io import atomic_write_json, atomic_write_with, read_json

INDEX_NAME = "index.json"
FORMAT_VERSION = 1


def shard_name(i: int) -> str:
    return f"shard_{i:05d}.safetensors"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _shard_count(path: Path) -> int | None:
    """Items in a finished shard, or None if it is missing or unreadable."""
    try:
        with safe_open(str(path), "pt") as f:
            return int(f.metadata()["count"])
    except (SafetensorError, OSError, KeyError, ValueError):
        return None


def _write_shard(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    atomic_write_with(path, lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, tmp,
                                                  metadata=metadata))


def _encode_condition(conditioner: Any, audio: torch.Tensor, captions: Sequence[str], paths: Sequence[str],
                      sample_rate: int) -> torch.Tensor | None:
    if conditioner is None or not conditioner.is_vector:
        return None
    if conditioner.kind == "clap":
        return conditioner.encode_audio(audio, sample_rate).float().cpu()
    empty = [p for p, c in zip(paths, captions) if not c.strip()]
    if empty:
        raise DataError(f"text conditioning needs a caption for every clip; {len(empty)} have none "
                        f"(e.g. {empty[0]}); use --conditioner class or add captions to the manifest")
    return conditioner.encode_text(list(captions)).float().cpu()


@torch.no_grad()
def build_token_cache(sat: Any, dataset: Any, out: str | Path, collate: Any, conditioner: Any = None,
                      tokenizer_path: str | Path | None = None, batch_size: int = 16, shard_size: int = 1024,
                      num_workers: int = 0, device: str | torch.device = "cpu", data_desc: Any = None,
                      progress: bool = True) -> Path:
    """Encode `dataset` (items with `audio`, `label`, `caption`, `path`) into DIR; returns DIR/index.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = len(dataset)
    if n == 0:
        raise DataError("the dataset is empty; nothing to cache")
    weights = Path(tokenizer_path) / WEIGHTS_NAME if tokenizer_path else None
    spec = {
        "format_version": FORMAT_VERSION, "kind": "token_cache",
        "scales": list(sat.scales), "codebook_size": int(sat.codebook_size), "latent_dim": int(sat.latent_dim),
        "sample_rate": int(sat.sample_rate), "clip_samples": int(sat.clip_samples),
        "tokenizer": str(tokenizer_path) if tokenizer_path else None,
        "tokenizer_sha256": file_sha256(weights) if weights and weights.is_file() else None,
        "classes": list(getattr(dataset, "classes", []) or []),
        "condition": conditioner.to_config() | {"dim": int(conditioner.dim)} if conditioner else {"kind": "class"},
        "count": n, "shard_size": shard_size, "data": data_desc,
        "dtype": "int16" if sat.codebook_size <= 2 ** 15 else "int32",
    }
    index_path = out / INDEX_NAME
    if index_path.is_file():
        old = read_json(index_path, DataError)
        changed = [k for k in spec if k != "tokenizer" and old.get(k) != spec[k]]
        if changed:
            raise DataError(f"{out}: holds a token cache made with other settings ({', '.join(changed)} differ); "
                            "use a new --out directory or delete this one")
    windows = old.get("windows") if index_path.is_file() else None   # windows per clip, known once a clip is coded
    atomic_write_json(index_path, spec | {"complete": False, "windows": windows})
    dtype = torch.int16 if spec["dtype"] == "int16" else torch.int32
    sat = sat.to(device).eval()
    num_shards = math.ceil(n / shard_size)
    shards, bar = [], tqdm(total=n, desc="caching tokens", unit="clip", disable=not progress, dynamic_ncols=True)
    for s in range(num_shards):
        lo, hi = s * shard_size, min(n, (s + 1) * shard_size)
        path = out / shard_name(s)
        if _shard_count(path) == hi - lo:     # finished by an earlier run
            shards.append({"file": path.name, "count": hi - lo})
            bar.update(hi - lo)
            continue
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, range(lo, hi)), batch_size=batch_size,
                                             collate_fn=collate, num_workers=num_workers)
        codes, labels, conds, captions, paths = [], [], [], [], []
        for batch in loader:
            audio = batch["audio"].to(device)
            clip_windows = sat.num_windows(audio.shape[-1])
            windows = windows or clip_windows
            if clip_windows != windows:
                raise DataError(f"{batch['path'][0]}: {audio.shape[-1]} samples make {clip_windows} "
                                f"windows, the cache holds {windows} per clip; give every clip the same length "
                                "(data.clip_seconds)")
            per_window = split_windows(sat.encode(audio), sat.scales)
            codes.append(torch.cat([c for window in per_window for c in window], dim=1).to(dtype).cpu())
            labels.append(batch["label"].long().cpu())
            cond = _encode_condition(conditioner, audio, batch["caption"], batch["path"], sat.sample_rate)
            if cond is not None:
                conds.append(cond)
            captions += list(batch["caption"])
            paths += list(batch["path"])
            bar.update(len(audio))
        tensors = {"codes": torch.cat(codes), "label": torch.cat(labels)}
        if conds:
            tensors["cond"] = torch.cat(conds)
        _write_shard(path, tensors, {"count": str(hi - lo), "captions": json.dumps(captions),
                                     "paths": json.dumps(paths)})
        shards.append({"file": path.name, "count": hi - lo})
    bar.close()
    atomic_write_json(index_path, spec | {"complete": True, "windows": windows or 1, "shards": shards})
    return index_path


def read_index(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / INDEX_NAME
    if not path.is_file():
        raise DataError(f"{directory}: not a token cache ({INDEX_NAME} missing); make one with nextscale cache-tokens")
    index = read_json(path, DataError)
    if index.get("kind") != "token_cache":
        raise DataError(f"{path}: not a token cache index")
    if index.get("format_version", 0) > FORMAT_VERSION:
        raise DataError(f"{path}: token cache format {index['format_version']} is newer than this nextscale reads")
    if not index.get("complete"):
        raise DataError(f"{directory}: token cache is incomplete (an interrupted cache-tokens run); re-run the "
                        "same command to finish it")
    return index


class TokenCacheDataset(torch.utils.data.Dataset):
    """Items {"codes": LongTensor (W * L,), "label": int, "cond": FloatTensor (D,) (vector caches), "caption"}.

    All shards are loaded into memory: codes are small (455 int16 = 910 bytes per clip).
    `select` (a slice) picks a subset, e.g. the held-out tail used for validation.
    """

    def __init__(self, directory: str | Path, select: slice | None = None):
        self.directory = Path(directory)
        self.index = read_index(self.directory)
        codes, labels, conds, captions = [], [], [], []
        for shard in self.index["shards"]:
            path = self.directory / shard["file"]
            try:
                tensors = load_file(str(path))
                with safe_open(str(path), "pt") as f:
                    captions += json.loads(f.metadata().get("captions", "[]"))
            except (SafetensorError, OSError, ValueError) as e:
                raise DataError(f"{path}: unreadable token shard ({e}); delete it and re-run cache-tokens") from None
            codes.append(tensors["codes"])
            labels.append(tensors["label"])
            if "cond" in tensors:
                conds.append(tensors["cond"])
        sel = select or slice(None)
        self.codes = torch.cat(codes)[sel]
        self.labels = torch.cat(labels)[sel]
        self.conds = torch.cat(conds)[sel] if conds else None
        self.captions = captions[sel] if len(captions) == len(torch.cat(labels)) else [""] * len(self.codes)
        if self.codes.shape[1] != self.windows * sum(self.scales):
            raise DataError(f"{self.directory}: codes have {self.codes.shape[1]} tokens per clip, index says "
                            f"{self.windows} window(s) of scales summing to {sum(self.scales)}")

    @property
    def scales(self) -> list[int]:
        return list(self.index["scales"])

    @property
    def windows(self) -> int:
        """Consecutive windows per cached clip (1 for one-window clips and caches made before windows)."""
        return int(self.index.get("windows", 1))

    @property
    def codebook_size(self) -> int:
        return int(self.index["codebook_size"])

    @property
    def classes(self) -> list[str]:
        return list(self.index.get("classes", []))

    @property
    def condition(self) -> dict[str, Any]:
        return dict(self.index.get("condition", {"kind": "class"}))

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {"codes": self.codes[i].long(), "label": int(self.labels[i]), "caption": self.captions[i]}
        if self.conds is not None:
            item["cond"] = self.conds[i]
        return item


def collate_tokens(items: list[dict[str, Any]]) -> dict[str, Any]:
    batch = {"codes": torch.stack([it["codes"] for it in items]),
             "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
             "caption": [it["caption"] for it in items]}
    if "cond" in items[0]:
        batch["cond"] = torch.stack([it["cond"] for it in items])
    return batch


def cache_tokens(tokenizer: str | Path, out: str | Path, data: str | Path | None = None, overrides: Sequence[str] = (),
                 split: str = "train", conditioner: str = "class", conditioner_model: str | None = None,
                 batch_size: int = 16, shard_size: int = 1024, num_workers: int = 0, device: str = "auto",
                 progress: bool = True) -> tuple[Path, int, int]:
    """`nextscale cache-tokens`: a dataset (a `data:` YAML, default the synthetic corpus) encoded by the SAT
    in `tokenizer`, with class ids or text / CLAP vectors as conditions. Returns (index.json, clips, tokens per clip)."""
    from ..config import load_config, to_dict
    from ..data import DataConfig, build_dataset, collate_batch
    from ..runtime import resolve_device
    from ..tokenizer.model import SAT

    if conditioner not in ("class", "text", "clap"):
        raise ConfigError(f"--conditioner: expected class, text or clap, got {conditioner!r}")
    dev = resolve_device(device)
    sat = SAT.from_pretrained(tokenizer, map_location=dev)
    data_cfg = load_config(data, DataConfig, overrides, section="data")
    dataset = build_dataset(data_cfg, split=split)
    cond = None
    if conditioner != "class":
        from ..ar.conditioning import build_conditioner

        cond = build_conditioner({"kind": conditioner} | ({"model": conditioner_model} if conditioner_model else {}),
                                 device=dev)
    index = build_token_cache(sat, dataset, out, collate_batch, cond, tokenizer_path=Path(tokenizer).resolve(),
                              batch_size=batch_size, shard_size=shard_size, num_workers=num_workers, device=dev,
                              data_desc=to_dict(data_cfg) | {"split": split}, progress=progress)
    return index, len(dataset), sat.num_tokens
