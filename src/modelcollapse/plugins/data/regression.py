"""The linear-regression setting of Gerstgrasser et al. and Dohmatob et al."""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError
from .base import SOURCES, Source


@SOURCES.register("regression", provides=("weights_",))
class RegressionSource(Source):
    """Records ``(x, y)`` as rows of length ``dim + 1``: x ~ N(0, I_d), y = x·w* + noise·ε.

    ``w*`` is drawn once from N(0, I_d) with ``weights_seed``, rescaled to ‖w*‖² = ``weights_sq_norm`` when that is
    set. Test MSE against the noiseless truth is E_x[(x·ŵ − x·w*)²] = ‖ŵ − w*‖², since x is isotropic.

    Strong collapse (Dohmatob et al. 2025's setting): with ``shift_fraction`` p > 0, each record's label comes instead
    from the shifted vector w* + Δ with probability p (independently per record), ‖Δ‖² = ``shift_sq_norm``, Δ drawn
    once from the same seed after w* (its direction does not matter: x is isotropic). The truth stays w*.

        >>> import numpy as np
        >>> s = SOURCES.build({"kind": "regression", "dim": 3, "weights_sq_norm": 1.0, "shift_fraction": 0.5})
        >>> round(float(s.weights_ @ s.weights_), 6), round(float(s.shift_ @ s.shift_), 6)
        (1.0, 1.0)
        >>> s.sample(2, 5, np.random.default_rng(0)).shape
        (2, 5, 4)
    """

    def __init__(
        self,
        dim: int = 10,
        noise: float = 1.0,
        weights_seed: int = 0,
        weights_sq_norm: float | None = None,
        shift_fraction: float = 0.0,
        shift_sq_norm: float = 1.0,
    ):
        if not 0 <= shift_fraction <= 1:
            raise ConfigError(f"data.shift_fraction must be in [0, 1]; got {shift_fraction!r}.")
        self.dim, self.noise, self.weights_seed = dim, noise, weights_seed
        self.shift_fraction, self.shift_sq_norm = shift_fraction, shift_sq_norm
        gen = np.random.default_rng(weights_seed)
        self.weights_ = gen.standard_normal(dim)
        if weights_sq_norm is not None:
            self.weights_ *= np.sqrt(weights_sq_norm / (self.weights_ @ self.weights_))
        delta = gen.standard_normal(dim)
        self.shift_ = delta * np.sqrt(shift_sq_norm / (delta @ delta))

    def sample(self, replicates, n, rng):
        x = rng.standard_normal((replicates, n, self.dim))
        y = x @ self.weights_ + self.noise * rng.standard_normal((replicates, n))
        if self.shift_fraction > 0:  # drawn only then, so the unshifted source's streams are unchanged
            y = y + (rng.random((replicates, n)) < self.shift_fraction) * (x @ self.shift_)
        return np.concatenate([x, y[..., None]], axis=-1)
