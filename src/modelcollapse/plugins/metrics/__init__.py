"""Metrics: pure functions of one generation's :class:`Context`, each returning one value per replicate ``(R,)``:
the registry and the built-in plug-ins.

Floor: plugins. May import ground, measures, rundir and config; never the engine or anything above it.

See :mod:`.base` for the protocol; each built-in plug-in registers itself in its own module.
"""

from . import (  # noqa: E402,F401  (registers the built-in metrics)
    coverage,
    discrete,
    distances,
    divergence,
    features,
    images,
    memorisation,
    mixtures,
    moments,
    text,
)
from .base import METRICS, Context, measure, require  # noqa: F401

__all__ = ["METRICS", "Context", "measure", "require"]
