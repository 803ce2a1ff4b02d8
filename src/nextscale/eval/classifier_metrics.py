"""Metrics from a classifier's softmax: class accuracy, inception score, label-distribution KL.

All take probabilities (N, classes) and work in float64; a label of -1 means "unknown" and is
left out of the accuracy.
"""
from __future__ import annotations

import numpy as np

from ..errors import NextscaleError

EPS = 1e-12


def _probs(p, where: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise NextscaleError(f"{where}: expected (N, classes) probabilities with N > 0, got shape {p.shape}")
    return p


def class_accuracy(probs, labels) -> tuple[float, int]:
    """(accuracy, number of labelled clips) of argmax(probs) against labels (-1 = unlabelled)."""
    p = _probs(probs, "accuracy")
    y = np.asarray(labels, dtype=np.int64)
    known = y >= 0
    if not known.any():
        return float("nan"), 0
    return float((p[known].argmax(1) == y[known]).mean()), int(known.sum())


def accuracy_by_class(probs, labels, classes) -> dict[str, float]:
    """Accuracy of argmax(probs) within each labelled class, by name (classes with no clips left out):
    where a tokenizer or generator loses identity, not only how much."""
    p = _probs(probs, "accuracy by class")
    y = np.asarray(labels, dtype=np.int64)
    hits = p.argmax(1) == y
    return {name: float(hits[y == i].mean()) for i, name in enumerate(classes) if (y == i).any()}


def confusions(probs, labels, classes) -> dict[str, dict[str, int]]:
    """For each labelled class, the classes its misclassified clips were taken for, with counts (most first):
    whether a lost tone became a chord or noise says what the model dropped."""
    p = _probs(probs, "confusions")
    y = np.asarray(labels, dtype=np.int64)
    pred = p.argmax(1)
    out = {}
    for i, name in enumerate(classes):
        wrong = pred[(y == i) & (pred != i)]
        if wrong.size:
            counts = np.bincount(wrong, minlength=len(classes))
            out[name] = {classes[j]: int(counts[j]) for j in np.argsort(-counts, kind="stable") if counts[j]}
    return out


def inception_score(probs) -> float:
    """exp(E_x KL(p(y|x) ‖ p(y))): high when each clip is confidently one class and all classes occur."""
    p = _probs(probs, "inception score")
    marginal = p.mean(0, keepdims=True)
    kl = (p * (np.log(p + EPS) - np.log(marginal + EPS))).sum(1)
    return float(np.exp(kl.mean()))


def label_kl(real_probs, generated_probs) -> float:
    """KL(p_real(y) ‖ p_generated(y)) between the mean predicted label distributions (nats)."""
    r = _probs(real_probs, "KL (real)").mean(0)
    g = _probs(generated_probs, "KL (generated)").mean(0)
    if r.shape != g.shape:
        raise NextscaleError(f"KL: class counts differ ({r.shape[0]} vs {g.shape[0]})")
    return float((r * (np.log(r + EPS) - np.log(g + EPS))).sum())
