"""Distances between Gaussians: the squared 2-Wasserstein distance in closed form, and the squared Fréchet distance
between Gaussians fitted to two sets of records (FID's formula)."""

from __future__ import annotations

import numpy as np


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of positive semi-definite matrices ``a`` ``(..., d, d)`` (negative eigenvalues, from
    rounding, clipped at 0); ``(..., d, d)``.

    >>> sqrtm_psd(np.array([[4.0, 0.0], [0.0, 9.0]])).round(12).tolist()
    [[2.0, 0.0], [0.0, 3.0]]
    """
    if a.shape[-1] == 1:  # 1 x 1: the root of the entry, exactly what the eigendecomposition gives, without LAPACK
        return np.sqrt(np.clip(a, 0, None))
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))[..., None, :]) @ np.swapaxes(v, -1, -2)


def gaussian_w2_sq(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> np.ndarray:
    """Squared 2-Wasserstein distance between N(mu1, cov1) and N(mu2, cov2), batched over leading axes (they
    broadcast): ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₂^½ Σ₁ Σ₂^½)^½), the trace term clipped at 0 against rounding.
    Means ``(..., d)``, covariances ``(..., d, d)``; returns ``(...)`` in squared data units (it is squared).

    >>> float(gaussian_w2_sq(np.zeros(1), np.eye(1), np.ones(1), 4 * np.eye(1)))  # (0 - 1)² + (1 - 2)²
    2.0
    """
    root2 = sqrtm_psd(cov2)
    cross = sqrtm_psd(root2 @ cov1 @ root2)
    tr = np.trace(cov1 + cov2 - 2 * cross, axis1=-2, axis2=-1)
    return ((mu1 - mu2) ** 2).sum(-1) + np.clip(tr, 0, None)


def gaussian_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(R, d)`` and covariance ``(R, d, d)`` (ddof 1, as ``np.cov``) of records ``x`` ``(R, n, d)``, n ≥ 2."""
    mu = x.mean(1)
    c = x - mu[:, None, :]
    return mu, np.einsum("rni,rnj->rij", c, c) / (x.shape[1] - 1)


def frechet_sq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared Fréchet distance between Gaussians fitted (:func:`gaussian_fit`) to records ``x`` ``(R, n, d)`` and
    ``y`` ``(R, m, d)``: :func:`gaussian_w2_sq` of the two fits (FID's formula on whatever features ``x`` and ``y``
    hold); ``(R,)``, squared feature units.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((1, 500, 3))
    >>> float(frechet_sq(x, x + 2.0)[0].round(9))  # a shift by (2, 2, 2) moves only the means
    12.0
    """
    return gaussian_w2_sq(*gaussian_fit(x), *gaussian_fit(y))
