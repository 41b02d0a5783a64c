"""Categorical real distributions: uniform, Zipf, or real English word frequencies (``wordfreq``)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ...errors import ConfigError
from .base import SOURCES, Source


def draw_categories(probs: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws per replicate from ``probs`` ``(R, K)`` or ``(K,)``, as indices ``(R, n)``.

    Counts come from one multinomial call; the indices are those counts expanded, so they come sorted within a
    replicate: a consumer that keeps part of a draw must pick it at random (the curate filter's groups, the mixing
    regimes' trim of a family registered with ``ordered_draws``), never the first records.
    """
    probs = np.atleast_2d(probs)
    counts = rng.multinomial(n, probs / probs.sum(-1, keepdims=True))
    categories = np.broadcast_to(np.arange(probs.shape[-1]), counts.shape)
    return np.repeat(categories.ravel(), counts.ravel()).reshape(len(counts), n)


@SOURCES.register("categorical", provides=("probs",))
class CategoricalSource(Source):
    """``categories`` outcomes with a ``uniform``, ``zipf`` (p_i ∝ i^-exponent) or ``wordfreq`` distribution, or
    explicit ``probabilities`` (a list, renormalised; it sets ``categories`` and overrides ``distribution``).

    ``wordfreq`` takes the ``categories`` most frequent English words (the ``wordfreq`` package's large list) and
    renormalises their frequencies; ``self.labels`` holds the words. Records are category indices, shape ``()``.

    >>> import numpy as np
    >>> CategoricalSource(categories=4).sample(2, 3, np.random.default_rng(0)).shape
    (2, 3)
    """

    def __init__(
        self,
        categories: int = 10,
        distribution: Literal["uniform", "zipf", "wordfreq"] = "uniform",
        exponent: float = 1.1,
        probabilities: list[float] | None = None,
    ):
        self.categories, self.distribution, self.exponent = categories, distribution, exponent
        self.probabilities, self._words = probabilities, None
        if probabilities is not None:
            p = np.asarray(probabilities, float)
            if p.ndim != 1 or len(p) < 2 or np.any(p < 0) or p.sum() <= 0:
                raise ConfigError(
                    f"data.probabilities must be a list of >= 2 non-negative numbers, not all 0; got {probabilities!r}."
                )
            self.categories, self.probs = len(p), p / p.sum()
            return
        if categories < 2:
            raise ConfigError(f"data.categories must be >= 2; got {categories!r}.")
        if distribution == "uniform":
            p = np.ones(categories)
        elif distribution == "zipf":
            p = np.arange(1, categories + 1, dtype=float) ** -exponent
        else:
            p = self._wordfreq(categories)
        self.probs = p / p.sum()

    def _wordfreq(self, k: int) -> np.ndarray:
        try:
            from wordfreq import get_frequency_dict
        except ImportError:
            raise ConfigError(
                "data.distribution 'wordfreq' needs the wordfreq package: pip install 'modelcollapse[categorical]'."
            ) from None
        freq = get_frequency_dict("en", wordlist="large")
        top = sorted(freq.items(), key=lambda kv: -kv[1])[:k]
        self._words = [w for w, _ in top]
        return np.array([f for _, f in top], float)

    @property
    def labels(self) -> list[str]:
        """Category names: the words for ``wordfreq``, else the indices as strings (made when asked: 10⁶ types)."""
        return self._words if self._words is not None else [str(i) for i in range(len(self.probs))]

    def sample(self, replicates, n, rng):
        return draw_categories(np.broadcast_to(self.probs, (replicates, len(self.probs))), n, rng)
