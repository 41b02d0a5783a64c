"""The Gaussian-mixture family: k full-covariance components per replicate, fitted by EM over all replicates at once.

Every array program runs on the whole batch: data ``(R, n, d)``, responsibilities ``(R, k, n)`` (components before
points, so each component's row is contiguous; :meth:`GMM.responsibilities` returns the ``(R, n, k)`` view), means
``(R, k, d)``, covariances ``(R, k, d, d)``. Replicates that have converged leave the batch, so the last slow ones do
not make the fast ones iterate; no replicate's iterates depend on another's.

Numerics: a Gaussian's log density is linear in the quadratic features φ(x) = [xᵢxⱼ, xᵢ, 1], so with the features
``(R, F, n)`` computed once per fit, the E-step is one matrix-vector product per component (coefficients ``(R, F)``
times features) and the M-step's sufficient statistics Σₙ rₙφ(xₙ) are one more per component. Two components (the
paper's case) need only the log-odds row and one ``exp`` per record: see :func:`two_component_estep`. The expanded
forms lose precision in proportion to (distance from the origin / component spread)², so every replicate is centred
on its own data mean first.

Conventions follow scikit-learn's ``GaussianMixture(covariance_type="full")`` so its fits are a reference: ``tol`` is
on the change of the mean log-likelihood per record, ``reg_covar`` is added to every covariance's diagonal (and is
part of the stored ``covariances_``), the fitted parameters are those of the last M-step.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ...errors import ConfigError, RunError
from .base import MODELS, Family
from .gmm_em import (
    cholesky,
    component_stats,
    feature_dim,
    features,
    kmeans_labels,
    log_evidence,
    lower_apply,
    mixture_estep,
    normalise,
    precision,
    rows_times,
    square_layout,
    triu,
    two_component_estep,
    two_component_evidence,
)

LOG_2PI = np.log(2 * np.pi)
KMEANS_TOL = 1e-4  # k-means stops when centres move less than this × the data's mean variance (scikit-learn's KMeans)
EPS_COUNT = 10 * np.finfo(float).eps  # added to component counts (as scikit-learn) so an empty one divides safely
EMPTY_WEIGHT = 1e-6  # a component with a smaller weight is empty: it keeps its previous mean and covariance
POPULATION_NODES = 20_001  # fit_population (1-D): at most this many grid nodes represent the population
POPULATION_DRAWS = 100_000  # fit_population for d > 1: EM on this many draws of the previous mixture
INIT_DRAWS = 1000  # fit_population: draws of the previous mixture that the learner's initialisation sees
LOOP_DIM = 8  # up to this dimension, explicit per-coordinate arithmetic beats batched matmul on tiny matrices


def mixture_moments(weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(R, d)`` and covariance ``(R, d, d)`` of mixtures ``weights`` ``(R, k)``, ``means`` ``(R, k, d)``,
    ``covs`` ``(R, k, d, d)``: μ = Σ wₖμₖ, Σ = Σ wₖ(Σₖ + (μₖ − μ)(μₖ − μ)ᵀ)."""
    mean = np.einsum("rk,rkd->rd", weights, means)
    centred = means - mean[:, None, :]
    spread = covs + centred[..., :, None] * centred[..., None, :]
    return mean, np.einsum("rk,rkij->rij", weights, spread)


@MODELS.register(
    "gmm",
    fitted=("weights_", "means_", "covariances_", "converged_", "n_iter_", "lower_bound_", "degenerate_"),
    default_metrics=("component_std", "gmm_l2_to_gen0", "mean", "variance", "nll_real", "w1"),
    state_format="safetensors",  # written every generation: ~6x faster to serialise than an eight-member .npz
    provides=("bias", "cdf", "fit_population", "log_prob", "mean_log_prob", "moments"),
)
class GMM(Family):
    """A ``components``-component full-covariance Gaussian mixture per replicate, fitted by batched EM.

    Initialisation (randomness only from the ``rng`` given to :meth:`fit`), with scikit-learn's defaults
    (``GaussianMixture(init_params="kmeans")``, whose ``KMeans`` seeds by greedy k-means++ and runs up to 300 Lloyd
    steps): ``"k-means++"`` (default) seeds k-means by greedy k-means++ (:func:`~.gmm_em.plus_plus_centres`), runs up
    to ``kmeans_iter`` Lloyd steps (a replicate stops early once its centres no longer move) and starts EM from the
    hard assignment; ``"kmeans"`` is the same from ``components`` distinct random records (the initialisation before
    k-means++, kept as an option; it used ``kmeans_iter: 10``); ``"random"`` starts from uniformly random
    responsibilities (scikit-learn's ``"random"``). ``n_init`` initialisations each run EM to the end; every replicate
    keeps the fit with the highest final lower bound (scikit-learn's rule; its default is 1).

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

    def __init__(
        self,
        components: int = 2,
        max_iter: int = 100,
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        init: Literal["k-means++", "kmeans", "random"] = "k-means++",
        kmeans_iter: int = 300,
        n_init: int = 1,
    ):
        self.components, self.max_iter, self.tol, self.reg_covar = components, max_iter, tol, reg_covar
        self.init, self.kmeans_iter, self.n_init = init, kmeans_iter, n_init
        for key, value, low in (
            ("components", components, 1),
            ("max_iter", max_iter, 1),
            ("kmeans_iter", kmeans_iter, 0),
            ("n_init", n_init, 1),
        ):
            if value < low:
                raise ConfigError(f"model.{key} must be an int >= {low}; got {value!r}.")
        if tol < 0:
            raise ConfigError(f"model.tol must be >= 0; got {tol!r}.")
        if not reg_covar > 0:
            raise ConfigError(
                f"model.reg_covar must be > 0 (it keeps collapsed covariances invertible); got {reg_covar!r}."
            )

    # -- EM pieces -----------------------------------------------------------------------------------------------
    def _init_stats(self, phi: np.ndarray, total: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Sufficient statistics ``(R, k, F)`` of the initial responsibilities of the records with features ``phi``
        ``(R, F, n)`` (summing to ``total`` ``(R, F)``): k-means hard labels, or uniformly random responsibilities."""
        R, F, n = phi.shape
        k = self.components
        if self.init == "random":
            resp = rng.random((R, k, n))
            resp /= resp.sum(1, keepdims=True)
            return component_stats(phi, resp)
        plus = self.init == "k-means++"  # scikit-learn's KMeans: k-means++ seeds, tol 1e-4; the older start: neither
        labels = kmeans_labels(
            phi[:, -feature_dim(F) - 1 :],
            k,
            self.kmeans_iter,
            rng,
            "k-means++" if plus else "random",
            KMEANS_TOL if plus else 0.0,
        )
        if k == 2:  # the first cluster's statistics are the totals minus the second's
            second = component_stats(phi, labels[:, None, :].astype(float))[:, 0]
            return np.stack([total - second, second], axis=1)
        return component_stats(phi, (labels[:, None, :] == np.arange(k)[:, None]).astype(float))

    def _m_step(self, sums: np.ndarray, n: float, prev=None):
        """Weights ``(R, k)``, means ``(R, k, d)``, covariances ``(R, k, d, d)`` (``reg_covar`` added) from the
        sufficient statistics ``sums`` ``(R, k, F)`` (Σ r xᵢxⱼ, Σ r xᵢ, Σ r) of ``n`` records; empty components keep
        ``prev``'s. Few numpy calls (EM's last iterations run on a handful of replicates: the calls are the cost)."""
        d = feature_dim(sums.shape[-1])
        counts = sums[..., -1] + EPS_COUNT
        moments = sums[..., :-1] / counts[..., None]  # E_r[xᵢxⱼ] (i ≤ j), then E_r[xᵢ]
        means = moments[..., -d:]
        cov = np.take(moments, square_layout(d)[1], axis=-1).reshape(means.shape + (d,))  # E_r[xxᵀ]
        cov -= means[..., :, None] * means[..., None, :]
        weights = counts / n
        if prev is not None and weights.min() < EMPTY_WEIGHT:
            empty = weights < EMPTY_WEIGHT
            means = np.where(empty[..., None], prev[1], means)
            cov = np.where(empty[..., None, None], prev[2] - self.reg_covar * np.eye(d), cov)
        cov.reshape(cov.shape[:-2] + (d * d,))[..., :: d + 1] += self.reg_covar  # the diagonal
        return weights, means, cov

    def _coefficients(self, weights, means, cov) -> np.ndarray:
        """``c`` ``(R, k, F)`` with c·φ(x) = log wₖ + log N(x; μₖ, Σₖ): the E-step is then one product per component.

        With P = Σ⁻¹: (x − μ)ᵀP(x − μ) = Σᵢ Pᵢᵢxᵢ² + 2Σᵢ<ⱼ Pᵢⱼxᵢxⱼ − 2(Pμ)·x + μᵀPμ. Weights are positive (EM adds
        ``EPS_COUNT`` to every count).
        """
        d = means.shape[-1]
        q = d * (d + 1) // 2
        prec, logdet = precision(cov, self.reg_covar)
        coef = np.empty(weights.shape + (q + d + 1,))
        upper = np.take(prec.reshape(prec.shape[:-2] + (d * d,)), square_layout(d)[0], axis=-1)
        np.multiply(upper, -0.5 * triu(d)[2], out=coef[..., :q])
        pm = coef[..., q:-1]
        np.matmul(prec, means[..., None], out=pm[..., None])
        coef[..., -1] = np.log(weights) - 0.5 * (d * LOG_2PI + logdet + (means * pm).sum(-1))
        return coef

    def _terms(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Coefficients ``(R, k, F)`` and features ``(R, F, n)`` (``(1, F, n)`` for shared records) whose product is
        the log joint log wₖ + log N(x; μₖ, Σₖ) of records ``x`` ``(R, n, d)`` under the fitted mixture.

        ``x`` and the means are shifted by the mixture mean first, so the expanded quadratic form does not cancel
        badly; records shared by every replicate (a broadcast view, like the held-out set) get one shift, the mean
        over replicates, so their features are computed once.
        """
        self.check_fitted("means_")
        x = np.asarray(x, dtype=float)
        centre = np.einsum("rk,rkd->rd", self.weights_, self.means_)
        if x.ndim == 3 and x.strides[0] == 0:
            centre = np.broadcast_to(centre.mean(0), centre.shape)
            phi = features(x[:1], centre[:1])
        else:
            phi = features(x, centre)
        return self._coefficients(self.weights_, self.means_ - centre[:, None, :], self.covariances_), phi

    def _joint(self, x: np.ndarray) -> np.ndarray:
        """log wₖ + log N(x; μₖ, Σₖ) ``(R, k, n)`` of records ``x`` ``(R, n, d)`` under the fitted mixture."""
        return rows_times(*self._terms(x))

    def _em(self, phi: np.ndarray, total: np.ndarray, n: float, params) -> tuple[np.ndarray, ...]:
        """EM from ``params`` on features ``phi`` ``(R, F, n)``: (weights, means, covariances, converged, n_iter,
        lower_bound), each replicate leaving the batch when its mean log-likelihood changes by less than ``tol``."""
        R, k = params[0].shape
        d = params[1].shape[-1]
        estep = two_component_estep if k == 2 else mixture_estep
        out = [np.empty((R, k)), np.empty((R, k, d)), np.empty((R, k, d, d))]
        converged, n_iter, lower_bound = np.zeros(R, bool), np.zeros(R, np.int64), np.full(R, -np.inf)
        idx, prev = np.arange(R), np.full(R, -np.inf)
        for it in range(1, self.max_iter + 1):
            sums, ll = estep(self._coefficients(*params), phi, total)
            params = self._m_step(sums, n, params)
            done = np.abs(ll - prev) < self.tol
            finished = np.ones_like(done) if it == self.max_iter else done
            if finished.any():  # write the finished replicates back and drop them from the batch
                rows = idx[finished]
                for target, value in zip(out, params):
                    target[rows] = value[finished]
                converged[rows], n_iter[rows], lower_bound[rows] = done[finished], it, ll[finished]
                keep = ~finished
                idx, phi, total, prev = idx[keep], phi[keep], total[keep], ll[keep]
                params = tuple(p[keep] for p in params)
                if not idx.size:
                    break
            else:
                prev = ll
        return (*out, converged, n_iter, lower_bound)

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
        k = self.components
        if n < k:
            raise RunError(f"GMM.fit needs at least model.components={k} records per replicate; got {n}.")
        centre = (np.ones(n) @ x) / n  # (R, d): the mean record, as a matrix product (x.mean(1) is 20x slower here)
        phi = features(x, centre)  # (R, F, n), computed once: the records do not change while EM iterates
        total = phi.sum(-1)  # (R, F): Σφ over the records
        best = None
        for _ in range(self.n_init):  # each start runs EM to the end; every replicate keeps its highest lower bound
            fit = self._em(phi, total, n, self._m_step(self._init_stats(phi, total, rng), n))
            if best is None:
                best = fit
            else:
                better = fit[-1] > best[-1]
                best = tuple(np.where(better.reshape((-1,) + (1,) * (b.ndim - 1)), f, b) for f, b in zip(fit, best))
        out = list(best[:3])
        self.converged_, self.n_iter_, self.lower_bound_ = best[3:]
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
        weights, means, covs = (
            np.array(a, dtype=float) for a in (previous.weights_, previous.means_, previous.covariances_)
        )
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
        start = previous.sample(INIT_DRAWS, rng=rng) - centre[:, None, :]
        start = features(start)
        params = self._m_step(self._init_stats(start, start.sum(-1), rng), INIT_DRAWS)
        self.converged_, self.n_iter_, self.lower_bound_ = np.zeros(R, bool), np.zeros(R, np.int64), np.full(R, -np.inf)
        prev = np.full(R, -np.inf)
        for it in range(1, self.max_iter + 1):
            resp, logp = normalise(rows_times(self._coefficients(*params), phi))
            ll = (logp * mass).sum(1)  # E_previous[log q(x)] per replicate
            new = self._m_step(
                component_stats(phi, resp * mass[:, None, :] * n), n, params
            )  # counts / n = Σ resp · mass
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
        return np.swapaxes(normalise(self._joint(x))[0], 1, 2)

    def sample(self, n: int, *, rng: np.random.Generator, bias: float = 1.0) -> np.ndarray:
        """``(R, n, d)`` draws (a view of an ``(R, d, n)`` array): each record's component independently from the
        weights (so the component counts are multinomial and the records in random order), then its Gaussian.

        ``bias`` λ shrinks every component's covariance to λΣₖ (MAD's sampling bias; 1 = unbiased)."""
        self.check_fitted("means_")
        R, k, d = self.means_.shape
        below = np.cumsum(self.weights_ / self.weights_.sum(-1, keepdims=True), -1)  # (R, k): P(label <= c)
        u = rng.random((R, n))
        flat = np.repeat(k * np.arange(R), n).reshape(R, n)  # label + k·replicate: one flat index per record
        for c in range(k - 1):  # label = #{c < k − 1 : u >= P(label <= c)}: inverse-CDF, one comparison per component
            flat += u >= below[:, c, None]
        z = rng.standard_normal((d, R, n))
        if bias != 1.0:
            z *= np.sqrt(bias)
        lower = cholesky(self.covariances_, self.reg_covar)  # (R, k, d, d)
        pick = lambda a: np.take(a.ravel(), flat)  # noqa: E731  (a: (R, k) -> (R, n))
        if d <= LOOP_DIM:
            y = lower_apply(lower, z, pick)
        else:
            y = list(np.einsum("rnij,jrn->irn", lower.reshape(R * k, d, d)[flat], z))
        out = np.empty((R, d, n))  # each coordinate contiguous: the next fit reads coordinates as rows (``features``)
        for i in range(d):
            np.add(y[i], pick(self.means_[..., i]), out=out[:, i])
        return np.swapaxes(out, 1, 2)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Log density of ``x`` ``(R, n, d)`` under each replicate's mixture, in nats, ``(R, n)``."""
        return log_evidence(self._joint(x))

    def mean_log_prob(self, x: np.ndarray) -> np.ndarray:
        """``log_prob(x).mean(1)``, ``(R,)`` nats: for two components without a log per record (see
        :func:`two_component_evidence`), about a third of the cost."""
        if self.components != 2:
            return self.log_prob(x).mean(1)
        coef, phi = self._terms(x)
        return two_component_evidence(coef, phi, phi.sum(-1))[2] / phi.shape[-1]

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
        from scipy import stats

        return (self.weights_ * stats.norm.cdf(np.asarray(x, float)[..., None], self.means_[..., 0], std)).sum(-1)
