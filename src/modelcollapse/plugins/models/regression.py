"""Linear regression with a fixed design: the Gerstgrasser et al. / Dohmatob et al. collapse setting."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ...errors import ConfigError
from .base import MODELS, Family


@MODELS.register(
    "linear-regression",
    fitted=("weights_", "generator_", "degenerate_"),
    default_metrics=("test_mse",),
    provides=("fit_weighted",),
)
class LinearRegression(Family):
    """Least squares (ordinary, or ridge with ``ridge`` λ > 0) per replicate on records ``(x, y)`` (rows of length
    d + 1).

    ``design: fixed`` (Gerstgrasser et al.) samples on the real design X (generation 0's real inputs, bound once per
    run) with regenerated labels; ``design: fresh`` (Dohmatob, Feng, Kempe, "Model Collapse Demystified") draws fresh
    inputs x ~ N(0, I_d) each time, as the regression source does. Labels: y = x·ŵ + σ ε, σ = ``noise`` (default: the
    source's noise level).

    Ridge: ``ridge_scaling: per-sample`` (Demystified's convention) solves ŵ = (XᵀX/T + λI)⁻¹ Xᵀy/T on T records;
    ``sum`` solves (XᵀX + λI)⁻¹ Xᵀy, so λ_sum = T·λ_per-sample. ``ridge_applies: all`` penalises every fit;
    ``downstream`` keeps the generator chain ordinary least squares (``generator_``, what ``sample`` labels with) and
    fits the ridge as the downstream model evaluated each generation (``weights_``), on the same training records:
    the downstream model of generation g is then trained on labels from g OLS fits, Demystified's setting with n = g.
    Fitted: ``weights_`` ``(R, d)`` (the evaluated model), ``generator_`` ``(R, d)`` (the sampler's).

        >>> import numpy as np
        >>> from modelcollapse.plugins.data import SOURCES
        >>> src = SOURCES.build({"kind": "regression", "dim": 3})
        >>> real = src.pool(2, 50, np.random.default_rng(0))
        >>> m = MODELS.build({"kind": "linear-regression", "ridge": 1.0, "ridge_applies": "downstream"}).bind(src, real)
        >>> m = m.fit(real, rng=np.random.default_rng(1))
        >>> bool((np.linalg.norm(m.weights_, axis=1) < np.linalg.norm(m.generator_, axis=1)).all())  # shrunk
        True
    """

    def __init__(
        self,
        noise: float | None = None,
        design: Literal["fixed", "fresh"] = "fixed",
        ridge: float = 0.0,
        ridge_scaling: Literal["per-sample", "sum"] = "per-sample",
        ridge_applies: Literal["all", "downstream"] = "all",
    ):
        if ridge < 0:
            raise ConfigError(f"model.ridge must be >= 0; got {ridge!r}.")
        self.noise, self.design, self.ridge = noise, design, ridge
        self.ridge_scaling, self.ridge_applies = ridge_scaling, ridge_applies

    def bind(self, source, real):
        self._design = np.asarray(real[..., :-1])
        self._noise = self.noise if self.noise is not None else getattr(source, "noise", 1.0)
        return self

    @staticmethod
    def normal_equations(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """XᵀX ``(R, d, d)`` and Xᵀy ``(R, d)`` of records ``x`` ``(R, n, d + 1)``."""
        design, y = x[..., :-1], x[..., -1]
        return np.einsum("rni,rnj->rij", design, design), np.einsum("rni,rn->ri", design, y)

    def _solve(self, gram: np.ndarray, moment: np.ndarray, records: int):
        """Solve on the normal equations of ``records`` training records (T, for the per-sample ridge scaling)."""
        solve = lambda a: np.linalg.solve(a, moment[..., None])[..., 0]  # noqa: E731
        penalty = self.ridge * (records if self.ridge_scaling == "per-sample" else 1.0) * np.eye(gram.shape[-1])
        ols = solve(gram) if self.ridge == 0 or self.ridge_applies == "downstream" else None
        ridge = solve(gram + penalty) if self.ridge > 0 else ols
        self.weights_, self.generator_ = ridge, ols if self.ridge_applies == "downstream" else ridge
        self.degenerate_ = np.zeros(len(gram), bool)
        return self

    def fit(self, x: np.ndarray, *, rng: np.random.Generator):
        return self._solve(*self.normal_equations(x), x.shape[1])

    def fit_weighted(self, x: np.ndarray, weight: np.ndarray, *, rng: np.random.Generator):
        """Weighted least squares (``loop.weights``): the normal equations n·Σ wᵢ xᵢxᵢᵀ and n·Σ wᵢ xᵢyᵢ of the n
        records, so equal weights give the plain fit and the ridge keeps its scaling. ``weight`` ``(R, n)`` sums to
        1."""
        design, y, n = x[..., :-1], x[..., -1], x.shape[1]
        gram = n * np.einsum("rn,rni,rnj->rij", weight, design, design)
        return self._solve(gram, n * np.einsum("rn,rni,rn->ri", weight, design, y), n)

    def fit_chunks(self, chunks, *, rng: np.random.Generator):
        """Least squares on the union of chunks from per-chunk normal equations, cached (the accumulate pool)."""
        for c in chunks:
            if "normal_equations" not in c.cache:
                c.cache["normal_equations"] = self.normal_equations(c.x)
        return self._solve(
            sum(c.cache["normal_equations"][0] for c in chunks),
            sum(c.cache["normal_equations"][1] for c in chunks),
            sum(c.x.shape[1] for c in chunks),
        )

    def sample(self, n: int, *, rng: np.random.Generator) -> np.ndarray:
        """``(R, n, d + 1)``: the fixed design's first n rows (cycled if n exceeds it), or n fresh isotropic inputs,
        labelled by ``generator_`` plus noise."""
        self.check_fitted("weights_")
        R, d = self.generator_.shape
        if self.design == "fresh":
            design = rng.standard_normal((R, n, d))
        else:
            design = self._design[:, np.arange(n) % self._design.shape[1]]
            design = np.broadcast_to(design, (R, *design.shape[1:]))
        y = np.einsum("rni,ri->rn", design, self.generator_) + self._noise * rng.standard_normal(design.shape[:2])
        return np.concatenate([design, y[..., None]], axis=-1)
