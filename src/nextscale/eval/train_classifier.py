"""Train the `synth` embedding's classifier on the built-in synthetic corpus.

Clips are rendered once and turned into log-mels once; training then augments in the log-mel
domain (a random gain is an additive constant, a random shift is a roll in time), which keeps a
run to a minute or two on two CPU cores. Held-out accuracy is measured on clips from another seed
and stored in the checkpoint's metadata.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..runtime import resolve_device, seed_everything
from .embeddings.synth import ClassifierConfig, SynthClassifier

HELDOUT_SEED_OFFSET = 100_003


def render_corpus(n: int, seed: int, desc: str, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(audio (n, 1, S), labels (n,), classes) from SynthDataset(n, seed)."""
    from ..data.synth import KINDS, SynthDataset

    dataset = SynthDataset(n, seed)
    items = [dataset[i] for i in tqdm(range(len(dataset)), desc=desc, unit="clip", disable=not progress)]
    audio = torch.stack([item["audio"].float() for item in items])
    return audio, torch.tensor([item["label"] for item in items]), list(KINDS)


@torch.no_grad()
def _mels(model: SynthClassifier, audio: torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.cat([model.log_mel(chunk.to(device)) for chunk in audio.split(128)])


@torch.no_grad()
def accuracy(model: SynthClassifier, mels: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    predictions = torch.cat([model.head(model.features_from_mel(m)).argmax(-1).cpu() for m in mels.split(256)])
    return float((predictions == labels).float().mean())


def _add_noise_floor(batch: torch.Tensor, noise_mels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mix white noise of random level (−80 … −30 dB re full scale) into half the clips, in the log-mel
    domain (log(e^a + e^b)), so generated audio with a noise floor is still classified by its content."""
    b = batch.shape[0]
    pick = torch.randint(0, noise_mels.shape[0], (b,), generator=generator)
    level = torch.empty(b, 1, 1, 1).uniform_(math.log(1e-4), math.log(3e-2), generator=generator)
    noisy = torch.logaddexp(batch, noise_mels[pick.to(batch.device)] + level.to(batch.device))
    keep = (torch.rand(b, 1, 1, 1, generator=generator) < 0.5).to(batch.device)
    return torch.where(keep, batch, noisy)


def train_classifier(out: str | Path, n_train: int = 1200, n_heldout: int = 360, steps: int = 500,
                     batch_size: int = 32, lr: float = 3e-3, seed: int = 0, device: str = "auto",
                     channels: tuple[int, ...] = (8, 16, 32, 64), feature_dim: int = 128,
                     progress: bool = True) -> dict[str, Any]:
    """Train, evaluate on held-out clips and save to `out`; returns the summary stored as metadata."""
    start = time.perf_counter()
    seed_everything(seed)
    dev = resolve_device(device)
    audio, labels, classes = render_corpus(n_train, seed, "rendering train clips", progress)
    held_audio, held_labels, _ = render_corpus(n_heldout, seed + HELDOUT_SEED_OFFSET, "rendering held-out clips", progress)
    config = ClassifierConfig(classes=classes, clip_seconds=audio.shape[-1] / 24000, channels=list(channels),
                              feature_dim=feature_dim)
    model = SynthClassifier(config).to(dev)
    mels, held_mels = _mels(model, audio, dev), _mels(model, held_audio, dev)
    labels_dev = labels.to(dev)
    noise_mels = _mels(model, torch.randn(64, 1, audio.shape[-1], generator=torch.Generator().manual_seed(seed)), dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    generator = torch.Generator().manual_seed(seed)
    bar = tqdm(range(steps), desc="training classifier", unit="step", disable=not progress)
    first_loss = last_loss = float("nan")
    for step in bar:
        model.train()
        idx = torch.randint(0, mels.shape[0], (batch_size,), generator=generator)
        gain = (torch.rand(batch_size, 1, 1, 1, generator=generator) * 3.0 - 1.5).to(dev)  # ±13 dB
        shift = int(torch.randint(-8, 9, (1,), generator=generator))
        batch = torch.roll(mels[idx.to(dev)], shifts=shift, dims=-1) + gain
        batch = _add_noise_floor(batch, noise_mels, generator)
        loss = torch.nn.functional.cross_entropy(model.head(model.features_from_mel(batch)), labels_dev[idx.to(dev)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        last_loss = float(loss.detach())
        if step == 0:
            first_loss = last_loss
        if step % 20 == 0:
            bar.set_postfix(loss=f"{last_loss:.3f}")
    summary = {"heldout_accuracy": accuracy(model, held_mels, held_labels),
               "train_accuracy": accuracy(model, mels[:512], labels[:512]),
               "first_loss": first_loss, "final_loss": last_loss, "steps": steps, "n_train": n_train,
               "n_heldout": n_heldout, "seed": seed, "train_seconds": round(time.perf_counter() - start, 1)}
    model.cpu().eval().save_pretrained(out, metadata=summary)
    return summary


def heldout_and_classifier(work: str | Path, n_heldout: int, seed: int, device: str = "cpu") -> tuple[Path, Path]:
    """WORK/heldout (clips of another seed than any training corpus + manifest) and WORK/classifier
    (the `synth` classifier, trained as the demo trains it), each made once per folder; the
    benchmarks that score against held-out synthetic clips share them."""
    from ..data.export import export_corpus

    work = Path(work)
    manifest = work / "heldout" / "manifest.jsonl"
    if not manifest.is_file():
        export_corpus(work / "heldout", n_heldout, seed)
    classifier = work / "classifier"
    if not (classifier / "config.json").is_file():
        train_classifier(classifier, n_train=1200, n_heldout=300, steps=400, device=device)
    return manifest, classifier
