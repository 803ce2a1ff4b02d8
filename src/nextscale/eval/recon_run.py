"""Run a SAT tokenizer over clips and collect reconstruction metrics (`nextscale evaluate-tokenizer`).

Each file is read at the tokenizer's rate, its first `clip_seconds` are encoded (shorter files are
zero-padded, and only the real samples are scored), and the metrics of `recon` are averaged over
clips. Unreadable files are reported, skipped and counted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import AudioError, DataError
from .recon import PAIR_METRICS, CodebookUsage, score_pair


def iter_clips(data: str, n: int, seed: int, sample_rate: int, clip_seconds: float, skipped: list
               ) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, (1, S) audio) of up to `n` clips: synthetic (`seed`) or a folder / manifest's files; files that
    cannot be read or hold non-finite samples are appended to `skipped` instead."""
    if data == "synth":
        from ..data.synth import SynthDataset

        dataset = SynthDataset(n, seed, sample_rate=sample_rate, clip_seconds=clip_seconds)
        for i in range(len(dataset)):
            yield f"synth[{i}]", dataset[i]["audio"].float()
        return
    from ..audio import load_audio
    from .sources import list_sources

    for source in list_sources(data)[:n]:
        try:
            wav = load_audio(source.path, sample_rate=sample_rate, offset=source.start,
                             duration=min(clip_seconds, source.duration or clip_seconds))[:1]
        except AudioError as e:
            skipped.append({"path": e.path, "reason": e.reason})
            continue
        if not torch.isfinite(wav).all():
            skipped.append({"path": source.path, "reason": "holds NaN or infinite samples"})
            continue
        yield source.path, wav


@torch.no_grad()
def evaluate_tokenizer(checkpoint: str | Path, data: str, n: int = 100, seed: int = 1,
                       device: str | torch.device = "cpu", progress: bool = True) -> dict[str, Any]:
    """Mean mel / STFT distance, SI-SDR and level over up to `n` clips, plus per-scale codebook usage."""
    from ..tokenizer.model import SAT

    sat = SAT.from_pretrained(str(checkpoint), map_location=device)
    length = sat.clip_samples
    usage = CodebookUsage(len(sat.scales), sat.codebook_size)
    skipped: list[dict] = []
    rows = []
    clips = iter_clips(str(data), n, seed, sat.sample_rate, length / sat.sample_rate, skipped)
    for name, wav in tqdm(clips, total=n, desc="reconstructing", unit="clip", disable=not progress):
        real = min(wav.shape[-1], length)
        x = torch.nn.functional.pad(wav[..., :real], (0, length - real))[None].to(device)
        codes = sat.encode(x)
        usage.update(codes)
        y = sat.decode(codes, length=length)
        ref, est = x[..., :real].cpu().reshape(1, -1), y[..., :real].float().cpu().reshape(1, -1)
        rows.append({"path": name, **score_pair(ref, est, sat.sample_rate)})
    if not rows:
        raise DataError(f"{data}: no readable audio ({len(skipped)} file(s) skipped)")
    per_scale = usage.summary()
    return {"checkpoint": str(checkpoint), "data": str(data), "n": len(rows),
            **{k: float(np.mean([r[k] for r in rows])) for k in PAIR_METRICS},
            "mean_usage": float(np.mean([r["usage"] for r in per_scale])),
            "mean_perplexity": float(np.mean([r["perplexity"] for r in per_scale])),
            "per_scale": per_scale, "per_clip": rows, "skipped": skipped}


@torch.no_grad()
def write_reconstructions(sat, manifest: str | Path, out_dir: str | Path) -> Path:
    """Every clip of a manifest through `sat` (encode -> decode) as WAVs + labels.json in `out_dir`.

    Scored like generated audio (FAD, class accuracy), this is the ceiling any AR model on these
    tokens can reach.
    """
    import json

    from ..audio import crop_or_pad, load_audio, save_audio
    from ..data.manifest import read_manifest
    from ..io import atomic_write_bytes

    out_dir = Path(out_dir)
    labels: dict[str, str] = {}
    device = next(sat.parameters()).device
    for entry in read_manifest(Path(manifest)).entries:
        wav = crop_or_pad(load_audio(entry.path, sat.sample_rate), sat.clip_samples)[0]
        recon = sat.decode(sat.encode(wav[None].to(device)))[0]
        name = Path(entry.path).name
        save_audio(out_dir / name, recon.cpu(), sat.sample_rate)
        labels[name] = entry.labels[0] if entry.labels else ""
    atomic_write_bytes(out_dir / "labels.json", json.dumps(labels, indent=1).encode("utf-8"))
    return out_dir
