"""The linear-regression setting of Gerstgrasser et al. and Dohmatob et al."""

from __future__ import annotations

import numpy as np

from .base import SOURCES, Source


@SOURCES.register("regression")
class RegressionSource(Source):
    """Records ``(x, y)`` as rows of length ``dim + 1``: x ~ N(0, I_d), y = x·w* + noise·ε.

    ``w*`` is drawn once from N(0, I_d) with ``weights_seed``. Test MSE against the noiseless truth is
    E_x[(x·ŵ − x·w*)²] = ‖ŵ − w*‖², since x is isotropic.
    """

    def __init__(self, dim: int = 10, noise: float = 1.0, weights_seed: int = 0):
        self.dim, self.noise, self.weights_seed = dim, noise, weights_seed
        self.weights_ = np.random.default_rng(weights_seed).standard_normal(dim)

    def sample(self, replicates, n, rng):
        x = rng.standard_normal((replicates, n, self.dim))
        y = x @ self.weights_ + self.noise * rng.standard_normal((replicates, n))
        return np.concatenate([x, y[..., None]], axis=-1)
