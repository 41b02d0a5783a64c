"""Two-class Gaussian data: the classification setting of Feng et al. (2025) on verifying synthetic labels."""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError
from .base import SOURCES, Source


@SOURCES.register("classification", provides=("mu",))
class ClassificationSource(Source):
    """x ~ N(y·μ, I_d) with y = ±1 equiprobable, μ = ``separation``·e₁ (‖μ‖ = ``separation``; the direction does
    not matter, the noise being isotropic). Records are rows of length d + 2: ``(x (d), label, truth)``, where
    ``label`` is the label a learner trains on and ``truth`` the class the record was drawn from. They are equal for
    real records; a synthetic labeller (``mean-difference``) rewrites ``label`` and keeps ``truth``, so a verifier
    can tell a correct label from a wrong one. The Bayes classifier sign(μ·x) has accuracy Φ(‖μ‖).

        >>> import numpy as np
        >>> s = ClassificationSource(dim=2, separation=1.0)
        >>> x = s.sample(3, 4, np.random.default_rng(0))
        >>> x.shape, bool((x[..., 2] == x[..., 3]).all()), s.mu.tolist()
        ((3, 4, 4), True, [1.0, 0.0])
    """

    def __init__(self, dim: int = 2, separation: float = 1.0):
        if dim < 1:
            raise ConfigError(f"data.dim must be an integer >= 1; got {dim!r}.")
        if not separation > 0:
            raise ConfigError(f"data.separation must be > 0 (‖μ‖); got {separation!r}.")
        self.dim, self.separation = dim, separation
        self.mu = np.zeros(dim)
        self.mu[0] = separation

    def draw(self, replicates: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Inputs ``(R, n, d)`` and their true classes ``(R, n)`` in {−1, +1}."""
        y = np.where(rng.random((replicates, n)) < 0.5, -1.0, 1.0)
        return y[..., None] * self.mu + rng.standard_normal((replicates, n, self.dim)), y

    def sample(self, replicates, n, rng):
        x, y = self.draw(replicates, n, rng)
        return np.concatenate([x, y[..., None], y[..., None]], axis=-1)
