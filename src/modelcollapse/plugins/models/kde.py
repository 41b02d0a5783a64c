"""The kernel-density family: a Gaussian kernel on every training record, for all replicates at once."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ...errors import ConfigError, RunError
from .base import MODELS, Family
from .gaussian import psd_sqrt

TINY = 1e-300  # kernel variances are floored here: all records identical means a collapsed (degenerate) fit
QUERY_BLOCK = 2_000_000  # query x record pairs per replicate batch in log_prob, to bound memory


@MODELS.register(
    "kde",
    fitted=("points_", "bandwidth_", "kernel_cov_", "degenerate_"),
    default_metrics=("mean", "variance", "nll_real", "w1"),
    provides=("cdf", "fit_population", "log_prob", "moments"),
)
class KDE(Family):
    """Gaussian KDE per replicate, with scipy's ``gaussian_kde`` conventions in every dimension.

    The kernel covariance is ``factor² · Cov(records)`` (covariance with ddof=1, as ``np.cov``), where ``factor`` is
    Scott's n^(−1/(d+4)), Silverman's (n(d+2)/4)^(−1/(d+4)), or ``bandwidth`` itself when it is a number (scipy's
    scalar ``bw_method``: a factor on the data covariance, not an absolute width).

    Fitted: ``points_`` ``(R, n, d)``, ``bandwidth_`` ``(R,)`` (the factor), ``kernel_cov_`` ``(R, d, d)`` (the
    covariance of every component; after :meth:`fit_population`, the sum of every generation's kernel),
    ``degenerate_`` ``(R,)`` (kernel covariance singular: the records lie on a point or a line).

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2, 50, 1))
    >>> KDE().fit(x, rng=np.random.default_rng(1)).sample(5, rng=np.random.default_rng(2)).shape
    (2, 5, 1)
    """

    def __init__(self, bandwidth: float | Literal["scott", "silverman"] = "scott"):
        self.bandwidth = bandwidth
        if not isinstance(bandwidth, str) and not bandwidth > 0:
            raise ConfigError(f"model.bandwidth must be 'scott', 'silverman' or a number > 0; got {bandwidth!r}.")

    def fit(self, x: np.ndarray, *, rng: np.random.Generator):
        """Keep ``x`` ``(R, n, d)`` and set each replicate's kernel covariance. Returns self."""
        x = np.asarray(x, dtype=float)
        if x.ndim != 3 or x.shape[1] < 2:
            raise RunError(f"KDE.fit needs records of shape (R, n, d) with n >= 2; got an array of shape {x.shape}.")
        R, n, d = x.shape
        if self.bandwidth == "scott":
            factor = n ** (-1.0 / (d + 4))
        elif self.bandwidth == "silverman":
            factor = (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))
        else:
            factor = float(self.bandwidth)
        centred = x - x.mean(1, keepdims=True)
        data_cov = np.einsum("rni,rnj->rij", centred, centred) / (n - 1)
        self.points_ = x
        self.bandwidth_ = np.full(R, factor)
        self.kernel_cov_ = factor**2 * data_cov
        self.degenerate_ = np.linalg.eigvalsh(self.kernel_cov_)[:, 0] <= TINY
        return self

    def fit_population(self, previous: "KDE", *, rng: np.random.Generator):
        """Fit to infinitely many samples of the KDE ``previous``: p convolved with the kernel. Returns self.

        The kernel covariance is ``factor² · Cov(p)``, the same rule as :meth:`fit` with the population covariance of
        p (its ``moments()``; ddof plays no part). ``factor`` is the previous fit's ``bandwidth_``: for 'scott' and
        'silverman' that is the rule at the training size of generation 0 (at infinite n it would be 0 and the KDE a
        copy). p = (1/n) Σᵢ N(pᵢ, H) convolved with N(0, factor² Cov(p)) is (1/n) Σᵢ N(pᵢ, H + factor² Cov(p)): the
        centres stay and every component's covariance ``kernel_cov_`` grows by the new kernel's, so the state stays
        an exact Gaussian mixture and Cov grows by factor² · Cov per generation (the variance by (1 + factor²) times).
        """
        _, cov = previous.moments()
        self.points_, self.bandwidth_ = np.array(previous.points_), np.array(previous.bandwidth_)
        self.kernel_cov_ = previous.kernel_cov_ + self.bandwidth_[:, None, None] ** 2 * cov
        self.degenerate_ = np.linalg.eigvalsh(self.kernel_cov_)[:, 0] <= TINY
        return self

    def _factors(self) -> tuple[np.ndarray, np.ndarray]:
        """Whitening matrices W ``(R, d, d)`` (kernel covariance⁻¹ = WᵀW) and log-determinants ``(R,)``."""
        w, v = np.linalg.eigh(self.kernel_cov_)
        w = np.clip(w, TINY, None)
        return np.swapaxes(v, -1, -2) / np.sqrt(w)[..., None], np.log(w).sum(-1)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """log (1/n) Σᵢ N(x; pᵢ, H) for ``x`` ``(R, m, d)``, in nats, ``(R, m)``; by logsumexp over records, in
        blocks of queries so memory stays bounded."""
        self.check_fitted("points_")
        x = np.asarray(x, dtype=float)
        R, n, d = self.points_.shape
        whiten, logdet = self._factors()
        centre = self.points_.mean(1, keepdims=True)
        p = (self.points_ - centre) @ np.swapaxes(whiten, -1, -2)  # (R, n, d) whitened records
        q = (x - centre) @ np.swapaxes(whiten, -1, -2)  # (R, m, d)
        p_sq = (p**2).sum(-1)
        const = -0.5 * (d * np.log(2 * np.pi) + logdet) - np.log(n)
        block = max(1, QUERY_BLOCK // n)
        from scipy.special import logsumexp

        out = np.empty(x.shape[:2])
        for s in range(0, x.shape[1], block):
            qb = q[:, s : s + block]
            sq = (qb**2).sum(-1)[..., None] + p_sq[:, None, :] - 2 * qb @ np.swapaxes(p, -1, -2)
            out[:, s : s + block] = logsumexp(-0.5 * np.clip(sq, 0, None), axis=-1)
        return out + const[:, None]

    def sample(self, n: int, *, rng: np.random.Generator) -> np.ndarray:
        """``(R, n, d)`` draws: a uniformly chosen training record plus N(0, kernel covariance) noise."""
        self.check_fitted("points_")
        R, m, d = self.points_.shape
        pick = rng.integers(0, m, size=(R, n))
        noise = rng.standard_normal((R, n, d)) @ psd_sqrt(self.kernel_cov_)  # symmetric: S = Sᵀ
        return np.take_along_axis(self.points_, pick[..., None], axis=1) + noise

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(R, d)`` (of the records) and covariance ``(R, d, d)``: the records' covariance with ddof=0 plus the
        kernel covariance (the exact moments of the KDE)."""
        self.check_fitted("points_")
        mean = self.points_.mean(1)
        centred = self.points_ - mean[:, None, :]
        return mean, np.einsum("rni,rnj->rij", centred, centred) / centred.shape[1] + self.kernel_cov_

    def cdf(self, x) -> np.ndarray:
        """1-D only: P(X <= x) = mean over records of Φ((x − pᵢ)/h) per replicate; scalar ``x`` gives ``(R,)``."""
        self.check_fitted("points_")
        if self.points_.shape[-1] != 1:
            raise RunError(f"KDE.cdf is defined for 1-D data only; this fit has d={self.points_.shape[-1]}.")
        h = np.sqrt(np.clip(self.kernel_cov_[:, 0, 0], TINY, None))
        from scipy import stats

        return stats.norm.cdf((np.asarray(x, float) - self.points_[..., 0]) / h[:, None]).mean(-1)
