"""A mean-difference linear classifier whose synthetic data are labelled records: Feng et al.'s (2025) setting."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ...errors import ConfigError
from .base import MODELS, Family


@MODELS.register("mean-difference", fitted=("w_", "degenerate_"), default_metrics=("accuracy",))
class MeanDifference(Family):
    """w = mean of y·x over the training records, per replicate; predicts sign(w·x).

    Records are ``(x (d), label, truth)`` rows (the ``classification`` source); ``fit`` reads x and ``label`` only.
    ``sample(n, rng)`` draws n fresh inputs with their true classes from the source (bound by ``bind``) and labels
    them: ``labeller: fixed`` (Feng et al.'s setting) gives the true class, ``previous`` the fitted classifier's
    prediction sign(w·x) (ties: +1); either label is then flipped with probability ``flip`` (p). ``truth`` keeps the
    true class, for a verifier (the ``label-verifier`` filter). Fitted: ``w_`` ``(R, d)``; ``degenerate_`` ``(R,)``
    where w = 0 (no direction).

        >>> import numpy as np
        >>> from modelcollapse.plugins.data import SOURCES
        >>> src = SOURCES.build({"kind": "classification", "dim": 2})
        >>> m = MODELS.build({"kind": "mean-difference", "flip": 0.25}).bind(src, None)
        >>> m = m.fit(src.sample(2, 20_000, np.random.default_rng(0)), rng=None)
        >>> bool(np.allclose(m.w_, src.mu, atol=0.05))          # -> μ on clean labels
        True
        >>> x = m.sample(50_000, rng=np.random.default_rng(1))
        >>> x.shape, round(float((x[..., 2] != x[..., 3]).mean()), 2)   # a quarter of the labels flipped
        ((2, 50000, 4), 0.25)
    """

    def __init__(self, flip: float = 0.0, labeller: Literal["fixed", "previous"] = "fixed"):
        if not 0 <= flip <= 1:
            raise ConfigError(f"model.flip must be in [0, 1] (a label-flip probability); got {flip!r}.")
        self.flip, self.labeller = flip, labeller

    def bind(self, source, real):
        if not hasattr(source, "draw"):
            raise ConfigError(
                f"model.kind 'mean-difference' needs data.kind 'classification'; got {type(source).__name__}."
            )
        self._source = source
        return self

    def fit(self, x: np.ndarray, *, rng: np.random.Generator):
        d = x.shape[-1] - 2
        self.w_ = np.einsum("rn,rni->ri", x[..., d], x[..., :d]) / x.shape[1]
        self.degenerate_ = ~(np.abs(self.w_) > 0).any(-1)
        return self

    def sample(self, n: int, *, rng: np.random.Generator) -> np.ndarray:
        """``(R, n, d + 2)``: fresh inputs, their label (per ``labeller``, flipped w.p. ``flip``) and true class."""
        self.check_fitted("w_")
        x, truth = self._source.draw(len(self.w_), n, rng)
        label = truth if self.labeller == "fixed" else np.where(np.einsum("rni,ri->rn", x, self.w_) >= 0, 1.0, -1.0)
        label = np.where(rng.random(label.shape) < self.flip, -label, label)
        return np.concatenate([x, label[..., None], truth[..., None]], axis=-1)
