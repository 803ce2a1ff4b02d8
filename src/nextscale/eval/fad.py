"""Fréchet Audio Distance: the distance between Gaussians fitted to two sets of embeddings.

FAD = ‖μ_r − μ_g‖² + Tr(Σ_r) + Tr(Σ_g) − 2·Tr((Σ_r Σ_g)^½), computed in float64 throughout.
The matrix square root is the fragile part: with fewer embeddings than dimensions (or collinear
features) the covariance product is singular and `sqrtm` returns inf/NaN or a large imaginary
part. Like the established FID/FAD code we then retry with eps·I added to both diagonals, drop an
imaginary part that is only round-off, and refuse (clear error) when it is not.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ..errors import NextscaleError

SQRTM_EPS = 1e-6
IMAG_TOLERANCE = 1e-3


@dataclass(frozen=True)
class GaussianStats:
    """Mean and covariance of an embedding set (float64), plus how many rows they came from."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int


def embedding_stats(embeddings: np.ndarray, where: str = "embeddings") -> GaussianStats:
    """Fit a Gaussian to (N, D) embeddings. N >= 2 is required for a covariance."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise NextscaleError(f"{where}: expected a (N, D) array of embeddings, got shape {x.shape}")
    if x.shape[0] < 2:
        raise NextscaleError(f"{where}: need at least 2 embeddings to estimate a covariance, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise NextscaleError(f"{where}: embeddings contain NaN or inf")
    return GaussianStats(mu=x.mean(axis=0), sigma=np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1]),
                         n=x.shape[0])


def _sqrtm_product(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> np.ndarray:
    """(Σ1 Σ2)^½, retried with eps·I on both diagonals when the product is singular or non-finite."""
    with warnings.catch_warnings():  # singular products are expected and handled below
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    bad = not np.isfinite(covmean).all()
    if not bad:  # sqrtm of a singular product can be finite yet wrong: check that it squares back
        residual = np.linalg.norm(covmean @ covmean - sigma1 @ sigma2) / max(np.linalg.norm(sigma1 @ sigma2), 1e-300)
        bad = residual > 1e-4
    if bad:
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        if imag > IMAG_TOLERANCE:
            raise NextscaleError(f"Fréchet distance: the matrix square root has a large imaginary part ({imag:.3g}); "
                                 "the covariances are badly conditioned — use more clips per set")
        covmean = covmean.real
    return covmean


def frechet_distance(a: GaussianStats, b: GaussianStats, eps: float = SQRTM_EPS) -> float:
    """Fréchet distance between two Gaussians (the FAD when they are fitted to audio embeddings)."""
    if a.mu.shape != b.mu.shape:
        raise NextscaleError(f"Fréchet distance: embedding sizes differ ({a.mu.shape[0]} vs {b.mu.shape[0]}); "
                             "were both sets embedded with the same backend?")
    diff = a.mu - b.mu
    covmean = _sqrtm_product(a.sigma, b.sigma, eps)
    value = diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * np.trace(covmean)
    return float(value)


def fad_from_embeddings(real: np.ndarray, generated: np.ndarray) -> float:
    """FAD between two (N, D) embedding sets."""
    return frechet_distance(embedding_stats(real, "real embeddings"), embedding_stats(generated, "generated embeddings"))
