"""The Gaussian family: mean and covariance fitted to all replicates at once."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ...errors import ConfigError
from .base import MODELS, Family

TINY = 1e-300  # a variance below this cannot be sampled from: the fit has collapsed to a point


def chunk_sums(chunk) -> tuple[int, np.ndarray, np.ndarray]:
    """(n, Σx, Σxxᵀ) of a chunk, cached on it: the accumulate pool is refitted every generation."""
    if "gaussian_sums" not in chunk.cache:
        x = chunk.x
        chunk.cache["gaussian_sums"] = (x.shape[1], x.sum(1), np.einsum("rni,rnj->rij", x, x))
    return chunk.cache["gaussian_sums"]


def smallest_eigenvalue(cov: np.ndarray) -> np.ndarray:
    """The smallest eigenvalue of each symmetric ``(R, d, d)`` matrix, ``(R,)`` (for d = 1 the entry itself)."""
    return cov[:, 0, 0].copy() if cov.shape[-1] == 1 else np.linalg.eigvalsh(cov)[:, 0]


def psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """The symmetric square root S of each covariance ``cov`` ``(R, d, d)`` (S = Sᵀ, S S = Σ; eigenvalues clipped at 0).

    Samples are drawn as z Sᵀ. Unlike V·diag(√λ), S does not depend on the sign (or, for a repeated eigenvalue, the
    basis) that the LAPACK kernel picks for each eigenvector, so one seed draws the same samples on every machine, up
    to rounding: with V·diag(√λ) a flipped eigenvector mirrored a generation's draws under another BLAS kernel.

    >>> psd_sqrt(np.array([[[4.0, 0.0], [0.0, 9.0]]])).round(12).tolist()
    [[[2.0, 0.0], [0.0, 3.0]]]
    """
    w, v = np.linalg.eigh(cov)
    return (v * np.sqrt(np.clip(w, 0, None))[..., None, :]) @ np.swapaxes(v, -1, -2)


def wishart(df: float, root: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw of W ~ Wishart(df, Σ) per replicate, batched, by the Bartlett decomposition.

    ``root`` ``(R, d, d)``: any L with L Lᵀ = Σ (a Cholesky factor or :func:`psd_sqrt`; singular Σ is fine).
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


@MODELS.register(
    "gaussian",
    fitted=("mean_", "cov_", "degenerate_"),
    default_metrics=("mean", "variance", "w2_sq", "trace_ratio", "mean_sq_error", "tail_mass", "nll_real"),
    provides=("bias", "cdf", "fit_next", "fit_population", "fit_weighted", "log_prob", "mean_log_prob", "moments"),
)
class Gaussian(Family):
    """A d-dimensional Gaussian per replicate, fitted by its sample mean and covariance.

    ``variance='unbiased'`` divides by n − 1 (Shumailov et al.), ``'mle'`` by n (Kazdan et al.).
    ``next_fit``: ``direct`` lets the replace loop draw the next fit directly (:meth:`fit_next`), ``samples`` (default)
    always draws the samples, ``auto`` picks direct where valid (see :mod:`modelcollapse.engine.next_fit`). The default
    stays ``samples`` because a direct fit draws other bits, and ``auto``'s choice depends on the metrics.
    Fitted: ``mean_`` ``(R, d)``, ``cov_`` ``(R, d, d)``, ``degenerate_`` ``(R,)``.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(4, 100, 1))
    >>> Gaussian().fit(x, rng=np.random.default_rng(1)).sample(10, rng=np.random.default_rng(2)).shape
    (4, 10, 1)
    """

    def __init__(
        self,
        variance: Literal["unbiased", "mle"] = "unbiased",
        next_fit: Literal["auto", "direct", "samples"] = "samples",
    ):
        self.variance, self.next_fit = variance, next_fit

    def _set(self, n: int, total: np.ndarray, outer: np.ndarray):
        ddof = 1 if self.variance == "unbiased" else 0
        self.mean_ = total / n
        self.cov_ = (outer - n * np.einsum("ri,rj->rij", self.mean_, self.mean_)) / (n - ddof)
        self.cov_ = 0.5 * (self.cov_ + np.swapaxes(self.cov_, -1, -2))
        self.degenerate_ = smallest_eigenvalue(self.cov_) <= TINY
        return self

    def fit(self, x: np.ndarray, *, rng: np.random.Generator):
        """``x``: ``(R, n, d)``. Centred before the outer products, for accuracy far from the origin."""
        n = x.shape[1]
        ddof = 1 if self.variance == "unbiased" else 0
        self.mean_ = x.mean(1)
        centred = x - self.mean_[:, None, :]
        self.cov_ = np.einsum("rni,rnj->rij", centred, centred) / (n - ddof)
        self.degenerate_ = smallest_eigenvalue(self.cov_) <= TINY
        return self

    def fit_weighted(self, x: np.ndarray, weight: np.ndarray, *, rng: np.random.Generator):
        """Weighted fit (``loop.weights``): mean μ = Σ wᵢxᵢ and covariance Σ wᵢ(xᵢ − μ)(xᵢ − μ)ᵀ, divided by
        1 − Σ wᵢ² for ``variance='unbiased'`` (the reliability-weights correction; n/(n − 1) for equal weights).
        ``x`` ``(R, n, d)``, ``weight`` ``(R, n)`` summing to 1 per replicate."""
        x = np.asarray(x, float)
        self.mean_ = np.einsum("rn,rnd->rd", weight, x)
        centred = x - self.mean_[:, None, :]
        self.cov_ = np.einsum("rn,rni,rnj->rij", weight, centred, centred)
        if self.variance == "unbiased":
            self.cov_ /= (1 - (weight**2).sum(1))[:, None, None]
        self.degenerate_ = smallest_eigenvalue(self.cov_) <= TINY
        return self

    def fit_population(self, previous, *, rng: np.random.Generator):
        """Fit to infinitely many samples of ``previous`` (any family with ``moments()``): its mean and covariance,
        copied. Population moments are exact, so ``variance`` (the ddof) plays no part. Returns self."""
        mean, cov = previous.moments()
        self.mean_, self.cov_ = np.array(mean, dtype=float), np.array(cov, dtype=float)
        self.degenerate_ = smallest_eigenvalue(self.cov_) <= TINY
        return self

    def fit_chunks(self, chunks, *, rng: np.random.Generator):
        if len(chunks) == 1:
            return self.fit(chunks[0].x, rng=rng)
        sums = [chunk_sums(c) for c in chunks]
        return self._set(sum(s[0] for s in sums), sum(s[1] for s in sums), sum(s[2] for s in sums))

    def _root(self) -> np.ndarray:
        return psd_sqrt(self.cov_)

    def sample(self, n: int, *, rng: np.random.Generator, bias: float = 1.0) -> np.ndarray:
        """``(R, n, d)`` draws from N(μ̂, λΣ̂), λ = ``bias`` (covariance shrink; 1 = unbiased); a collapsed fit (zero
        variance) returns its mean."""
        self.check_fitted("mean_")
        z = rng.standard_normal((len(self.mean_), n, self.mean_.shape[1]))
        if z.shape[-1] == 1:  # 1-D: scale in place, no batched matmul or second (R, n, d) array; the same bits
            if bias != 1.0:
                z *= np.sqrt(bias)
            z *= np.sqrt(np.clip(self.cov_, 0, None))
        else:
            z = np.sqrt(bias) * z @ np.swapaxes(self._root(), -1, -2)
        z += self.mean_[:, None, :]
        return z

    def fit_next(self, n: int, *, rng: np.random.Generator, bias: float = 1.0):
        """Refit as if on ``n`` fresh draws from N(μ̂, λΣ̂) (λ = ``bias``, as :meth:`sample`), drawing the fit from its
        exact sampling distribution: mean ~ N(μ, λΣ/n), covariance = W / (n − ddof) with W ~ Wishart(n − 1, λΣ)
        (independent). O(R d³), not O(R n d)."""

        self.check_fitted("mean_")
        root = np.sqrt(bias) * self._root()
        z = rng.standard_normal(self.mean_.shape)
        w = wishart(n - 1.0, root, rng)
        self.mean_ = self.mean_ + np.einsum("rij,rj->ri", root, z) / np.sqrt(n)
        self.cov_ = w / (n - (1 if self.variance == "unbiased" else 0))
        self.degenerate_ = smallest_eigenvalue(self.cov_) <= TINY
        return self

    def moments(self):
        self.check_fitted("mean_")
        return self.mean_, self.cov_

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Log density of ``x`` ``(R, n, d)`` under each replicate's fit, in nats, ``(R, n)``."""
        self.check_fitted("mean_")
        d = self.mean_.shape[1]
        w, v = np.linalg.eigh(self.cov_)
        w = np.clip(w, TINY, None)
        z = np.einsum("rnd,rde->rne", x - self.mean_[:, None, :], v) / np.sqrt(w)[:, None, :]
        return -0.5 * ((z**2).sum(-1) + np.log(w).sum(-1)[:, None] + d * np.log(2 * np.pi))

    def mean_log_prob(self, x: np.ndarray) -> np.ndarray:
        """``log_prob(x).mean(1)``, ``(R,)`` nats, from the records' sufficient statistics: with x̄ their mean and
        S = Σᵢ (xᵢ − x̄)(xᵢ − x̄)ᵀ / n their scatter, the mean log density under N(μ, Σ) is
        −½ [tr(Σ⁻¹S) + (x̄ − μ)ᵀ Σ⁻¹ (x̄ − μ) + log det Σ + d log 2π] (Σ's eigenvalues clipped at TINY, as
        :meth:`log_prob`). Records shared by every replicate (``x`` broadcast along its first axis, as ``nll_real``
        passes the held-out set) cost O(n d²) once, not O(R n d): the per-replicate work is O(R d³).

        >>> import numpy as np
        >>> m = Gaussian().fit(np.random.default_rng(0).normal(size=(3, 50, 2)), rng=None)
        >>> x = np.broadcast_to(np.random.default_rng(1).normal(size=(200, 2)), (3, 200, 2))
        >>> bool(np.allclose(m.mean_log_prob(x), m.log_prob(x).mean(1)))
        True
        """
        self.check_fitted("mean_")
        x = np.asarray(x, dtype=float)
        d = self.mean_.shape[1]
        shared = x.strides[0] == 0 or len(x) == 1  # one record set for every replicate
        records = x[:1] if shared else x
        xbar = records.mean(1)  # (R or 1, d)
        centred = records - xbar[:, None, :]
        scatter = np.einsum("rni,rnj->rij", centred, centred) / x.shape[1]
        if d == 1:  # a 1x1 matrix is its own eigenvalue, with eigenvector 1: the same numbers without LAPACK or einsum
            w = np.clip(self.cov_[:, 0], TINY, None)
            spread, z = scatter[:, 0] / w, (xbar - self.mean_) ** 2 / w
        else:
            w, v = np.linalg.eigh(self.cov_)
            w = np.clip(w, TINY, None)
            scatter = np.broadcast_to(scatter, self.cov_.shape)
            spread = np.einsum("rdk,rde,rek->rk", v, scatter, v) / w  # v_kᵀ S v_k / w_k
            z = np.einsum("rd,rdk->rk", xbar - self.mean_, v) ** 2 / w
        return -0.5 * (spread.sum(-1) + z.sum(-1) + np.log(w).sum(-1) + d * np.log(2 * np.pi))

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """1-D only: P(X <= x) per replicate, ``(R,)`` for scalar ``x``: Φ((x − μ̂)/σ̂), the arithmetic of
        scipy.stats.norm.cdf bit for bit (σ̂ >= √TINY > 0, and ndtr gives 0, 1 and NaN where scipy's checks would),
        without its generic argument checks: ``tail_mass`` calls it twice every generation."""
        from scipy.special import ndtr  # here, not at the top: importing scipy costs a toy run time

        return ndtr((np.asarray(x, dtype=float) - self.mean_[:, 0]) / np.sqrt(np.clip(self.cov_[:, 0, 0], TINY, None)))
