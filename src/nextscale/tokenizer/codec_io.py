"""Audio files <-> code files with a SAT: what `nextscale encode | decode | reconstruct` run.

Audio of any length is coded seamlessly (see `SAT.encode`): the codec runs over the whole file
and MSRQ quantises it window by window, the last window zero-padded. A code file stores each
scale's codes as (W, n_k), one row per window, the original sample count, which decoding trims
back to, and the windows' overlap in latent frames (files without it have none), which decoding
crossfades with.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..audio import AUDIO_EXTENSIONS, load_audio, save_audio
from ..errors import CheckpointError, ConfigError, DataError
from .model import SAT

CODES_FORMAT = "nextscale-sat-codes"


@dataclass
class CodeFile:
    """What a code file holds: K code tensors (W windows, n_k), the original sample count (None in files
    that do not record it) and the windows' overlap in latent frames (0 in files from before overlaps)."""

    codes: list[torch.Tensor]
    num_samples: int | None
    overlap: int = 0


def load_sat(checkpoint: str | Path, device: str | torch.device = "cpu") -> SAT:
    """A SAT from a model directory / hub id, or straight from a published `.pth`."""
    if str(checkpoint).endswith((".pth", ".pt")) and Path(checkpoint).is_file():
        from .published import convert_published_sat

        return convert_published_sat(checkpoint).to(device)
    return SAT.from_pretrained(checkpoint, map_location=device)


@torch.no_grad()
def encode_audio(sat: SAT, wav: torch.Tensor, overlap: int = 0) -> list[torch.Tensor]:
    """(1, S) mono audio at sat.sample_rate -> K LongTensors (W windows, n_k), windows every T - overlap frames."""
    device = next(sat.parameters()).device
    codes = sat.encode(wav[None].to(device), overlap=overlap)
    return [c.reshape(-1, n).cpu() for c, n in zip(codes, sat.scales)]


@torch.no_grad()
def decode_codes(sat: SAT, codes: Sequence[torch.Tensor], num_samples: int | None = None,
                 overlap: int = 0) -> torch.Tensor:
    """K (or fewer, for a preview) code tensors (W windows, n_k) -> (1, S) audio, decoded in one pass."""
    device = next(sat.parameters()).device
    audio = sat.decode([c.reshape(1, -1).to(device) for c in codes], length=num_samples, overlap=overlap)
    return audio[0].cpu()


def save_codes(path: str | Path, sat: SAT, codes: Sequence[torch.Tensor], num_samples: int,
               overlap: int = 0) -> Path:
    """Write K code tensors (W windows, n_k) of `num_samples` samples coded at `overlap` (see `CodeFile`)."""
    path = Path(path)
    windows = codes[0].shape[0]
    if windows != sat.num_windows(num_samples, overlap):      # also checks the overlap fits the tokenizer
        raise ConfigError(f"{path}: {num_samples} samples at overlap {overlap} make "
                          f"{sat.num_windows(num_samples, overlap)} windows, the codes hold {windows}")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": CODES_FORMAT, "layout": "windows x tokens", "num_samples": str(num_samples),
            "overlap": str(overlap), "sample_rate": str(sat.sample_rate), "scales": json.dumps(sat.scales),
            "codebook_size": str(sat.codebook_size)}
    save_file({f"codes_{k:02d}": c.contiguous() for k, c in enumerate(codes)}, str(path), metadata=meta)
    return path


def load_codes(path: str | Path, sat: SAT | None = None) -> CodeFile:
    """Codes, the original sample count and the overlap from a code file; checks they fit `sat`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: code file not found")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"{path}: not a safetensors code file ({e})") from None
    keys = sorted(k for k in tensors if k.startswith("codes_"))
    if not keys:
        raise DataError(f"{path}: no 'codes_XX' tensors; was it written by `nextscale encode`?")
    codes = [tensors[k].long() for k in keys]
    num = int(meta["num_samples"]) if "num_samples" in meta else None
    overlap = meta.get("overlap", "0")
    if not overlap.isdigit():
        raise DataError(f"{path}: overlap {overlap!r} is not a whole number of latent frames")
    overlap = int(overlap)
    if sat is not None:
        stored = json.loads(meta["scales"]) if "scales" in meta else [c.shape[1] for c in codes]
        if stored != sat.scales[: len(stored)] or len(stored) != len(codes):
            raise CheckpointError(f"{path}: codes have scales {stored}, the tokenizer has {sat.scales}; "
                                  f"decode with the checkpoint that encoded them")
        try:
            expected = sat.num_windows(num, overlap) if num is not None else codes[0].shape[0]
        except ConfigError as e:
            raise CheckpointError(f"{path}: {e}; decode with the checkpoint that encoded them") from None
        if codes[0].shape[0] != expected:
            raise DataError(f"{path}: holds {codes[0].shape[0]} windows, but its {num} samples at overlap {overlap} "
                            f"make {expected}; the file's metadata does not match its codes")
    return CodeFile(codes, num, overlap)


def audio_files(root: Path) -> list[Path]:
    """Audio files below a folder (sorted), or the file itself."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError(f"{root}: no such file or folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise DataError(f"{root}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")
    return files


def reconstruct_file(sat: SAT, src: Path, dst: Path, num_scales: int | None = None, overlap: int = 0) -> Path:
    """Encode and decode one file (optionally from the first `num_scales` scales only)."""
    wav = load_audio(src, sample_rate=sat.sample_rate)
    codes = encode_audio(sat, wav, overlap)
    audio = decode_codes(sat, codes[: num_scales or len(codes)], wav.shape[-1], overlap)
    return save_audio(dst, audio, sat.sample_rate)
