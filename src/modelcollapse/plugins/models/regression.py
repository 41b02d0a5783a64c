"""Linear regression with a fixed design: the Gerstgrasser et al. / Dohmatob et al. collapse setting."""

from __future__ import annotations

import numpy as np

from .base import MODELS, Family


@MODELS.register("linear-regression")
class LinearRegression(Family):
    """Ordinary least squares per replicate on records ``(x, y)`` (rows of length d + 1).

    Sampling keeps the real design X fixed (generation 0's real inputs, bound once per run) and regenerates the labels:
    y = X ŵ + σ ε, with σ = ``noise`` (default: the source's noise level).
    Fitted: ``weights_`` ``(R, d)``.
    """

    fitted = ("weights_", "degenerate_")
    default_metrics = ("test_mse",)

    def __init__(self, noise: float | None = None):
        self.noise = noise

    def bind(self, source, real):
        self._design = np.asarray(real[..., :-1])
        self._noise = self.noise if self.noise is not None else getattr(source, "noise", 1.0)
        return self

    @staticmethod
    def normal_equations(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """XᵀX ``(R, d, d)`` and Xᵀy ``(R, d)`` of records ``x`` ``(R, n, d + 1)``."""
        design, y = x[..., :-1], x[..., -1]
        return np.einsum("rni,rnj->rij", design, design), np.einsum("rni,rn->ri", design, y)

    def _solve(self, gram: np.ndarray, moment: np.ndarray):
        self.weights_ = np.linalg.solve(gram, moment[..., None])[..., 0]
        self.degenerate_ = np.zeros(len(gram), bool)
        return self

    def fit(self, x: np.ndarray, *, rng: np.random.Generator):
        return self._solve(*self.normal_equations(x))

    def fit_chunks(self, chunks, *, rng: np.random.Generator):
        """Least squares on the union of chunks from per-chunk normal equations, cached (the accumulate pool)."""
        for c in chunks:
            if "normal_equations" not in c.cache:
                c.cache["normal_equations"] = self.normal_equations(c.x)
        return self._solve(sum(c.cache["normal_equations"][0] for c in chunks), sum(c.cache["normal_equations"][1] for c in chunks))

    def sample(self, n: int, *, rng: np.random.Generator) -> np.ndarray:
        """``(R, n, d + 1)``: the fixed design's first n rows (cycled if n exceeds it) with fresh labels."""
        self.check_fitted("weights_")
        design = self._design[:, np.arange(n) % self._design.shape[1]]
        design = np.broadcast_to(design, (len(self.weights_), *design.shape[1:]))
        y = np.einsum("rni,ri->rn", design, self.weights_) + self._noise * rng.standard_normal(design.shape[:2])
        return np.concatenate([design, y[..., None]], axis=-1)
