"""Embed audio files with a backend, caching each file's embeddings on disk.

The cache key is the file's resolved path, mtime and size plus the backend's `params()` (name,
weights fingerprint, options), so a changed file or model is recomputed and an unchanged re-run
reads `.npy` files only. Unreadable or too-short files are reported, skipped and counted, as the
data layer does; the caller decides whether what remains is enough.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import AudioError
from ..io import atomic_write_bytes
from .embeddings.base import EmbeddingBackend
from .sources import AudioSource


@dataclass
class EmbeddedFiles:
    sources: list[AudioSource] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)  # one (N_i, dim) array per source
    skipped: list[tuple[str, str]] = field(default_factory=list)
    cache_hits: int = 0

    def stacked(self) -> np.ndarray:
        return np.concatenate(self.embeddings) if self.embeddings else np.zeros((0, 0))


def cache_key(source: AudioSource, backend: EmbeddingBackend) -> str:
    p = Path(source.path).resolve()
    st = p.stat()
    blob = json.dumps({"path": str(p), "mtime_ns": st.st_mtime_ns, "size": st.st_size, "start": source.start,
                       "duration": source.duration, "backend": backend.params()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _embed_one(source: AudioSource, backend: EmbeddingBackend) -> np.ndarray:
    from ..audio import load_audio

    path = source.path
    wav = load_audio(path, sample_rate=backend.sample_rate, offset=source.start, duration=source.duration)
    if not torch.isfinite(wav).all():
        raise AudioError(path, "holds NaN or infinite samples")
    emb = backend.embed(wav[:1][None]).numpy().astype(np.float32)
    if emb.shape[0] == 0:
        seconds = getattr(backend, "min_seconds", None)
        raise AudioError(path, f"too short for the {backend.name} embedding" + (f" (needs ≥ {seconds:.3f} s)" if seconds else ""))
    return emb


def embed_sources(sources: Sequence[AudioSource], backend: EmbeddingBackend, cache_dir: str | Path | None = None,
                  desc: str = "embedding", progress: bool = True) -> EmbeddedFiles:
    """Embed every source (cached when `cache_dir` is set); bad files land in `.skipped`."""
    out = EmbeddedFiles()
    cache = Path(cache_dir) / backend.name if cache_dir is not None else None
    for source in tqdm(sources, desc=desc, unit="file", disable=not progress):
        try:
            cached = cache / f"{cache_key(source, backend)}.npy" if cache is not None else None
            if cached is not None and cached.is_file():
                emb = np.load(cached)
                out.cache_hits += 1
            else:
                emb = _embed_one(source, backend)
                if cached is not None:
                    buffer = io.BytesIO()
                    np.save(buffer, emb)
                    atomic_write_bytes(cached, buffer.getvalue())
        except AudioError as e:
            out.skipped.append((e.path, e.reason))
            continue
        except OSError as e:
            out.skipped.append((source.path, f"{type(e).__name__}: {e}"))
            continue
        out.sources.append(source)
        out.embeddings.append(emb)
    return out
