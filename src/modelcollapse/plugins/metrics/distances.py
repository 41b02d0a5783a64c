"""Sample-based distances between a generation's samples and held-out real records, for any continuous family."""

from __future__ import annotations

import numpy as np

from .base import METRICS, Context

PROJECTIONS = 32  # random directions for the sliced W1 in d > 1
ENERGY_POINTS = 256  # records per side for the energy distance (pairwise cost grows with its square)


def w1_1d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact W₁ between the empirical distributions of ``a`` ``(R, m)`` and ``b`` ``(R, h)``, per row:
    ∫ |F_a(x) − F_b(x)| dx, from the merged sorted values. Equals ``scipy.stats.wasserstein_distance`` row by row."""
    m, h = a.shape[1], b.shape[1]
    values = np.concatenate([a, b], axis=1)
    order = np.argsort(values, axis=1, kind="stable")
    values = np.take_along_axis(values, order, axis=1)
    from_a = order < m
    cdf_gap = np.cumsum(np.where(from_a, 1.0 / m, -1.0 / h), axis=1)[:, :-1]
    return (np.abs(cdf_gap) * np.diff(values, axis=1)).sum(1)


def w1_sorted(a: np.ndarray, b_sorted: np.ndarray) -> np.ndarray:
    """Exact W₁ between equal-size empirical distributions: mean |sort(a) − sort(b)| along the last axis.
    ``a`` ``(..., m)``; ``b_sorted`` ``(..., m)`` already sorted (broadcast against ``a``)."""
    return np.abs(np.sort(a, axis=-1) - b_sorted).mean(-1)


@METRICS.register("w1")
def w1(ctx: Context) -> np.ndarray:
    """W₁ between the generation's m samples and m held-out real records, in data units (not squared).

    The real side is the first m held-out records (all of them if there are fewer, then by the merged-CDF formula).
    1-D: exact between the two empirical distributions. d > 1: the sliced W₁, the mean of the 1-D W₁ over 32 random
    unit directions (drawn from the metric's own stream).
    """
    x, y = ctx.samples, ctx.heldout
    m, d = x.shape[1], x.shape[-1]
    if len(y) < m:
        y = np.broadcast_to(y, (len(x), *y.shape))
        if d == 1:
            return w1_1d(x[..., 0], y[..., 0])
        dirs = ctx.rng.standard_normal((PROJECTIONS, d))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        return np.mean([w1_1d(x @ u, y @ u) for u in dirs], axis=0)
    y = y[:m]
    if d == 1:
        return w1_sorted(x[..., 0], np.sort(y[:, 0]))
    dirs = ctx.rng.standard_normal((PROJECTIONS, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    projected = np.moveaxis(x @ dirs.T, -1, 1)  # (R, P, m)
    return w1_sorted(projected, np.sort((y @ dirs.T).T, axis=-1)).mean(-1)


def energy_1(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Energy distance √(2E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖) between samples ``x`` ``(R, m, d)`` and ``y`` ``(R, h, d)``,
    V-statistics (as ``scipy.stats.energy_distance`` in 1-D)."""
    dist = lambda a, b: np.linalg.norm(a[:, :, None, :] - b[:, None, :, :], axis=-1).mean((1, 2))  # noqa: E731
    return np.sqrt(np.clip(2 * dist(x, y) - dist(x, x) - dist(y, y), 0, None))


@METRICS.register("energy")
def energy(ctx: Context) -> np.ndarray:
    """Energy distance (not squared) between at most 256 of the generation's samples and 256 held-out real records,
    in data units."""
    x = ctx.samples[:, :ENERGY_POINTS]
    y = np.broadcast_to(ctx.heldout[:ENERGY_POINTS], (len(x), *ctx.heldout[:ENERGY_POINTS].shape))
    return energy_1(x.reshape(*x.shape[:2], -1), y.reshape(*y.shape[:2], -1))
