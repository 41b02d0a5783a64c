"""A Gaussian with known covariance σ²I: only the mean is fitted (the setting of Bertrand et al. 2024's stability)."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from .base import MODELS
from .gaussian import Gaussian


@MODELS.register(
    "gaussian-mean",
    fitted=("mean_", "cov_", "degenerate_"),
    default_metrics=("mean", "mean_sq_error", "nll_real"),
    provides=("bias", "cdf", "fit_next", "fit_population", "fit_weighted", "log_prob", "mean_log_prob", "moments"),
)
class GaussianMean(Gaussian):
    """N(μ̂, ``std``² I) per replicate: μ̂ is the sample mean, the covariance is known and never refitted.

    Fitted: ``mean_`` ``(R, d)``, ``cov_`` ``(R, d, d)`` (always ``std``² I), ``degenerate_`` (always False).
    ``next_fit: direct`` draws the next fit directly: μ̂' ~ N(μ̂, λσ²I/n) under sampling bias λ.

    >>> import numpy as np
    >>> m = GaussianMean(std=2.0).fit(np.zeros((3, 5, 1)), rng=None)
    >>> m.cov_[:, 0, 0].tolist(), m.sample(4, rng=np.random.default_rng(0)).shape
    ([4.0, 4.0, 4.0], (3, 4, 1))
    """

    def __init__(
        self, std: Annotated[float, Field(gt=0)] = 1.0, next_fit: Literal["auto", "direct", "samples"] = "samples"
    ):
        super().__init__(variance="mle", next_fit=next_fit)
        self.std = std

    def _known(self, mean: np.ndarray):
        self.mean_ = mean
        self.cov_ = np.broadcast_to(self.std**2 * np.eye(mean.shape[1]), (*mean.shape, mean.shape[1])).copy()
        self.degenerate_ = np.zeros(len(mean), bool)
        return self

    def _set(self, n, total, outer):
        return self._known(total / n)

    def fit(self, x: np.ndarray, *, rng: np.random.Generator):
        return self._known(np.asarray(x, float).mean(1))

    def fit_weighted(self, x: np.ndarray, weight: np.ndarray, *, rng: np.random.Generator):
        """Weighted mean μ̂ = Σ wᵢxᵢ (``loop.weights``; ``weight`` ``(R, n)`` sums to 1 per replicate)."""
        return self._known(np.einsum("rn,rnd->rd", weight, np.asarray(x, float)))

    def fit_population(self, previous, *, rng: np.random.Generator):
        """Fit to the infinite population of ``previous``: its mean (the covariance stays known)."""
        return self._known(np.array(previous.moments()[0], dtype=float))

    def fit_next(self, n: int, *, rng: np.random.Generator, bias: float = 1.0):
        """Refit as if on ``n`` draws from N(μ̂, λσ²I): μ̂' ~ N(μ̂, λσ²I/n)."""
        self.check_fitted("mean_")
        return self._known(self.mean_ + self.std * np.sqrt(bias / n) * rng.standard_normal(self.mean_.shape))
