"""Metrics of fitted categorical distributions ``probs_`` ``(R, K)``."""

from __future__ import annotations

import numpy as np
from scipy import special

from .base import METRICS, Context, require


def probs(ctx: Context, metric: str) -> np.ndarray:
    return require(ctx, "probs_", metric)


@METRICS.register("entropy", from_model=True, needs=("probs_",))
def entropy(ctx: Context) -> np.ndarray:
    """Shannon entropy −Σ p̂ log p̂ of the fitted distribution, in nats."""
    return special.entr(probs(ctx, "entropy")).sum(-1)


@METRICS.register("support_size", from_model=True, needs=("probs_",))
def support_size(ctx: Context) -> np.ndarray:
    """Number of categories with p̂ > 0. It only falls: a lost category never comes back under replace."""
    return (probs(ctx, "support_size") > 0).sum(-1)


@METRICS.register("heterozygosity", from_model=True, needs=("probs_",))
def heterozygosity(ctx: Context) -> np.ndarray:
    """1 − Σ p̂²: the chance two draws differ. Under replace with N draws, E[H] decays by (1 − 1/N) a generation."""
    return 1 - (probs(ctx, "heterozygosity") ** 2).sum(-1)


@METRICS.register("tv", from_model=True, needs=("probs_",), source_needs=("probs",))
def tv(ctx: Context) -> np.ndarray:
    """Total-variation distance ½ Σ |p̂ − p₀| to the real distribution, in [0, 1]."""
    return 0.5 * np.abs(probs(ctx, "tv") - ctx.source.probs).sum(-1)


@METRICS.register("top_category", from_model=True, needs=("probs_",))
def top_category(ctx: Context) -> np.ndarray:
    """Index of the most probable fitted category (after absorption, the category that won)."""
    return probs(ctx, "top_category").argmax(-1)
