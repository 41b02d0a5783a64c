"""Model families (``model.kind``): the generative models that are fitted, sampled and refitted: the registry and the
built-in plug-ins.

Floor: plugins. May import ground, measures, rundir and config; never the engine or anything above it.

See :mod:`.base` for the protocol; each built-in plug-in registers itself in its own module.
"""

from . import (  # noqa: E402,F401  (registers the built-in families)
    categorical,
    classifier,
    diffusion,
    gaussian,
    gaussian_mean,
    gaussian_sgd,
    gmm,
    kde,
    lm,
    poisson,
    regression,
    sklearn_family,
    vae,
)
from .base import MODELS, Family  # noqa: F401

__all__ = ["MODELS", "Family"]
