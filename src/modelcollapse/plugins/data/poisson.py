"""Poisson counts: the setting of Suresh et al. (2025) on how long a rare quantity survives repeated refitting."""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError
from .base import SOURCES, Source


@SOURCES.register("poisson", provides=("moments",))
class PoissonSource(Source):
    """Independent Poisson(``rate``) counts, one coordinate per rate (a scalar rate: d = 1). Records ``(d,)`` floats.

    >>> import numpy as np
    >>> PoissonSource(rate=[0.5, 2.0]).sample(3, 4, np.random.default_rng(0)).shape
    (3, 4, 2)
    """

    def __init__(self, rate: float | list[float] = 1.0):
        self.rate = rate
        self.rate_ = np.atleast_1d(np.asarray(rate, float))
        if self.rate_.ndim != 1 or np.any(self.rate_ < 0):
            raise ConfigError(f"data.rate must be a non-negative number or list of them; got {rate!r}.")
        self.dim = len(self.rate_)

    def sample(self, replicates, n, rng):
        return rng.poisson(self.rate_, (replicates, n, self.dim)).astype(float)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(d,)`` and covariance ``(d, d)``: a Poisson's variance is its rate."""
        return self.rate_.copy(), np.diag(self.rate_)
