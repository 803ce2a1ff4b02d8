"""Audio files <-> code files with a SAT: what `nextscale encode | decode | reconstruct` run.

Audio of any length is coded seamlessly (see `SAT.encode`): the codec runs over the whole file
and MSRQ quantises it window by window, the last window zero-padded. A code file stores each
scale's codes as (W, n_k), one row per window, and the original sample count, which decoding
trims back to.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..audio import AUDIO_EXTENSIONS, load_audio, save_audio
from ..errors import CheckpointError, DataError
from .model import SAT

CODES_FORMAT = "nextscale-sat-codes"


def load_sat(checkpoint: str | Path, device: str | torch.device = "cpu") -> SAT:
    """A SAT from a model directory / hub id, or straight from a published `.pth`."""
    if str(checkpoint).endswith((".pth", ".pt")) and Path(checkpoint).is_file():
        from .published import convert_published_sat

        return convert_published_sat(checkpoint).to(device)
    return SAT.from_pretrained(checkpoint, map_location=device)


@torch.no_grad()
def encode_audio(sat: SAT, wav: torch.Tensor) -> list[torch.Tensor]:
    """(1, S) mono audio at sat.sample_rate -> K LongTensors (W windows, n_k)."""
    device = next(sat.parameters()).device
    codes = sat.encode(wav[None].to(device))
    return [c.reshape(-1, n).cpu() for c, n in zip(codes, sat.scales)]


@torch.no_grad()
def decode_codes(sat: SAT, codes: Sequence[torch.Tensor], num_samples: int | None = None) -> torch.Tensor:
    """K (or fewer, for a preview) code tensors (W windows, n_k) -> (1, S) audio, decoded in one pass."""
    device = next(sat.parameters()).device
    audio = sat.decode([c.reshape(1, -1).to(device) for c in codes], length=num_samples)
    return audio[0].cpu()


def save_codes(path: str | Path, sat: SAT, codes: Sequence[torch.Tensor], num_samples: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": CODES_FORMAT, "layout": "windows x tokens", "num_samples": str(num_samples),
            "sample_rate": str(sat.sample_rate), "scales": json.dumps(sat.scales),
            "codebook_size": str(sat.codebook_size)}
    save_file({f"codes_{k:02d}": c.contiguous() for k, c in enumerate(codes)}, str(path), metadata=meta)
    return path


def load_codes(path: str | Path, sat: SAT | None = None) -> tuple[list[torch.Tensor], int | None]:
    """Codes and the original sample count from a code file; checks they fit `sat`."""
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
    if sat is not None:
        stored = json.loads(meta["scales"]) if "scales" in meta else [c.shape[1] for c in codes]
        if stored != sat.scales[: len(stored)] or len(stored) != len(codes):
            raise CheckpointError(f"{path}: codes have scales {stored}, the tokenizer has {sat.scales}; "
                                  f"decode with the checkpoint that encoded them")
    num = int(meta["num_samples"]) if "num_samples" in meta else None
    return codes, num


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


def reconstruct_file(sat: SAT, src: Path, dst: Path, num_scales: int | None = None) -> Path:
    """Encode and decode one file (optionally from the first `num_scales` scales only)."""
    wav = load_audio(src, sample_rate=sat.sample_rate)
    codes = encode_audio(sat, wav)
    audio = decode_codes(sat, codes[: num_scales or len(codes)], wav.shape[-1])
    return save_audio(dst, audio, sat.sample_rate)
