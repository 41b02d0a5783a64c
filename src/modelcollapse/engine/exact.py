"""Exact fast paths: under ``replace``, draw the next fit from its sampling distribution instead of drawing M samples.

A family with ``model.sampler`` and a ``fit_next(n, *, rng)`` method can skip the synthetic samples when the next fit
consumes nothing else: the Gaussian's unbiased (or MLE) mean and covariance of n draws from N(μ, Σ) are independent,
μ̂ ~ N(μ, Σ/n) and (n−1)·Σ̂_unbiased = n·Σ̂_mle = W ~ Wishart(n−1, Σ); a categorical fit needs only the multinomial
counts. A generation then costs O(1) per replicate instead of O(M).

Not to be confused with ``loop.sampling: exact`` (anatomy), which removes the finite-sample error altogether by fitting
the previous model's population; ``model.sampler: exact`` keeps the finite-sample error and only draws it faster.

``model.sampler``: ``exact`` (refuse a config where the path is not exact), ``samples`` (always draw), ``auto``
(the default: exact where valid, else samples). The resolved config records the choice made.

The path is valid when (see :func:`blockers`): the regime is ``replace``; every metric is computed from the fitted
model alone (:data:`FROM_MODEL`; ``tail_mass`` only in 1-D, where it is a closed form); the family can draw the fit
exactly at this size (Gaussian: n − 1 >= d); no curation filters (``loop.bias`` is fine: ``fit_next`` draws from the
biased sampling distribution, as ``sample`` does). A new loop feature that transforms the samples must add itself to
:func:`blockers`.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

# Metrics that read only the fitted model and the real source, never the generation's samples.
FROM_MODEL = frozenset({
    "mean", "variance", "trace_ratio", "mean_sq_error", "w2_sq", "nll_real", "test_mse", "degenerate",
    "entropy", "support_size", "heterozygosity", "tv", "top_category",
})


def wishart(df: float, root: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw of W ~ Wishart(df, Σ) per replicate, batched, by the Bartlett decomposition.

    ``root`` ``(R, d, d)``: any L with L Lᵀ = Σ (a Cholesky factor or V·diag(√λ); singular Σ is fine).
    W = (L A)(L A)ᵀ with A lower triangular, A_ii = √χ²(df − i) for i = 0..d−1 and A_ij ~ N(0, 1) below the
    diagonal. Needs ``df > d − 1``. E[W] = df·Σ. Returns ``(R, d, d)``; O(R d³) whatever df is.

    >>> w = wishart(9.0, np.eye(2)[None].repeat(3, 0), np.random.default_rng(0))
    >>> w.shape
    (3, 2, 2)
    """
    r, d, _ = root.shape
    if df <= d - 1:
        raise ConfigError(f"the Wishart degrees of freedom must be > d - 1 = {d - 1}; got {df!r}.")
    a = np.zeros((r, d, d))
    a[:, np.arange(d), np.arange(d)] = np.sqrt(rng.chisquare(df - np.arange(d), size=(r, d)))
    rows, cols = np.tril_indices(d, -1)
    a[:, rows, cols] = rng.standard_normal((r, len(rows)))
    la = root @ a
    return la @ np.swapaxes(la, -1, -2)


def blockers(cfg, model, source, metrics: list[str]) -> list[str]:
    """Why the exact path cannot replace the samples for arm ``cfg`` (empty when it can), one reason per item."""
    out = []
    if not hasattr(model, "fit_next"):
        out.append(f"model.kind {cfg.model['kind']!r} has no exact sampler")
    from ..plugins.regimes import REGIMES

    if REGIMES.get(cfg.loop.regime, "loop.regime") is not REGIMES.get("replace"):
        out.append(f"loop.regime is {cfg.loop.regime!r}, not 'replace'")
    if cfg.loop.filters:
        out.append("loop.filters curate the samples")
    if getattr(cfg.loop, "sampling", "finite") == "exact":
        out.append("loop.sampling 'exact' fits each previous population, not samples")
    one_d = getattr(source, "dim", None) == 1 and hasattr(model, "cdf")
    sample_metrics = [m for m in metrics if m not in FROM_MODEL and not (m == "tail_mass" and one_d)]
    if sample_metrics:
        out.append(f"metrics {sample_metrics} need the samples")
    dim = getattr(source, "dim", 1)
    n = cfg.loop.n_synthetic or cfg.loop.samples
    if cfg.model["kind"] == "gaussian" and n <= dim:  # Wishart(n − 1, Σ) needs n − 1 >= d
        out.append(f"the {n} synthetic records a generation must exceed the dimension {dim}")
    return out


def sampler_for(cfg, model, source, metrics: list[str]) -> str:
    """The sampler arm ``cfg`` runs with, ``'exact'`` or ``'samples'``; raises for ``sampler: exact`` where invalid."""
    requested = getattr(model, "sampler", "samples")
    if requested == "samples":
        return "samples"
    reasons = blockers(cfg, model, source, metrics)
    if reasons and requested == "exact":
        raise ConfigError(f"model.sampler 'exact' is not exact here: {'; '.join(reasons)}. Use model.sampler: samples (or auto).")
    return "samples" if reasons else "exact"
