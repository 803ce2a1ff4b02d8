"""Fréchet distance against closed forms and an independent eigen-decomposition computation."""
import numpy as np
import pytest

from nextscale.errors import NextscaleError
from nextscale.eval.fad import GaussianStats, embedding_stats, fad_from_embeddings, frechet_distance


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def reference_frechet(mu1, s1, mu2, s2) -> float:
    """Tr((S1 S2)^½) = Tr((S1^½ S2 S1^½)^½): only symmetric PSD square roots, via eigh."""
    r1 = _sqrtm_psd(s1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(_sqrtm_psd(r1 @ s2 @ r1)))


def test_same_gaussian_is_near_zero():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20000, 6)), rng.normal(size=(20000, 6))
    assert abs(fad_from_embeddings(a, a)) < 1e-9
    assert fad_from_embeddings(a, b) < 0.01


@pytest.mark.parametrize("shift", [0.5, 1.0, 3.0])
def test_mean_shift_gives_squared_norm(shift):
    rng = np.random.default_rng(1)
    cov = np.diag([1.0, 2.0, 0.5, 3.0])
    delta = np.array([shift, -shift, 0.0, shift / 2])
    # exact closed form on the stats: equal covariances leave only ‖Δμ‖²
    exact = frechet_distance(GaussianStats(np.zeros(4), cov, 2), GaussianStats(delta, cov, 2))
    assert exact == pytest.approx(float(delta @ delta), rel=1e-9)
    # and from samples, within sampling noise
    a = rng.multivariate_normal(np.zeros(4), cov, size=40000)
    b = rng.multivariate_normal(np.zeros(4), cov, size=40000) + delta
    assert fad_from_embeddings(a, b) == pytest.approx(float(delta @ delta), abs=0.03, rel=0.01)


def test_matches_independent_computation():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
    b = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16)) + 0.3
    sa, sb = embedding_stats(a), embedding_stats(b)
    assert sa.mu.dtype == np.float64
    assert frechet_distance(sa, sb) == pytest.approx(reference_frechet(sa.mu, sa.sigma, sb.mu, sb.sigma), rel=1e-7)


def test_near_singular_covariance_is_handled():
    rng = np.random.default_rng(3)
    # fewer clips than dimensions: both covariances are rank-deficient, so is their product
    a, b = rng.normal(size=(10, 40)), rng.normal(size=(10, 40)) + 1.0
    value = fad_from_embeddings(a, b)
    sa, sb = embedding_stats(a), embedding_stats(b)
    eps = 1e-6 * np.eye(40)
    expected = reference_frechet(sa.mu, sa.sigma + eps, sb.mu, sb.sigma + eps) - 2 * 40 * 1e-6
    assert np.isfinite(value) and value == pytest.approx(expected, rel=1e-3)


def test_bad_inputs_are_named():
    with pytest.raises(NextscaleError, match="at least 2"):
        fad_from_embeddings(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(NextscaleError, match="embedding sizes differ"):
        fad_from_embeddings(np.random.rand(5, 3), np.random.rand(5, 4))
    with pytest.raises(NextscaleError, match="NaN"):
        fad_from_embeddings(np.full((5, 3), np.nan), np.random.rand(5, 3))
