"""The categorical family: maximum-likelihood probabilities from counts."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..data.categorical import draw_categories
from .base import MODELS, Family


def tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    """p^(1/T) renormalised per row of ``probs`` ``(R, K)``, computed in log space (no underflow for small T)."""
    with np.errstate(divide="ignore"):
        logits = np.log(probs) / temperature
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True)


@MODELS.register(
    "categorical",
    fitted=("probs_", "degenerate_"),
    ordered_draws=True,  # draws come grouped by category (one multinomial, expanded): see draw_categories
    default_metrics=("entropy", "support_size", "heterozygosity", "tv"),
    provides=("bias", "fit_next", "fit_population", "fit_population_bias", "fit_weighted", "log_prob", "mean_log_prob"),
)
class Categorical(Family):
    """p̂ = counts / n per replicate (plus optional add-``smoothing`` pseudo-counts).

    Records are category indices; ``categories`` (K) comes from the source when bound, else from the data.
    Fitted: ``probs_`` ``(R, K)``; ``degenerate_`` marks replicates absorbed into a single category.
    ``next_fit``: ``direct`` lets the replace loop refit from multinomial counts alone (:meth:`fit_next`), ``samples``
    always draws the records, ``auto`` (default) picks direct where valid (see :mod:`modelcollapse.engine.next_fit`);
    both paths
    give the same bits here, so the default changes only the speed.

    >>> import numpy as np
    >>> m = Categorical().fit(np.array([[0, 0, 1, 2]]), rng=np.random.default_rng(0))
    >>> m.probs_.round(2).tolist()
    [[0.5, 0.25, 0.25]]
    """

    def __init__(self, smoothing: float = 0.0, next_fit: Literal["auto", "direct", "samples"] = "auto"):
        self.smoothing, self.next_fit = smoothing, next_fit
        self._k = None

    def bind(self, source, real):
        self._k = len(source.probs) if hasattr(source, "probs") else int(real.max()) + 1
        return self

    def counts(self, x: np.ndarray) -> np.ndarray:
        """Per-replicate category counts ``(R, K)`` of indices ``x`` ``(R, n)``, by one bincount."""
        x = np.asarray(x)
        r, k = x.shape[0], self._k or int(x.max()) + 1
        return np.bincount((x + k * np.arange(r)[:, None]).ravel(), minlength=r * k).reshape(r, k)

    def _set(self, counts: np.ndarray):
        counts = counts + self.smoothing
        self.probs_ = counts / counts.sum(1, keepdims=True)
        self.degenerate_ = (self.probs_ > 0).sum(1) <= 1
        return self

    def fit(self, x: np.ndarray, *, rng: np.random.Generator):
        return self._set(self.counts(x))

    def fit_weighted(self, x: np.ndarray, weight: np.ndarray, *, rng: np.random.Generator):
        """Weighted counts (``loop.weights``): category c counts n·Σ_{xᵢ = c} wᵢ of the n records, so equal weights
        give the plain counts (and ``smoothing`` keeps its meaning). ``weight`` ``(R, n)`` sums to 1 per replicate."""
        x = np.asarray(x)
        r, n = x.shape
        k = self._k or int(x.max()) + 1
        counts = np.bincount(
            (x + k * np.arange(r)[:, None]).ravel(), weights=(n * np.asarray(weight)).ravel(), minlength=r * k
        )
        return self._set(counts.reshape(r, k))

    def fit_next(self, n: int, *, rng: np.random.Generator, bias: float = 1.0):
        """Refit as if on ``n`` fresh draws from the current fit (tempered by ``bias``, as :meth:`sample`): only their
        counts matter, one multinomial per replicate (the draw :meth:`sample` makes with the same ``rng``, so both
        paths give the same bits)."""
        self.check_fitted("probs_")
        probs = self.probs_ if bias == 1.0 else tempered(self.probs_, bias)
        return self._set(rng.multinomial(n, probs / probs.sum(-1, keepdims=True)))

    def fit_chunks(self, chunks, *, rng: np.random.Generator):
        """Counts of the union of chunks, each chunk's counts cached (the accumulate pool grows every generation)."""
        for c in chunks:
            if "counts" not in c.cache:
                c.cache["counts"] = self.counts(c.x)
        k = max(c.cache["counts"].shape[1] for c in chunks)
        return self._set(sum(np.pad(c.cache["counts"], ((0, 0), (0, k - c.cache["counts"].shape[1]))) for c in chunks))

    def fit_population(self, previous, *, rng: np.random.Generator, bias: float = 1.0):
        """Fit to infinitely many draws of ``previous`` (``probs_`` ``(R, K)``) at temperature T = ``bias`` (as
        :meth:`sample`): its probabilities p^(1/T) renormalised, so t such fits give p₀^(T^−t) ("heat death" for
        T > 1, the argmax for T < 1). The ``smoothing`` pseudo-counts vanish against infinite counts. Returns self."""
        self.probs_ = np.array(previous.probs_ if bias == 1.0 else tempered(previous.probs_, bias), dtype=float)
        self.degenerate_ = (self.probs_ > 0).sum(1) <= 1
        return self

    def sample(self, n: int, *, rng: np.random.Generator, bias: float = 1.0) -> np.ndarray:
        """``(R, n)`` category indices; one multinomial draw of counts per replicate. ``bias`` is the temperature T:
        draws from p̂^(1/T) renormalised (T < 1 sharpens towards the mode; 1 = unbiased; zeros stay zero)."""
        self.check_fitted("probs_")
        return draw_categories(self.probs_ if bias == 1.0 else tempered(self.probs_, bias), n, rng)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        self.check_fitted("probs_")
        with np.errstate(divide="ignore"):
            return np.log(np.take_along_axis(self.probs_, np.asarray(x), axis=1))

    def mean_log_prob(self, x: np.ndarray) -> np.ndarray:
        """``log_prob(x).mean(1)``, ``(R,)`` nats, from the counts c of the records' categories: Σₖ cₖ log p̂ₖ / n
        (−inf where a record's category has probability 0). Records shared by every replicate (``x`` broadcast along
        its first axis, as ``nll_real`` passes the held-out set) are counted once: O(n + R K), not O(R n).

        >>> import numpy as np
        >>> m = Categorical().fit(np.array([[0, 0, 1, 2], [1, 1, 1, 2]]), rng=None)
        >>> x = np.broadcast_to(np.array([0, 1, 1, 2]), (2, 4))
        >>> m.mean_log_prob(x).round(4).tolist(), m.log_prob(x).mean(1).round(4).tolist()
        ([-1.213, -inf], [-1.213, -inf])
        """
        self.check_fitted("probs_")
        x = np.asarray(x)
        k = self.probs_.shape[1]
        shared = x.strides[0] == 0 or len(x) == 1
        counts = np.bincount(x[0], minlength=k)[None, :] if shared else self.counts(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(counts > 0, counts * np.log(self.probs_), 0.0)
        return terms.sum(1) / x.shape[1]
