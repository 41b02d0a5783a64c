"""Metrics of a fitted model's moments and likelihood, closed-form where the truth is known."""

from __future__ import annotations

import numpy as np

from ...measures import gaussian_w2_sq
from .base import METRICS, Context, require

TAIL_Q = 0.001  # the real distribution's tails: below its 0.1% and above its 99.9% quantile (real mass 0.002)


def model_moments(ctx: Context, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Fitted mean ``(R, d)`` and covariance ``(R, d, d)``."""
    return require(ctx, "moments", metric)()


@METRICS.register("mean", from_model=True, needs=("moments",))
def mean(ctx: Context) -> np.ndarray:
    """The fitted mean (1-D); for d > 1, the average of the fitted mean's coordinates. Units of the data."""
    mu, _ = model_moments(ctx, "mean")
    return mu.mean(-1)


@METRICS.register("variance", from_model=True, needs=("moments",), headline=1)
def variance(ctx: Context) -> np.ndarray:
    """The fitted variance σ̂² (1-D); for d > 1, tr Σ̂ / d. Squared units of the data."""
    _, cov = model_moments(ctx, "variance")
    return np.trace(cov, axis1=-2, axis2=-1) / cov.shape[-1]


@METRICS.register("trace_ratio", from_model=True, needs=("moments",), source_needs=("moments",), headline=3)
def trace_ratio(ctx: Context) -> np.ndarray:
    """tr Σ̂ / tr Σ₀: fitted over real total variance. Dimensionless; 1 means no collapse."""
    _, cov = model_moments(ctx, "trace_ratio")
    _, cov0 = require(ctx, "moments", "trace_ratio", owner="source")()
    return np.trace(cov, axis1=-2, axis2=-1) / np.trace(cov0)


@METRICS.register("det_ratio", from_model=True, needs=("moments",), source_needs=("moments",))
def det_ratio(ctx: Context) -> np.ndarray:
    """det Σ̂ / det Σ₀: the fitted over the real generalised variance (volume²), from log-determinants (no overflow in
    high d). Dimensionless; 1 means no collapse, 0 a singular fit."""
    _, cov = model_moments(ctx, "det_ratio")
    _, cov0 = require(ctx, "moments", "det_ratio", owner="source")()
    sign, logdet = np.linalg.slogdet(cov)
    return np.where(sign > 0, np.exp(logdet - np.linalg.slogdet(cov0)[1]), 0.0)


@METRICS.register("mean_sq_error", from_model=True, needs=("moments",), source_needs=("moments",))
def mean_sq_error(ctx: Context) -> np.ndarray:
    """‖μ̂ − μ₀‖², the squared Euclidean error of the fitted mean. Squared units."""
    mu, _ = model_moments(ctx, "mean_sq_error")
    mu0, _ = require(ctx, "moments", "mean_sq_error", owner="source")()
    return ((mu - mu0) ** 2).sum(-1)


@METRICS.register("w2_sq", from_model=True, needs=("moments",), source_needs=("moments",), headline=11)
def w2_sq(ctx: Context) -> np.ndarray:
    """W₂² between the fitted model and the real distribution, in squared data units (it is squared).

    Closed form between Gaussians with the fitted and the real means and covariances: exact when model and data are
    Gaussian; otherwise the Gelbrich lower bound on the true W₂².
    """
    mu, cov = model_moments(ctx, "w2_sq")
    mu0, cov0 = require(ctx, "moments", "w2_sq", owner="source")()
    return gaussian_w2_sq(mu, cov, mu0, cov0)


@METRICS.register("tail_mass")
def tail_mass(ctx: Context) -> np.ndarray:
    """Probability the fitted model gives to the real distribution's 0.1% tails (real mass: 0.002).

    1-D with a model cdf: exactly P(X < q₀.₀₀₁) + P(X > q₀.₉₉₉), q the real quantiles. Otherwise the share of the
    generation's samples whose real log density is below the real distribution's 0.2% log-density quantile
    (estimated on the held-out real records): the lowest-density 0.2% region.
    """
    model, source = ctx.model, ctx.source
    if getattr(source, "dim", None) == 1 and hasattr(model, "cdf") and hasattr(source, "quantile"):
        lo, hi = source.quantile(TAIL_Q), source.quantile(1 - TAIL_Q)
        return model.cdf(np.array(lo)) + 1 - model.cdf(np.array(hi))
    log_prob = require(ctx, "log_prob", "tail_mass", owner="source")
    threshold = np.quantile(log_prob(ctx.heldout), 2 * TAIL_Q)
    return (log_prob(ctx.samples) < threshold).mean(1)


@METRICS.register("nll_real", from_model=True, needs=("log_prob",), headline=13)
def nll_real(ctx: Context) -> np.ndarray:
    """Mean negative log-likelihood of the held-out real records under the fitted model, in nats per record. Uses the
    family's ``mean_log_prob`` where it has one (the same number by a cheaper route)."""
    log_prob = require(ctx, "log_prob", "nll_real")
    x = np.broadcast_to(ctx.heldout, (ctx.model.replicates, *ctx.heldout.shape))
    mean_log_prob = getattr(ctx.model, "mean_log_prob", None)
    return -(mean_log_prob(x) if mean_log_prob is not None else log_prob(x).mean(1))


KL_GRID = 4001  # nodes of the uniform grid kl_real integrates on
KL_TAIL = 1e-12  # kl_real's grid spans the real distribution's KL_TAIL to 1 − KL_TAIL quantiles


@METRICS.register("kl_real", needs=("log_prob",), source_needs=("log_prob", "quantile"), headline=12)
def kl_real(ctx: Context) -> np.ndarray:
    """KL(real ‖ model) = ∫ p₀ log(p₀ / q) dx in nats (1-D), by the trapezoid rule on 4,001 evenly spaced points
    between the real distribution's 1e-12 and 1 − 1e-12 quantiles (the real mass outside is ignored). Deterministic:
    no samples, so arms and generations compare without Monte Carlo noise."""
    model_log_prob = require(ctx, "log_prob", "kl_real")
    real_log_prob = require(ctx, "log_prob", "kl_real", owner="source")
    quantile = require(ctx, "quantile", "kl_real", owner="source")
    grid = np.linspace(quantile(KL_TAIL), quantile(1 - KL_TAIL), KL_GRID)
    log_p = real_log_prob(grid[:, None])
    log_q = model_log_prob(np.broadcast_to(grid[:, None], (ctx.model.replicates, KL_GRID, 1)))
    return np.trapezoid(np.exp(log_p) * (log_p - log_q), grid, axis=-1)


@METRICS.register("test_mse", from_model=True, needs=("weights_",), source_needs=("weights_",), headline=4)
def test_mse(ctx: Context) -> np.ndarray:
    """Regression test MSE against the noiseless truth: E_x[(x·ŵ − x·w*)²] = ‖ŵ − w*‖² for x ~ N(0, I).
    Squared label units."""
    w = require(ctx, "weights_", "test_mse")
    return ((w - ctx.source.weights_) ** 2).sum(-1)


@METRICS.register("accuracy", from_model=True, needs=("w_",), source_needs=("mu",))
def accuracy(ctx: Context) -> np.ndarray:
    """Test accuracy (a share in [0, 1]) of the linear classifier sign(w·x) on fresh real draws x ~ N(±μ, I), exact,
    not sampled: Φ(μ·w/‖w‖) (the margin along w is N(±μ·w/‖w‖, 1)). A zero w (no direction) scores ½."""
    from scipy import special

    w = require(ctx, "w_", "accuracy")
    norm = np.linalg.norm(w, axis=-1)
    margin = np.divide(w @ ctx.source.mu, norm, out=np.zeros(len(w)), where=norm > 0)
    return special.ndtr(margin)


@METRICS.register("degenerate", from_model=True)
def degenerate(ctx: Context) -> np.ndarray:
    """1 where the fit collapsed (singular covariance, empty component, single category), else 0."""
    return np.asarray(ctx.model.degenerate_, dtype=float)
