"""The Gaussian-mixture family: k full-covariance components per replicate, fitted by EM over all replicates at once.

Every array program runs on the whole batch: data ``(R, n, d)``, responsibilities ``(R, k, n)`` (components before
points, so each component's row is contiguous; :meth:`GMM.responsibilities` returns the ``(R, n, k)`` view), means
``(R, k, d)``, covariances ``(R, k, d, d)``. Replicates that have converged leave the batch, so the last slow ones do
not make the fast ones iterate; no replicate's iterates depend on another's.

Numerics: a Gaussian's log density is linear in the quadratic features φ(x) = [xᵢxⱼ, xᵢ, 1], so the E-step is one
batched matmul (coefficients ``(R, k, F)`` times features ``(R, F, n)``, computed once per fit) and the M-step's
sufficient statistics are another (responsibilities times features). The expanded forms lose precision in proportion
to (distance from the origin / component spread)², so every replicate is centred on its own data mean first.

Conventions follow scikit-learn's ``GaussianMixture(covariance_type="full")`` so its fits are a reference: ``tol`` is
on the change of the mean log-likelihood per record, ``reg_covar`` is added to every covariance's diagonal (and is
part of the stored ``covariances_``), the fitted parameters are those of the last M-step.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import special, stats

from ..errors import ConfigError, RunError
from . import MODELS, Family

LOG_2PI = np.log(2 * np.pi)
EPS_COUNT = 10 * np.finfo(float).eps  # added to component counts (as scikit-learn) so an empty one divides safely
EMPTY_WEIGHT = 1e-6  # a component with a smaller weight is empty: it keeps its previous mean and covariance
POPULATION_NODES = 20_001  # fit_population (1-D): at most this many grid nodes represent the population
POPULATION_DRAWS = 100_000  # fit_population for d > 1: EM on this many draws of the previous mixture
INIT_DRAWS = 1000  # fit_population: draws of the previous mixture that the learner's initialisation sees
LOOP_DIM = 8  # up to this dimension, explicit per-coordinate arithmetic beats batched matmul on tiny matrices


def cholesky(cov: np.ndarray, floor: float) -> np.ndarray:
    """Lower Cholesky factors of ``cov`` ``(..., d, d)``; if any matrix is not numerically positive definite (rounding
    in a collapsed component), the eigenvalues of all are clipped at ``floor`` first."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(cov)
        return np.linalg.cholesky((v * np.clip(w, floor, None)[..., None, :]) @ np.swapaxes(v, -1, -2))


def lower_apply(lower: np.ndarray, z, pick=lambda a: a) -> list[np.ndarray]:
    """``y_i = Σ_j L_ij z_j`` for lower-triangular ``lower`` ``(..., d, d)`` and coordinates ``z`` (d arrays).

    ``pick(lower[..., i, j])`` must broadcast against each ``z[j]`` (it gathers per-record entries in sampling);
    returns the d coordinates of ``y`` as a list. Explicit arithmetic: faster than matmul on tiny matrices.
    """
    d = lower.shape[-1]
    out = []
    for i in range(d):
        y = pick(lower[..., i, 0]) * z[0]
        for j in range(1, i + 1):
            y += pick(lower[..., i, j]) * z[j]
        out.append(y)
    return out


def features(x: np.ndarray) -> np.ndarray:
    """Quadratic features φ(x) = [xᵢxⱼ (i ≤ j, row-major upper triangle), x₁..x_d, 1] of records ``x`` ``(R, n, d)``,
    shape ``(R, F, n)`` with F = d(d+1)/2 + d + 1. A Gaussian's log density is linear in them."""
    R, n, d = x.shape
    q = d * (d + 1) // 2
    out = np.empty((R, q + d + 1, n))
    out[:, q:-1] = np.swapaxes(x, 1, 2)
    for row, (i, j) in enumerate(zip(*np.triu_indices(d))):  # plain row products: fancy indexing here is 10x slower
        np.multiply(out[:, q + i], out[:, q + j], out=out[:, row])
    out[:, -1] = 1.0
    return out


def feature_dim(F: int) -> int:
    """The d with d(d+1)/2 + d + 1 = F."""
    return int(round((-3 + np.sqrt(9 - 8 * (1 - F))) / 2))


def nearest(dist: np.ndarray) -> np.ndarray:
    """``dist.argmin(1)`` for ``(R, k, n)``, as k vectorised comparisons (argmin over a short middle axis is slow)."""
    if dist.shape[1] == 2:
        return np.less(dist[:, 1], dist[:, 0]).astype(np.int64)
    best, label = dist[:, 0], np.zeros(dist[:, 0].shape, np.int64)
    for c in range(1, dist.shape[1]):
        closer = dist[:, c] < best
        best, label = np.where(closer, dist[:, c], best), np.where(closer, c, label)
    return label


def mixture_moments(weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(R, d)`` and covariance ``(R, d, d)`` of mixtures ``weights`` ``(R, k)``, ``means`` ``(R, k, d)``,
    ``covs`` ``(R, k, d, d)``: μ = Σ wₖμₖ, Σ = Σ wₖ(Σₖ + (μₖ − μ)(μₖ − μ)ᵀ)."""
    mean = np.einsum("rk,rkd->rd", weights, means)
    centred = means - mean[:, None, :]
    spread = covs + centred[..., :, None] * centred[..., None, :]
    return mean, np.einsum("rk,rkij->rij", weights, spread)


@MODELS.register("gmm")
class GMM(Family):
    """A ``components``-component full-covariance Gaussian mixture per replicate, fitted by batched EM.

    Initialisation (randomness only from the ``rng`` given to :meth:`fit`): ``"kmeans"`` picks ``components``
    distinct records per replicate as centres and runs up to ``kmeans_iter`` Lloyd steps (0 or 1: just the nearest-
    centre assignment), stopping early once no label changes, then starts EM from the hard assignment; ``"random"`` starts from uniformly random responsibilities (scikit-learn's ``"random"``).

    Degenerate fits are results, not errors. A component whose weight falls below 1e-6 keeps its previous mean and
    covariance (its weight stays ≈ 0, so it is never sampled in practice); a component whose fitted covariance has
    an eigenvalue at or below ``reg_covar`` (its records collapsed onto a point or a line) is kept with ``reg_covar``
    on its diagonal. Either marks the replicate in ``degenerate_``; EM carries on.

    Fitted: ``weights_`` ``(R, k)``, ``means_`` ``(R, k, d)``, ``covariances_`` ``(R, k, d, d)`` (``reg_covar``
    included), ``degenerate_`` ``(R,)``, ``converged_`` ``(R,)``, ``n_iter_`` ``(R,)``, ``lower_bound_`` ``(R,)``
    (the last mean log-likelihood per record, nats).

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(3, 500, 2))
    >>> m = GMM(components=2).fit(x, rng=np.random.default_rng(1))
    >>> m.means_.shape, m.sample(10, rng=np.random.default_rng(2)).shape
    ((3, 2, 2), (3, 10, 2))
    """

    default_metrics = ("component_std", "gmm_l2_to_gen0", "mean", "variance", "nll_real", "w1")

    def __init__(
        self,
        components: int = 2,
        max_iter: int = 100,
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        init: Literal["kmeans", "random"] = "kmeans",
        kmeans_iter: int = 10,
    ):
        self.components, self.max_iter, self.tol, self.reg_covar = components, max_iter, tol, reg_covar
        self.init, self.kmeans_iter = init, kmeans_iter
        for key, value, low in (("components", components, 1), ("max_iter", max_iter, 1), ("kmeans_iter", kmeans_iter, 0)):
            if value < low:
                raise ConfigError(f"model.{key} must be an int >= {low}; got {value!r}.")
        if tol < 0:
            raise ConfigError(f"model.tol must be >= 0; got {tol!r}.")
        if not reg_covar > 0:
            raise ConfigError(f"model.reg_covar must be > 0 (it keeps collapsed covariances invertible); got {reg_covar!r}.")

    # -- EM pieces -----------------------------------------------------------------------------------------------
    def _init_resp(self, x: np.ndarray, phi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Initial responsibilities ``(R, k, n)`` for records ``x`` ``(R, n, d)`` with features ``phi``."""
        R, n, d = x.shape
        k = self.components
        if self.init == "random":
            resp = rng.random((R, k, n))
            return resp / resp.sum(1, keepdims=True)
        pick = np.argpartition(rng.random((R, n)), k - 1, axis=1)[:, :k]  # k distinct records per replicate
        centres = np.take_along_axis(x, pick[..., None], axis=1)  # (R, k, d)
        linear = phi[:, -d - 1 :]  # rows x_1..x_d, 1: ‖x − c‖² − ‖x‖² = −2c·x + ‖c‖², one matmul
        rows = [np.ascontiguousarray(phi[:, -d - 1 + j]).ravel() for j in range(d)]
        offset = k * np.arange(R)[:, None]
        labels = None
        for _ in range(max(self.kmeans_iter, 1)):
            coef = np.concatenate([-2 * centres, (centres**2).sum(-1, keepdims=True)], axis=-1)
            if k == 2:  # one margin per record instead of two distances
                new = np.less((coef[:, 1:] - coef[:, :1]) @ linear, 0)[:, 0].astype(np.int64)
            else:
                new = nearest(coef @ linear)
            if labels is not None and np.array_equal(new, labels):
                break
            labels = new
            flat = (labels + offset).ravel()  # per-(replicate, cluster) sums by bincount: no one-hot arrays
            counts = np.bincount(flat, minlength=R * k).reshape(R, k)
            sums = np.stack([np.bincount(flat, row, R * k) for row in rows], -1).reshape(R, k, d)
            moved = sums / np.maximum(counts, 1)[..., None]
            centres = np.where(counts[..., None] > 0, moved, centres)  # an empty cluster keeps its centre
        return (labels[:, None, :] == np.arange(k)[None, :, None]).astype(float)

    def _m_step(self, phi_t: np.ndarray, resp: np.ndarray, prev=None):
        """Weights ``(R, k)``, means ``(R, k, d)``, covariances ``(R, k, d, d)`` (``reg_covar`` added) from ``resp``
        ``(R, k, n)`` and the records' features ``phi_t`` ``(R, n, F)``; empty components keep ``prev``'s."""
        n, F = phi_t.shape[1:]
        d = feature_dim(F)
        sums = resp @ phi_t  # (R, k, F): Σ r x_i x_j, Σ r x_i, Σ r — every sufficient statistic in one matmul
        counts = sums[..., -1] + EPS_COUNT
        means = sums[..., -d - 1 : -1] / counts[..., None]
        second = np.empty(means.shape + (d,))
        iu, ju = np.triu_indices(d)
        second[..., iu, ju] = second[..., ju, iu] = sums[..., : len(iu)] / counts[..., None]
        cov = second - means[..., :, None] * means[..., None, :]
        weights = counts / n
        empty = weights < EMPTY_WEIGHT
        if prev is not None and empty.any():
            means = np.where(empty[..., None], prev[1], means)
            cov = np.where(empty[..., None, None], prev[2] - self.reg_covar * np.eye(d), cov)
        cov[..., np.arange(d), np.arange(d)] += self.reg_covar
        return weights, means, cov

    def _coefficients(self, weights, means, cov) -> np.ndarray:
        """``c`` ``(R, k, F)`` with c·φ(x) = log wₖ + log N(x; μₖ, Σₖ): the E-step is then one matmul.

        With P = Σ⁻¹: (x − μ)ᵀP(x − μ) = Σᵢ Pᵢᵢxᵢ² + 2Σᵢ<ⱼ Pᵢⱼxᵢxⱼ − 2(Pμ)·x + μᵀPμ.
        """
        d = means.shape[-1]
        lower = cholesky(cov, self.reg_covar)
        logdet = 2 * np.log(np.diagonal(lower, axis1=-2, axis2=-1)).sum(-1)
        inv = np.linalg.inv(lower)
        prec = np.swapaxes(inv, -1, -2) @ inv
        iu, ju = np.triu_indices(d)
        quad = prec[..., iu, ju] * np.where(iu == ju, 1.0, 2.0)
        pm = (prec @ means[..., None])[..., 0]
        with np.errstate(divide="ignore"):
            const = np.log(weights) - 0.5 * (d * LOG_2PI + logdet) - 0.5 * (means * pm).sum(-1)
        return np.concatenate([-0.5 * quad, pm, const[..., None]], axis=-1)

    @staticmethod
    def _normalise(joint: np.ndarray, points: bool = True):
        """Responsibilities ``(R, k, n)`` from the log joint ``(R, k, n)``, with log p(x) ``(R, n)`` if ``points``,
        else its mean over records ``(R,)``.

        Transcendentals dominate EM's cost, so the two-component case (the paper's) uses one ``exp`` per record:
        with e = exp(−|a − b|), the responsibilities are 1/(1 + e) and e/(1 + e), and log p = max(a, b) + log(1 + e),
        whose mean is summed as the log of products (each factor lies in [1, 2]; 1,000 of them cannot overflow).
        """
        if joint.shape[1] == 2:
            a, b = joint[:, 0], joint[:, 1]
            top, gap = np.maximum(a, b), a - b
            e = np.exp(-np.abs(gap))
            big = 1.0 / (1.0 + e)
            small = e * big
            resp = np.empty(joint.shape)
            ahead = gap >= 0
            resp[:, 0] = np.where(ahead, big, small)
            resp[:, 1] = np.where(ahead, small, big)
            if points:
                return resp, top + np.log1p(e)
            n, block = a.shape[1], 1000
            logs = sum(np.log(np.prod(1.0 + e[:, i : i + block], axis=1)) for i in range(0, n, block))
            return resp, (top.sum(1) + logs) / n
        top = joint.max(1)
        e = np.exp(joint - top[:, None, :])
        total = e.sum(1)
        lse = top + np.log(total)
        return e / total[:, None, :], (lse if points else lse.mean(-1))

    def _joint(self, x: np.ndarray) -> np.ndarray:
        """log wₖ + log N(x; μₖ, Σₖ) ``(R, k, n)`` of records ``x`` ``(R, n, d)`` under the fitted mixture.

        ``x`` and the means are shifted by the mixture mean first, so the expanded quadratic form does not cancel
        badly; records shared by every replicate (a broadcast view, like the held-out set) get one shift, the mean
        over replicates, so their features are computed once.
        """
        self.check_fitted("means_")
        x = np.asarray(x, dtype=float)
        centre = np.einsum("rk,rkd->rd", self.weights_, self.means_)
        if x.ndim == 3 and x.strides[0] == 0:
            centre = np.broadcast_to(centre.mean(0), centre.shape)
            phi = features(x[:1] - centre[:1, None, :])
        else:
            phi = features(x - centre[:, None, :])
        coef = self._coefficients(self.weights_, self.means_ - centre[:, None, :], self.covariances_)
        return coef @ phi

    # -- protocol ----------------------------------------------------------------------------------------------------
    def fit(self, x: np.ndarray, *, rng: np.random.Generator):
        """Fit every replicate of ``x`` ``(R, n, d)`` from scratch. Returns self.

        Each replicate is centred on its own data mean first (EM is translation-equivariant; the expanded quadratic
        forms lose less precision near the origin), and iterates until its mean log-likelihood per record changes by
        less than ``tol`` or ``max_iter`` EM steps are done.
        """
        x = np.asarray(x, dtype=float)
        if x.ndim != 3:
            raise RunError(f"GMM.fit needs records of shape (R, n, d); got an array of shape {x.shape}.")
        R, n, d = x.shape
        if n < self.components:
            raise RunError(f"GMM.fit needs at least model.components={self.components} records per replicate; got {n}.")
        centre = x.mean(1)
        x = x - centre[:, None, :]
        phi = features(x)  # (R, F, n), computed once: the records do not change while EM iterates
        phi_t = np.ascontiguousarray(np.swapaxes(phi, 1, 2))  # (R, n, F)
        params = self._m_step(phi_t, self._init_resp(x, phi, rng))
        out = [np.empty((R, self.components)), np.empty((R, self.components, d)), np.empty((R, self.components, d, d))]
        self.converged_, self.n_iter_ = np.zeros(R, bool), np.zeros(R, np.int64)
        self.lower_bound_ = np.full(R, -np.inf)
        idx, prev = np.arange(R), np.full(R, -np.inf)
        for it in range(1, self.max_iter + 1):
            resp, ll = self._normalise(self._coefficients(*params) @ phi, points=False)
            params = self._m_step(phi_t, resp, params)
            done = np.abs(ll - prev) < self.tol
            finished = np.ones_like(done) if it == self.max_iter else done
            if finished.any():  # write the finished replicates back and drop them from the batch
                rows = idx[finished]
                for target, value in zip(out, params):
                    target[rows] = value[finished]
                self.converged_[rows], self.n_iter_[rows], self.lower_bound_[rows] = done[finished], it, ll[finished]
                keep = ~finished
                idx, phi, phi_t, prev = idx[keep], phi[keep], phi_t[keep], ll[keep]
                params = tuple(p[keep] for p in params)
                if not idx.size:
                    break
            else:
                prev = ll
        self.weights_, self.means_, self.covariances_ = out
        self.means_ += centre[:, None, :]
        self.degenerate_ = self._degenerate()
        return self

    def fit_population(self, previous: "GMM", *, rng: np.random.Generator):
        """Fit to infinitely many samples of the mixture ``previous``, by the same EM as :meth:`fit`. Returns self.

        1-D: population EM. The population is a uniform grid of nodes over every component's mean ± 10 standard
        deviations, spaced at a quarter of the narrowest component's standard deviation (at most ``POPULATION_NODES``
        nodes), each weighted by ``previous``'s density there, normalised to sum 1. EM then runs on these weighted
        records with this family's ``max_iter``, ``tol`` and ``reg_covar``. Every E- and M-step expectation is then a
        trapezoid-rule integral against ``previous``; at a fixed point its integrands p·rₖ = wₖN(μₖ, σₖ²) are smooth
        Gaussians, for which the rule is exact to rounding, so a family that contains ``previous`` returns it to
        machine precision. d > 1: EM on ``POPULATION_DRAWS`` draws of ``previous`` (a large sample, not the
        population: statistical error of order 1/√100,000 remains).
        The learner's initialisation is its own rule (``init``) on ``INIT_DRAWS`` draws of ``previous``, so a bad
        start or an iteration cap biases the fit here as it does on finite data.
        """
        weights, means, covs = (np.array(a, dtype=float) for a in (previous.weights_, previous.means_, previous.covariances_))
        R, K, d = means.shape
        if d > 1:
            return self.fit(previous.sample(POPULATION_DRAWS, rng=rng), rng=rng)
        centre = np.einsum("rk,rkd->rd", weights, means)  # (R, 1): EM runs centred, as in fit
        mu, sd = means[..., 0] - centre, np.sqrt(covs[..., 0, 0])  # (R, K)
        lo, hi = (mu - 10 * sd).min(1), (mu + 10 * sd).max(1)
        n = int(np.clip(np.ceil(((hi - lo) / (sd.min(1) / 4)).max()), 64, POPULATION_NODES))
        x = (lo[:, None] + (hi - lo)[:, None] * np.linspace(0, 1, n))[..., None]  # (R, n, 1)
        mass = np.exp(previous.log_prob(x + centre[:, None, :]))
        mass /= mass.sum(1, keepdims=True)  # (R, n): the population, sums to 1 per replicate
        phi = features(x)
        phi_t = np.ascontiguousarray(np.swapaxes(phi, 1, 2))
        start = previous.sample(INIT_DRAWS, rng=rng) - centre[:, None, :]
        params = self._m_step(np.swapaxes(features(start), 1, 2), self._init_resp(start, features(start), rng))
        self.converged_, self.n_iter_, self.lower_bound_ = np.zeros(R, bool), np.zeros(R, np.int64), np.full(R, -np.inf)
        prev = np.full(R, -np.inf)
        for it in range(1, self.max_iter + 1):
            resp, logp = self._normalise(self._coefficients(*params) @ phi)
            ll = (logp * mass).sum(1)  # E_previous[log q(x)] per replicate
            new = self._m_step(phi_t, resp * mass[:, None, :] * n, params)  # counts / n = Σ resp · mass
            active = ~self.converged_
            params = tuple(np.where(active.reshape(-1, *[1] * (a.ndim - 1)), b, a) for a, b in zip(params, new))
            self.n_iter_[active] = it
            self.lower_bound_ = np.where(active, ll, self.lower_bound_)
            self.converged_ |= np.abs(ll - prev) < self.tol
            prev = ll
            if self.converged_.all():
                break
        self.weights_, self.means_, self.covariances_ = (np.array(p) for p in params)
        self.means_ += centre[:, None, :]
        self.degenerate_ = self._degenerate()
        return self

    def _degenerate(self) -> np.ndarray:
        """Replicates with an empty component or a covariance collapsed to the ``reg_covar`` floor, ``(R,)``."""
        d = self.means_.shape[-1]
        raw = self.covariances_ - self.reg_covar * np.eye(d)
        smallest = np.linalg.eigvalsh(raw)[..., 0]
        return ((self.weights_ < EMPTY_WEIGHT) | (smallest <= self.reg_covar)).any(-1)

    def responsibilities(self, x: np.ndarray) -> np.ndarray:
        """Posterior component probabilities of records ``x`` ``(R, n, d)``, shape ``(R, n, k)``."""
        return np.swapaxes(self._normalise(self._joint(x))[0], 1, 2)

    def sample(self, n: int, *, rng: np.random.Generator, bias: float = 1.0) -> np.ndarray:
        """``(R, n, d)`` draws: component counts from one multinomial per replicate, records in random order.

        ``bias`` λ shrinks every component's covariance to λΣₖ (MAD's sampling bias; 1 = unbiased)."""
        self.check_fitted("means_")
        R, k, d = self.means_.shape
        w = self.weights_ / self.weights_.sum(-1, keepdims=True)
        counts = rng.multinomial(n, w)  # (R, k)
        labels = np.repeat(np.tile(np.arange(k), R), counts.ravel()).reshape(R, n)
        labels = rng.permuted(labels, axis=1)  # exchangeable order: regimes may take the first m records
        z = np.sqrt(bias) * rng.standard_normal((d, R, n))
        lower = cholesky(self.covariances_, self.reg_covar)  # (R, k, d, d)
        flat = labels + k * np.arange(R)[:, None]  # gather per-record parameters with one flat index
        pick = lambda a: np.take(a.ravel(), flat)  # noqa: E731  (a: (R, k) -> (R, n))
        if d <= LOOP_DIM:
            y = lower_apply(lower, z, pick)
        else:
            y = list(np.einsum("rnij,jrn->irn", lower.reshape(R * k, d, d)[flat], z))
        return np.stack([y[i] + pick(self.means_[..., i]) for i in range(d)], axis=-1)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Log density of ``x`` ``(R, n, d)`` under each replicate's mixture, in nats, ``(R, n)``."""
        return self._normalise(self._joint(x))[1]

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mixture mean ``(R, d)`` and covariance ``(R, d, d)``."""
        self.check_fitted("means_")
        return mixture_moments(self.weights_, self.means_, self.covariances_)

    def cdf(self, x) -> np.ndarray:
        """1-D only: P(X <= x) = Σₖ wₖ Φ((x − μₖ)/σₖ) per replicate; scalar ``x`` gives ``(R,)``."""
        self.check_fitted("means_")
        if self.means_.shape[-1] != 1:
            raise RunError(f"GMM.cdf is defined for 1-D data only; this fit has d={self.means_.shape[-1]}.")
        std = np.sqrt(self.covariances_[..., 0, 0])
        return (self.weights_ * stats.norm.cdf(np.asarray(x, float)[..., None], self.means_[..., 0], std)).sum(-1)
