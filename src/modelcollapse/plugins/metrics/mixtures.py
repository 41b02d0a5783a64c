"""Metrics of fitted Gaussian mixtures (``weights_`` ``(R, k)``, ``means_`` ``(R, k, d)``, ``covariances_``
``(R, k, d, d)``), closed-form."""

from __future__ import annotations

import numpy as np

from ..models.gmm_em import precision
from .base import METRICS, Context, require

MIXTURE = ("weights_", "means_", "covariances_")


def mixture_params(ctx: Context, metric: str) -> tuple[np.ndarray, ...]:
    """The fitted mixture's (weights, means, covariances), or a clear error naming the metric."""
    return tuple(np.asarray(require(ctx, a, metric)) for a in MIXTURE)


def gaussian_overlap(w1, m1, c1, w2, m2, c2) -> np.ndarray:
    """∫ p(x) q(x) dx for mixtures p = Σᵢ w1ᵢ N(m1ᵢ, c1ᵢ) and q = Σⱼ w2ⱼ N(m2ⱼ, c2ⱼ), batched over the leading axis:
    Σᵢⱼ w1ᵢ w2ⱼ N(m1ᵢ; m2ⱼ, c1ᵢ + c2ⱼ). Shapes ``(R, k)``, ``(R, k, d)``, ``(R, k, d, d)`` (k may differ); ``(R,)``."""
    cov = c1[:, :, None] + c2[:, None, :]  # (R, k1, k2, d, d)
    diff = m1[:, :, None] - m2[:, None, :]  # (R, k1, k2, d)
    prec, logdet = precision(cov, 0.0)
    d = diff.shape[-1]
    log_norm = -0.5 * (d * np.log(2 * np.pi) + np.einsum("...i,...ij,...j->...", diff, prec, diff) + logdet)
    return np.einsum("ri,rj,rij->r", w1, w2, np.exp(log_norm))


def gmm_l2_sq(p, q) -> np.ndarray:
    """∫(p − q)² = ∫p² + ∫q² − 2∫pq for mixtures ``p`` and ``q`` given as (weights, means, covariances); ``(R,)``,
    clipped at 0 (rounding can make the difference of nearly equal terms slightly negative)."""
    return np.clip(gaussian_overlap(*p, *p) + gaussian_overlap(*q, *q) - 2 * gaussian_overlap(*p, *q), 0, None)


@METRICS.register("component_std", needs=("covariances_",), headline=2)
def component_std(ctx: Context) -> np.ndarray:
    """Mean over the k components (unweighted) of √(tr Σₖ / d), the per-coordinate RMS standard deviation of each
    fitted component, in data units (not squared). ``reg_covar`` is part of Σₖ, as in scikit-learn."""
    covs = np.asarray(require(ctx, "covariances_", "component_std"))
    return np.sqrt(np.trace(covs, axis1=-2, axis2=-1) / covs.shape[-1]).mean(-1)


@METRICS.register("gmm_l2_to_gen0", needs=MIXTURE)
def gmm_l2_to_gen0(ctx: Context) -> np.ndarray:
    """L2 distance ‖p − p₀‖₂ = √∫(p − p₀)² dx between the fitted mixture p and generation 0's mixture p₀ (not
    squared), in closed form via ∫N(x; a, A) N(x; b, B) dx = N(a; b, A + B). Units: data units^(−d/2)."""
    return np.sqrt(gmm_l2_sq_to_gen0(ctx))


@METRICS.register("gmm_l2_sq_to_gen0", needs=MIXTURE)
def gmm_l2_sq_to_gen0(ctx: Context) -> np.ndarray:
    """Squared L2 distance ∫(p − p₀)² dx between the fitted mixture p and generation 0's p₀ (squared), closed form.
    Units: data units^(−d). For collapsed components (std σ) it grows like Σₖwₖ²/(4πσ²)^(d/2): with σ ≈ 0.01 in 2-D
    that is in the hundreds, the scale of the published 536 (Shumailov et al., Supplementary Fig. 6)."""
    if "gmm_l2_sq_to_gen0" not in ctx.shared:  # gmm_l2_to_gen0 is its square root: computed once per generation
        p = mixture_params(ctx, "gmm_l2_to_gen0")
        p0 = tuple(np.asarray(getattr(ctx.gen0, a)) for a in MIXTURE)  # the same family, so the same attributes
        ctx.shared["gmm_l2_sq_to_gen0"] = gmm_l2_sq(p, p0)
    return ctx.shared["gmm_l2_sq_to_gen0"]
