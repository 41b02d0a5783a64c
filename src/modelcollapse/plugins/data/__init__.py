"""Real data sources (``data.kind``): the registry and the built-in plug-ins.

Floor: plugins. May import ground, measures, rundir and config; never the engine or anything above it.

See :mod:`.base` for the protocol; each built-in plug-in registers itself in its own module.
"""

from . import categorical, classification, files, gaussian, images, poisson, regression, tails, text  # noqa: E402,F401  (registers the built-in sources)
from .base import SOURCES, Source  # noqa: F401

__all__ = ["SOURCES", "Source"]
