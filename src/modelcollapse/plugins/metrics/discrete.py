"""Metrics of fitted categorical distributions ``probs_`` ``(R, K)``."""

from __future__ import annotations

import numpy as np

from ... import measures
from ...errors import ConfigError
from .base import METRICS, Context, require


def probs(ctx: Context, metric: str) -> np.ndarray:
    return require(ctx, "probs_", metric)


@METRICS.register("entropy", from_model=True, needs=("probs_",), headline=6)
def entropy(ctx: Context) -> np.ndarray:
    """Shannon entropy −Σ p̂ log p̂ of the fitted distribution, in nats."""
    return measures.entropy(probs(ctx, "entropy"))


@METRICS.register("support_size", from_model=True, needs=("probs_",), headline=5)
def support_size(ctx: Context) -> np.ndarray:
    """Number of categories with p̂ > 0. It only falls: a lost category never comes back under replace."""
    return (probs(ctx, "support_size") > 0).sum(-1)


@METRICS.register("heterozygosity", from_model=True, needs=("probs_",))
def heterozygosity(ctx: Context) -> np.ndarray:
    """1 − Σ p̂²: the chance two draws differ. Under replace with N draws, E[H] decays by (1 − 1/N) a generation."""
    return measures.heterozygosity(probs(ctx, "heterozygosity"))


@METRICS.register("tv", from_model=True, needs=("probs_",), source_needs=("probs",))
def tv(ctx: Context) -> np.ndarray:
    """Total-variation distance ½ Σ |p̂ − p₀| to the real distribution, in [0, 1]."""
    return measures.total_variation(probs(ctx, "tv"), ctx.source.probs)


@METRICS.register("top_category", from_model=True, needs=("probs_",))
def top_category(ctx: Context) -> np.ndarray:
    """Index of the most probable fitted category (after absorption, the category that won)."""
    return probs(ctx, "top_category").argmax(-1)


@METRICS.register("l2_sq_to_truth", from_model=True, needs=("probs_",), source_needs=("probs",))
def l2_sq_to_truth(ctx: Context) -> np.ndarray:
    """‖p̂ − p*‖² = Σ_i (p̂_i − p*_i)², the squared Euclidean distance of the fitted probabilities to the real ones
    (squared; dimensionless). Its expectation for one fit to N draws is (1 − Σ p*²)/N."""
    return ((probs(ctx, "l2_sq_to_truth") - ctx.source.probs) ** 2).sum(-1)


@METRICS.register("missing_mass", from_model=True, needs=("probs_",), source_needs=("probs",))
def missing_mass(ctx: Context) -> np.ndarray:
    """Σ_i p*_i · 1[p̂_i = 0]: the real distribution's mass on the categories the fit gives probability zero, in
    [0, 1]. For the memoriser (the MLE of counts) it is the test error of "A Tale of Tails": the chance that a fresh
    real draw is a type never seen in training."""
    return measures.missing_mass(ctx.source.probs, probs(ctx, "missing_mass"))


@METRICS.register("nonzero", from_model=True, needs=("rate_",))
def nonzero(ctx: Context) -> np.ndarray:
    """1 if the fitted rate (``rate_`` ``(R,)`` or ``(R, d)``) is not degenerate at 0 (some coordinate > 0), else 0.
    Averaged over replicates it is the probability the quantity is still present (Suresh et al.'s forgetting)."""
    rate = require(ctx, "rate_", "nonzero")
    return (rate.reshape(len(rate), -1) > 0).any(-1).astype(float)


@METRICS.register("survival", from_model=True, needs=("probs_",))
def survival(ctx: Context) -> np.ndarray:
    """The share of the categories present at generation 0 that are still present now: Σ_i 1[p̂_i > 0, c_i > 0] /
    Σ_i 1[c_i > 0], in [0, 1], where c_i = n₀·p̂⁰_i is category i's count in generation 0's n₀ training records (an
    unsmoothed fit: counts / n₀).

    Also keeps, pooled over this shard's replicates, the table the report's survival view draws (Suresh et al.'s
    forgetting per category): ``ctx.arrays["survival_count"]`` the distinct generation-0 counts c ≥ 1 ``(C,)``,
    ``["survival_total"]`` how many (replicate, category) pairs had each, ``["survival_alive"]`` how many of those are
    present now (all int64)."""
    if ctx.gen0_size is None:
        raise ConfigError(
            "metric 'survival' needs generation 0's training size (Context.gen0_size); this caller gives none."
        )
    now = probs(ctx, "survival")
    counts = np.rint(ctx.gen0.probs_ * ctx.gen0_size).astype(np.int64)  # exact: the fit's probs_ are counts / n₀
    alive = now > 0
    total = np.bincount(counts.ravel())
    kept = np.bincount(counts[alive], minlength=len(total))
    seen = np.flatnonzero(total[1:]) + 1
    ctx.arrays.update(survival_count=seen, survival_total=total[seen], survival_alive=kept[seen])
    return (alive & (counts > 0)).sum(-1) / np.maximum((counts > 0).sum(-1), 1)
