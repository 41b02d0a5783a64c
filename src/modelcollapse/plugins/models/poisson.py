"""The Poisson family: the rate fitted by its maximum-likelihood estimate, the sample mean."""

from __future__ import annotations

from typing import Literal

import numpy as np

from .base import MODELS, Family


@MODELS.register(
    "poisson",
    fitted=("rate_", "degenerate_"),
    default_metrics=("mean", "nonzero"),
    provides=("fit_next", "fit_population", "moments"),
)
class Poisson(Family):
    """λ̂ = the mean count per coordinate, for every replicate at once. Records ``(R, n, d)`` counts.

    Fitted: ``rate_`` ``(R, d)``; ``degenerate_`` marks replicates whose every rate is 0 (an absorbing state: a
    Poisson(0) only draws zeros). ``next_fit``: ``direct`` lets the replace loop draw the next fit directly
    (:meth:`fit_next`: the sum of n draws is Poisson(nλ̂)), ``samples`` always draws, ``auto`` (default) picks direct
    where valid; the two paths draw different bits but the same distribution.

    >>> import numpy as np
    >>> m = Poisson().fit(np.array([[[0.0], [2.0], [1.0]]]), rng=None)
    >>> m.rate_.tolist(), m.sample(4, rng=np.random.default_rng(0)).shape
    ([[1.0]], (1, 4, 1))
    """

    def __init__(self, next_fit: Literal["auto", "direct", "samples"] = "auto"):
        self.next_fit = next_fit

    def _set(self, rate: np.ndarray):
        self.rate_ = rate
        self.degenerate_ = ~(rate > 0).any(-1)
        return self

    def fit(self, x: np.ndarray, *, rng: np.random.Generator):
        return self._set(np.asarray(x, float).mean(1))

    def fit_next(self, n: int, *, rng: np.random.Generator, bias: float = 1.0):
        """Refit as if on ``n`` fresh draws: their sum is Poisson(n λ̂), so λ̂' = Poisson(n λ̂) / n. O(R d)."""
        self.check_fitted("rate_")
        return self._set(rng.poisson(n * self.rate_) / n)

    def fit_population(self, previous, *, rng: np.random.Generator):
        """Fit to the infinite population of ``previous``: its rate, copied."""
        return self._set(np.array(previous.rate_, dtype=float))

    def sample(self, n: int, *, rng: np.random.Generator) -> np.ndarray:
        """``(R, n, d)`` Poisson(λ̂) counts, as floats."""
        self.check_fitted("rate_")
        return rng.poisson(self.rate_[:, None, :], (len(self.rate_), n, self.rate_.shape[1])).astype(float)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(R, d)`` and covariance ``(R, d, d)`` (diagonal: the rates)."""
        self.check_fitted("rate_")
        return self.rate_, self.rate_[:, :, None] * np.eye(self.rate_.shape[1])
