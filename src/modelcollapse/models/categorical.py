"""The categorical family: maximum-likelihood probabilities from counts."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..data.categorical import draw_categories
from . import MODELS, Family


@MODELS.register("categorical")
class Categorical(Family):
    """p̂ = counts / n per replicate (plus optional add-``smoothing`` pseudo-counts).

    Records are category indices; ``categories`` (K) comes from the source when bound, else from the data.
    Fitted: ``probs_`` ``(R, K)``; ``degenerate_`` marks replicates absorbed into a single category.
    ``sampler``: ``exact`` lets the replace loop refit from multinomial counts alone (:meth:`fit_next`), ``samples``
    always draws the records, ``auto`` picks exact where valid (see :mod:`modelcollapse.exact`).

    >>> import numpy as np
    >>> m = Categorical().fit(np.array([[0, 0, 1, 2]]), rng=np.random.default_rng(0))
    >>> m.probs_.round(2).tolist()
    [[0.5, 0.25, 0.25]]
    """

    default_metrics = ("entropy", "support_size", "heterozygosity", "tv")

    def __init__(self, smoothing: float = 0.0, sampler: Literal["auto", "exact", "samples"] = "auto"):
        self.smoothing, self.sampler = smoothing, sampler
        self._k = None

    def bind(self, source, real):
        self._k = len(source.probs) if hasattr(source, "probs") else int(real.max()) + 1
        return self

    def fit(self, x: np.ndarray, *, rng: np.random.Generator):
        x = np.asarray(x)
        r = x.shape[0]
        k = self._k or int(x.max()) + 1
        flat = (x + k * np.arange(r)[:, None]).ravel()
        return self._set_counts(np.bincount(flat, minlength=r * k).reshape(r, k))

    def _set_counts(self, counts: np.ndarray):
        counts = counts + self.smoothing
        self.probs_ = counts / counts.sum(1, keepdims=True)
        self.degenerate_ = (self.probs_ > 0).sum(1) <= 1
        return self

    def fit_next(self, n: int, *, rng: np.random.Generator):
        """Refit as if on ``n`` fresh draws from the current fit: only their counts matter, one multinomial per
        replicate (the same draw :meth:`sample` makes with the same ``rng``, so both paths give the same bits)."""
        self.check_fitted("probs_")
        return self._set_counts(rng.multinomial(n, self.probs_ / self.probs_.sum(-1, keepdims=True)))

    def sample(self, n: int, *, rng: np.random.Generator) -> np.ndarray:
        """``(R, n)`` category indices; one multinomial draw of counts per replicate."""
        self.check_fitted("probs_")
        return draw_categories(self.probs_, n, rng)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        self.check_fitted("probs_")
        with np.errstate(divide="ignore"):
            return np.log(np.take_along_axis(self.probs_, np.asarray(x), axis=1))
