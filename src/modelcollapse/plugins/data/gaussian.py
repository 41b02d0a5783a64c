"""Gaussian and Gaussian-mixture real distributions, with exact densities and moments."""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError
from .base import SOURCES, Source


@SOURCES.register("gaussian", provides=("moments", "log_prob", "quantile"))
class GaussianSource(Source):
    """N(mean, diag(std²)) in ``dim`` dimensions. Records have shape ``(d,)``.

    >>> import numpy as np
    >>> GaussianSource(mean=0.0, std=1.0, dim=2).sample(3, 5, np.random.default_rng(0)).shape
    (3, 5, 2)
    """

    def __init__(self, mean: float | list[float] = 0.0, std: float | list[float] = 1.0, dim: int = 1):
        self.mean, self.std, self.dim = mean, std, dim
        if dim < 1:
            raise ConfigError(f"data.dim must be >= 1; got {dim!r}.")
        self.mean_ = (
            np.broadcast_to(np.asarray(mean, float), (dim,)).copy() if np.ndim(mean) == 0 or len(mean) == dim else None
        )
        self.std_ = (
            np.broadcast_to(np.asarray(std, float), (dim,)).copy() if np.ndim(std) == 0 or len(std) == dim else None
        )
        if self.mean_ is None or self.std_ is None:
            raise ConfigError(
                f"data.mean and data.std must be scalars or lists of length data.dim={dim}; got {mean!r}, {std!r}."
            )
        if np.any(self.std_ <= 0):
            raise ConfigError(f"data.std must be > 0; got {std!r}.")

    def sample(self, replicates, n, rng):
        return self.mean_ + self.std_ * rng.standard_normal((replicates, n, self.dim))

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(d,)`` and covariance ``(d, d)``."""
        return self.mean_.copy(), np.diag(self.std_**2)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Log density of records ``x`` ``(..., d)``, in nats, shape ``(...)``."""
        from scipy import stats  # here, not at the top: importing scipy.stats costs a toy run a second

        return stats.norm.logpdf(x, self.mean_, self.std_).sum(-1)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """1-D only: P(X <= x)."""
        from scipy import stats

        return stats.norm.cdf(x, self.mean_[0], self.std_[0])

    def quantile(self, q: float) -> float:
        """1-D only: the q-quantile, Φ⁻¹(q)·σ + μ (scipy.stats.norm.ppf's arithmetic, bit for bit, without its
        generic argument checks: ``tail_mass`` asks for two quantiles every generation)."""
        from scipy.special import ndtri

        return float(ndtri(q) * self.std_[0] + self.mean_[0])


@SOURCES.register("gaussian-mixture", provides=("moments", "log_prob", "quantile", "weights_"))
class MixtureSource(Source):
    """A mixture of isotropic Gaussians: ``weights`` (k,), ``means`` (k, d), ``stds`` (k,). Records ``(d,)``.

    >>> import numpy as np
    >>> MixtureSource().sample(2, 4, np.random.default_rng(0)).shape
    (2, 4, 1)
    """

    def __init__(
        self,
        weights: list[float] = (0.5, 0.5),
        means: list[list[float]] = ((-2.0,), (2.0,)),
        stds: list[float] = (0.5, 0.5),
    ):
        self.weights, self.means, self.stds = weights, means, stds
        w, m, s = np.asarray(weights, float), np.atleast_2d(np.asarray(means, float)), np.asarray(stds, float)
        if not (len(w) == len(m) == len(s)) or np.any(w < 0) or np.any(s <= 0) or w.sum() <= 0:
            raise ConfigError(
                "data.weights, data.means and data.stds must have one entry per component, weights >= 0, stds > 0; "
                f"got {weights!r}, {means!r}, {stds!r}."
            )
        self.weights_, self.means_, self.stds_ = w / w.sum(), m, s
        self.dim = m.shape[1]

    def sample(self, replicates, n, rng):
        comp = rng.choice(len(self.weights_), size=(replicates, n), p=self.weights_)
        return self.means_[comp] + self.stds_[comp][..., None] * rng.standard_normal((replicates, n, self.dim))

    def moments(self):
        mean = self.weights_ @ self.means_
        centred = self.means_ - mean
        cov = np.einsum("k,ki,kj->ij", self.weights_, centred, centred) + np.eye(self.dim) * (
            self.weights_ @ self.stds_**2
        )
        return mean, cov

    def log_prob(self, x):
        d = self.dim
        sq = ((x[..., None, :] - self.means_) ** 2).sum(-1)
        comp = np.log(self.weights_) - 0.5 * sq / self.stds_**2 - d * np.log(self.stds_) - 0.5 * d * np.log(2 * np.pi)
        from scipy import special

        return special.logsumexp(comp, axis=-1)

    def cdf(self, x):
        from scipy import stats

        return (self.weights_ * stats.norm.cdf(np.asarray(x)[..., None], self.means_[:, 0], self.stds_)).sum(-1)

    def quantile(self, q):
        lo, hi = self.means_[:, 0].min() - 40 * self.stds_.max(), self.means_[:, 0].max() + 40 * self.stds_.max()
        from scipy.optimize import brentq

        return float(brentq(lambda t: self.cdf(t) - q, lo, hi, xtol=1e-12))
