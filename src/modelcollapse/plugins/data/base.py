"""Real data sources (``data.kind``).

A source is the real distribution the loop starts from and measures against. Records are arrays along axis 1 of a
``(replicates, n, *event_shape)`` array: ``(R, n, d)`` floats for continuous data, ``(R, n)`` ints for categories.

Every source has ``sample(replicates, n, rng)`` (fresh draws; a fixed pool raises) and ``pool(replicates, n, rng)``
(generation 0's real data: fresh draws, or the fixed pool broadcast to every replicate). Sources with an exact density
also offer ``moments()``, ``log_prob(x)`` and, for categories, ``probs``, so metrics can be closed-form.

Adding a source is one class plus its registration; its ``__init__`` keyword parameters are the config keys under
``data``, validated from the signature::

    >>> import numpy as np
    >>> from modelcollapse.plugins.data import SOURCES, Source
    >>> @SOURCES.register("uniform", provides=())
    ... class Uniform(Source):
    ...     # U(0, ``width``) records ``(R, n, 1)``.
    ...     dim = 1
    ...     def __init__(self, *, width: float = 1.0):
    ...         self.width = width
    ...     def sample(self, replicates, n, rng):
    ...         return rng.uniform(0, self.width, (replicates, n, 1))
    >>> SOURCES.build({"kind": "uniform", "width": 2.0}).pool(3, 5, np.random.default_rng(0)).shape
    (3, 5, 1)
    >>> SOURCES.unregister("uniform")
"""

from __future__ import annotations

import numpy as np

from ...registry import Registry

SOURCES: Registry = Registry("data.kind", traits={"can_draw": True, "provides": ()})
"""Sources by name. Traits: ``can_draw`` (False for a fixed pool: ``sample`` raises, so regimes that draw fresh real
data refuse it); ``provides``: the attributes and methods beyond ``sample``/``pool`` that metrics may ask of it
(``moments``, ``log_prob``, ``quantile``, ``probs``, ...; a metric's ``source_needs`` are checked against it)."""


class Source:
    """Base for data sources: a fresh-draw distribution by default (a fixed pool registers ``can_draw=False``)."""

    def sample(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def pool(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Generation 0's real records, shape ``(replicates, n, *event_shape)``."""
        return self.sample(replicates, n, rng)
