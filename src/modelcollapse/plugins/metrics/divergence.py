"""Divergences of the fitted density from the data's, integrated on a grid: the accumulated divergence of Khelifa,
Turner and Venkataramanan (ICML 2026), for fits that have a density (``log_prob``) on a low-dimensional
Gaussian-mixture source.

* ``chi2_to_data``: Pearson's χ²(p̂_g ‖ p_data), their accumulated divergence D_g (unitless);
* ``kl_to_data``: KL(p̂_g ‖ p_data), in nats.

Both integrate on one regular grid per source (:func:`mixture_grid`: the box reaching ``REACH`` of the widest
component's standard deviations beyond the outermost means, in steps of a third of the narrowest), with the kernels of
:mod:`modelcollapse.measures.grid`. The fitted log density on the grid is rounded to float32 and kept, with the
data's, the cell volume and the real share of the training set, in ``ctx.arrays`` (``grid_log_fit`` ``(R, G)``,
``grid_log_data`` ``(G,)``, ``grid_cell`` ``(1,)``, ``grid_real_share`` ``(R,)``; the first ``KEPT_REPLICATES``
replicates of each shard): the divergence view (``analysis/divergence.py``) takes the one-step divergences between
successive fits from them, and the metrics are computed from the same rounded values, so the view and the metric
agree bit for bit.
"""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError
from ...measures.grid import box_grid, grid_chi2, grid_kl
from ..regimes import provenance
from .base import METRICS, Context, require

REACH = 6.0  # box margin beyond the outermost means, in the widest component's standard deviations (mass left < 1e-8)
STEP = 1 / 3  # grid step, in the narrowest component's standard deviations (the Riemann sum is then exact to rounding)
MOST_DIMENSIONS = 2  # a grid's points grow as (1 / step)^d: three dimensions would hold ~10⁶ per replicate
KEPT_REPLICATES = 64  # grid densities kept for the view: 64 × 3,844 float32 = 1 MB a generation on mad-loops' mixture


def mixture_grid(means: np.ndarray, stds: np.ndarray) -> tuple[np.ndarray, float]:
    """The integration grid of an isotropic Gaussian mixture with component ``means`` ``(K, d)`` and ``stds``
    ``(K,)``: points ``(G, d)`` and the cell volume (see the module docstring).

    >>> points, cell = mixture_grid(np.array([[-3.0, -3], [3, 3]]), np.array([0.7, 0.7]))
    >>> points.shape, round(cell, 4)
    ((3844, 2), 0.0544)
    """
    means, stds = np.atleast_2d(means), np.asarray(stds, float)
    margin = REACH * stds.max()
    return box_grid(means.min(0) - margin, means.max(0) + margin, STEP * stds.min())


def grid_densities(ctx: Context, metric: str) -> tuple[np.ndarray, np.ndarray, float]:
    """The fitted and data log densities on the source's grid (``(R, G)``, the fit's rounded to float32) and the cell
    volume; computed once a generation (``ctx.shared``) and kept in ``ctx.arrays`` for the divergence view."""
    if "grid" not in ctx.shared:
        src = ctx.source
        if not hasattr(src, "means_") or src.means_.shape[1] > MOST_DIMENSIONS:
            dim = getattr(src, "dim", "?")
            raise ConfigError(
                f"metric {metric!r} integrates on a grid over a Gaussian-mixture source of 1 or {MOST_DIMENSIONS} "
                f"dimensions; got data of kind {type(src).__name__} with {dim} dimensions: remove it from metrics."
            )
        points, cell = mixture_grid(src.means_, src.stds_)
        log_fit = require(ctx, "log_prob", metric)(np.broadcast_to(points, (len(ctx.samples), *points.shape)))
        log_fit = np.asarray(log_fit, np.float32)
        log_data = np.asarray(src.log_prob(points), float)
        ctx.arrays.update(
            grid_log_fit=log_fit[:KEPT_REPLICATES],
            grid_log_data=log_data,
            grid_cell=np.array([cell]),
            grid_real_share=real_share(ctx.train, len(log_fit))[:KEPT_REPLICATES],
        )
        ctx.shared["grid"] = (log_fit.astype(float), log_data, cell)
    return ctx.shared["grid"]


def real_share(train: list, replicates: int) -> np.ndarray:
    """The share α of real records in each replicate's training set ``(R,)`` (1 for generation 0's)."""
    real, synthetic = provenance(train, replicates)
    return real / np.maximum(real + synthetic, 1)


@METRICS.register("chi2_to_data", needs=("log_prob",), source_needs=("log_prob", "weights_"))
def chi2_to_data(ctx: Context) -> np.ndarray:
    """Pearson's χ²(p̂_g ‖ p_data) = ∫ (p̂_g − p_data)² / p_data dx, the fitted density against the data's, on the
    source's grid (see the module docstring); unitless, ≥ 0, 0 for a perfect fit. Khelifa et al.'s accumulated
    divergence D_g."""
    log_fit, log_data, cell = grid_densities(ctx, "chi2_to_data")
    return grid_chi2(log_fit, log_data, cell)


@METRICS.register("kl_to_data", needs=("log_prob",), source_needs=("log_prob", "weights_"))
def kl_to_data(ctx: Context) -> np.ndarray:
    """KL(p̂_g ‖ p_data) = ∫ p̂_g log(p̂_g / p_data) dx in nats, the fitted density against the data's, on the
    source's grid (see the module docstring); ≥ 0, 0 for a perfect fit."""
    log_fit, log_data, cell = grid_densities(ctx, "kl_to_data")
    return grid_kl(log_fit, log_data, cell)
