"""Heavy-tailed categorical sources and the "AI data" transforms of "A Tale of Tails" (Dohmatob et al. 2024).

``zipf``: p_i ∝ i^−exponent over ``types`` categories. ``tail-cut`` and ``tail-narrow`` wrap any source with exact
``probs`` (``source: {kind: zipf, ...}``): their records are what a model trained on AI-generated data sees, a draw
from q = π·p + (1 − π)·q_AI with π = ``clean_share``, while ``probs`` stays the clean p, so every metric (``tv``,
``missing_mass``, ...) measures against the real distribution.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import Field

from ...errors import ConfigError
from .base import SOURCES, Source
from .categorical import CategoricalSource, draw_categories


@SOURCES.register("zipf", provides=("probs",))
class ZipfSource(CategoricalSource):
    """p_i ∝ i^−``exponent`` for i = 1..``types`` (category index i − 1). Records are category indices ``(R, n)``.

    >>> ZipfSource(exponent=2.0, types=3).probs.round(3).tolist()
    [0.735, 0.184, 0.082]
    """

    def __init__(self, exponent: Annotated[float, Field(gt=0)] = 2.0, types: Annotated[int, Field(ge=2)] = 1_000_000):
        super().__init__(categories=types, distribution="zipf", exponent=exponent)
        self.types = types


class _Transformed(Source):
    """A source whose records come from ``train_probs`` while ``probs`` is the wrapped source's (the truth)."""

    def _wrap(self, source: dict[str, Any], clean_share: float):
        inner = SOURCES.build(source, "data.source")
        if not hasattr(inner, "probs"):
            raise ConfigError(
                f"data.source must be a categorical source with exact probabilities; got kind {source.get('kind')!r}."
            )
        self.probs, self.clean_share = inner.probs, clean_share
        return inner.probs

    def _mix(self, ai: np.ndarray):
        self.train_probs = self.clean_share * self.probs + (1 - self.clean_share) * ai / ai.sum()

    def sample(self, replicates, n, rng):
        return draw_categories(np.broadcast_to(self.train_probs, (replicates, len(self.train_probs))), n, rng)


Share = Annotated[float, Field(ge=0.0, le=1.0)]


@SOURCES.register("tail-cut", provides=("probs",))
class TailCut(_Transformed):
    """AI data cut at rank ``k``: q_AI ∝ p_i for the ``k`` most probable types, 0 beyond; ``clean_share`` π of the
    draws come from the clean p. A memoriser trained on T draws has test error Σ p_i (1 − q_i)^T, which floors at
    Σ_{i>k} p_i when π = 0.

    >>> s = TailCut(source={"kind": "zipf", "exponent": 2.0, "types": 1000}, k=10)
    >>> bool(s.train_probs[10:].sum() == 0), round(float(s.probs[10:].sum()), 4)
    (True, 0.0573)
    """

    def __init__(
        self,
        source: dict[str, Any] = {"kind": "zipf"},  # noqa: B006
        k: Annotated[int, Field(ge=1)] = 100,
        clean_share: Share = 0.0,
    ):
        p = self._wrap(source, clean_share)
        self.source, self.k = source, k
        top = np.argsort(-p, kind="stable")[:k]
        ai = np.zeros_like(p)
        ai[top] = p[top]
        self._mix(ai)


@SOURCES.register("tail-narrow", provides=("probs",))
class TailNarrow(_Transformed):
    """AI data sampled at ``temperature`` T: q_AI ∝ p^(1/T) (T < 1 thins the tail); ``clean_share`` π clean.

    >>> s = TailNarrow(source={"kind": "zipf", "exponent": 2.0, "types": 100}, temperature=0.5)
    >>> bool(s.train_probs[0] > s.probs[0])
    True
    """

    def __init__(
        self,
        source: dict[str, Any] = {"kind": "zipf"},  # noqa: B006
        temperature: Annotated[float, Field(gt=0)] = 0.8,
        clean_share: Share = 0.0,
    ):
        p = self._wrap(source, clean_share)
        self.source, self.temperature = source, temperature
        with np.errstate(divide="ignore"):
            logits = np.log(p) / temperature
        self._mix(np.exp(logits - logits.max()))
