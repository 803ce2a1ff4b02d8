"""Generation metrics for two sets of files: FAD with any backend, plus classifier metrics with `synth`
(accuracy of class-conditioned samples, inception score, label KL) and the CLAP score with `clap`
when captions are known. The CLI (`nextscale evaluate`) is a thin layer over `evaluate_sets`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .classifier_metrics import accuracy_by_class, class_accuracy, confusions, inception_score, label_kl
from .embed_files import EmbeddedFiles, embed_sources
from .embeddings.base import EmbeddingBackend
from .fad import fad_from_embeddings
from .sources import list_sources

MIN_FILES = 2


def _clip_probabilities(files: EmbeddedFiles, backend) -> np.ndarray:
    """One probability row per file: the mean of its windows' softmax."""
    return np.stack([backend.probabilities(torch.from_numpy(e)).mean(0).numpy() for e in files.embeddings])


def _labels(files: EmbeddedFiles, classes: list[str]) -> tuple[np.ndarray, list[str]]:
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({s.label for s in files.sources if s.label and s.label not in index})
    return np.array([index.get(s.label, -1) if s.label else -1 for s in files.sources]), unknown


def _classifier_metrics(real: EmbeddedFiles, gen: EmbeddedFiles, backend) -> dict[str, Any]:
    p_real, p_gen = _clip_probabilities(real, backend), _clip_probabilities(gen, backend)
    out: dict[str, Any] = {"inception_score": inception_score(p_gen), "inception_score_real": inception_score(p_real),
                           "label_kl": label_kl(p_real, p_gen)}
    for name, files, probs in (("generated", gen, p_gen), ("real", real, p_real)):
        labels, unknown = _labels(files, backend.classes)
        acc, n = class_accuracy(probs, labels)
        out[f"accuracy_{name}"] = acc
        out[f"n_labelled_{name}"] = n
        out[f"accuracy_by_class_{name}"] = accuracy_by_class(probs, labels, backend.classes)
        out[f"confusions_{name}"] = confusions(probs, labels, backend.classes)
        if unknown:
            out[f"unknown_labels_{name}"] = unknown
    return out


def _clap_score(gen: EmbeddedFiles, backend) -> dict[str, Any]:
    pairs = [(s.caption, e.mean(0)) for s, e in zip(gen.sources, gen.embeddings) if s.caption]
    if not pairs:
        return {}
    texts, embs = zip(*pairs)
    scores = backend.score(list(texts), torch.from_numpy(np.stack(embs)))
    return {"clap_score": float(scores.mean()), "n_captioned": len(texts)}


def evaluate_sets(real: str | Path, generated: str | Path, backend: EmbeddingBackend,
                  cache_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """FAD (and what else the backend supports) between the files at `real` and at `generated`."""
    classes = list(getattr(backend, "classes", []))
    sets = {}
    for name, location in (("real", real), ("generated", generated)):
        files = embed_sources(list_sources(location, classes), backend, cache_dir, desc=f"{backend.name}: {name}",
                              progress=progress)
        if len(files.embeddings) < 1 or sum(len(e) for e in files.embeddings) < MIN_FILES:
            reasons = "; ".join(f"{p}: {r}" for p, r in files.skipped[:3])
            raise DataError(f"{location}: fewer than {MIN_FILES} usable embeddings for {name} "
                            f"({len(files.skipped)} file(s) skipped{': ' + reasons if reasons else ''})")
        sets[name] = files
    r, g = sets["real"], sets["generated"]
    result: dict[str, Any] = {
        "embedding": backend.name,
        "smoke_only": backend.smoke_only,
        "fad": fad_from_embeddings(r.stacked(), g.stacked()),
        "n_real": len(r.sources), "n_generated": len(g.sources),
        "n_real_embeddings": int(sum(len(e) for e in r.embeddings)),
        "n_generated_embeddings": int(sum(len(e) for e in g.embeddings)),
        "skipped_real": len(r.skipped), "skipped_generated": len(g.skipped),
        "skipped": [{"set": n, "path": p, "reason": why} for n, f in sets.items() for p, why in f.skipped],
        "cache_hits": r.cache_hits + g.cache_hits,
        "backend": backend.params(),
        "real": str(real), "generated": str(generated),
    }
    if hasattr(backend, "probabilities"):
        result.update(_classifier_metrics(r, g, backend))
    if hasattr(backend, "score"):
        result.update(_clap_score(g, backend))
    return result
