"""A Gaussian fitted by a few epochs of minibatch SGD on its negative log-likelihood: a deliberately imperfect learner.

The closed-form Gaussian fit (``model.kind: gaussian``) has no functional approximation error; this family has the
same expressivity and a learner that stops early, so comparing the two isolates the error of the learning procedure
(Shumailov et al. 2024's third source). With enough epochs and a small learning rate it converges to the MLE.
"""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError
from .base import MODELS, Family

TINY = 1e-300  # a variance at or below this (or a non-finite parameter: SGD diverged) marks a degenerate fit


@MODELS.register(
    "gaussian-sgd",
    fitted=("mean_", "log_std_", "records_", "degenerate_"),
    default_metrics=("mean", "variance", "w2_sq", "mean_sq_error", "tail_mass", "nll_real"),
    provides=("cdf", "fit_population", "log_prob", "moments"),
)
class GaussianSGD(Family):
    """A diagonal Gaussian N(μ, diag σ²) per replicate, trained from (``init_mean``, ``init_std``) by ``epochs`` passes
    of minibatch SGD (``batch_size`` records, learning rate ``lr``) on the mean NLL, in parameters μ and s = log σ.

    Per record the NLL is ½((x − μ)/σ)² + s + ½ log 2π, so the minibatch gradients are ∂μ = −mean((x − μ)/σ²) and
    ∂s = mean(1 − ((x − μ)/σ)²). Minibatch order is a fresh permutation per replicate and epoch, drawn from the ``rng``
    given to :meth:`fit`. Every fit starts from the initial point (no warm start), like the other families.

    Fitted: ``mean_`` ``(R, d)``, ``log_std_`` ``(R, d)``, ``records_`` ``(R,)`` (training-set size, which sets the
    number of steps in :meth:`fit_population`), ``degenerate_`` ``(R,)``.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(3.0, 2.0, size=(2, 500, 1))
    >>> m = GaussianSGD(lr=0.05, epochs=20).fit(x, rng=np.random.default_rng(1))
    >>> m.sample(4, rng=np.random.default_rng(2)).shape
    (2, 4, 1)
    """

    def __init__(
        self, lr: float = 0.05, epochs: int = 3, batch_size: int = 10, init_mean: float = 0.0, init_std: float = 1.0
    ):
        self.lr, self.epochs, self.batch_size, self.init_mean, self.init_std = (
            lr,
            epochs,
            batch_size,
            init_mean,
            init_std,
        )
        if not lr > 0:
            raise ConfigError(f"model.lr must be > 0; got {lr!r}.")
        for key, value in (("epochs", epochs), ("batch_size", batch_size)):
            if value < 1:
                raise ConfigError(f"model.{key} must be an int >= 1; got {value!r}.")
        if not init_std > 0:
            raise ConfigError(f"model.init_std must be > 0; got {init_std!r}.")

    def _start(self, R: int, d: int) -> tuple[np.ndarray, np.ndarray]:
        return np.full((R, d), float(self.init_mean)), np.full((R, d), np.log(self.init_std))

    def _finish(self, mu: np.ndarray, s: np.ndarray, records: np.ndarray):
        self.mean_, self.log_std_, self.records_ = mu, s, records
        finite = np.isfinite(mu).all(1) & np.isfinite(s).all(1)
        with np.errstate(over="ignore"):
            self.degenerate_ = ~finite | (np.exp(2 * np.where(np.isfinite(s), s, 0)).min(1) <= TINY)
        return self

    def steps(self, n: int) -> int:
        """SGD steps of one fit on ``n`` records: ``epochs`` × ⌈n / batch_size⌉."""
        return self.epochs * -(-n // self.batch_size)

    def fit(self, x: np.ndarray, *, rng: np.random.Generator):
        """Train on ``x`` ``(R, n, d)``, all replicates at once. Returns self."""
        x = np.asarray(x, dtype=float)
        R, n, d = x.shape
        mu, s = self._start(R, d)
        b = self.batch_size
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(self.epochs):
                order = rng.permuted(np.broadcast_to(np.arange(n), (R, n)), axis=1)
                for start in range(0, n, b):
                    batch = np.take_along_axis(x, order[:, start : start + b, None], axis=1)  # (R, b, d)
                    z = (batch - mu[:, None, :]) * np.exp(-s)[:, None, :]
                    grad_mu = -(z.mean(1) * np.exp(-s))
                    grad_s = 1 - (z**2).mean(1)
                    mu, s = mu - self.lr * grad_mu, s - self.lr * grad_s
        return self._finish(mu, s, np.full(R, n))

    def fit_population(self, previous, *, rng: np.random.Generator):
        """Train on infinitely many samples of ``previous`` (any family with ``moments()``): the same number of steps
        as a fit on ``previous.records_`` records (or this model's), each with the expected gradient under
        ``previous``'s mean m and variances v: ∂μ = −(m − μ)/σ², ∂s = 1 − (v + (m − μ)²)/σ². No minibatch noise is
        left; the early stop's bias is. Returns self."""
        m, cov = previous.moments()
        m, v = np.array(m, dtype=float), np.diagonal(cov, axis1=-2, axis2=-1).copy()
        records = np.array(getattr(previous, "records_", getattr(self, "records_", None)))
        R, d = m.shape
        mu, s = self._start(R, d)
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(self.steps(int(records.max()))):
                inv = np.exp(-2 * s)
                mu, s = mu + self.lr * (m - mu) * inv, s - self.lr * (1 - (v + (m - mu) ** 2) * inv)
        return self._finish(mu, s, records)

    def sample(self, n: int, *, rng: np.random.Generator) -> np.ndarray:
        """``(R, n, d)`` draws."""
        self.check_fitted("mean_")
        return self.mean_[:, None, :] + np.exp(self.log_std_)[:, None, :] * rng.standard_normal(
            (len(self.mean_), n, self.mean_.shape[1])
        )

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(R, d)`` and diagonal covariance ``(R, d, d)``."""
        self.check_fitted("mean_")
        return self.mean_, np.einsum("rd,de->rde", np.exp(2 * self.log_std_), np.eye(self.mean_.shape[1]))

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Log density of ``x`` ``(R, n, d)`` under each replicate's fit, in nats, ``(R, n)``."""
        self.check_fitted("mean_")
        from scipy import stats

        return stats.norm.logpdf(x, self.mean_[:, None, :], np.exp(self.log_std_)[:, None, :]).sum(-1)

    def cdf(self, x) -> np.ndarray:
        """1-D only: P(X <= x) per replicate, ``(R,)`` for scalar ``x``."""
        self.check_fitted("mean_")
        from scipy import stats

        return stats.norm.cdf(x, self.mean_[:, 0], np.exp(self.log_std_[:, 0]))
