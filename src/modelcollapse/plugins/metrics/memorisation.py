"""Memorisation share (Shi et al., NeurIPS 2025): how many of the generation's samples copy its training set.

The training set is everything the generation was fitted to (``ctx.train``: real and synthetic records alike), so
the measure follows Shi et al.'s effect inside the loop: a fully synthetic chain whose model returns its own training
records scores near 1, a model that generalises near the quantile (0.05). See
:func:`~modelcollapse.measures.memorisation_share` for the exact definition.
"""

from __future__ import annotations

import numpy as np

from ...measures import memorisation_share as share
from ...measures.memorisation import QUANTILE
from .base import METRICS, Context


@METRICS.register("memorisation_share")
def memorisation_share(ctx: Context) -> np.ndarray:
    """Share of the generation's samples memorised from its training set, in [0, 1] (unitless): a sample counts when
    its squared Euclidean distance (records flattened, in their own units: pixels for images) to the nearest training
    record is at most the 5% quantile (``measures.memorisation.QUANTILE``, the ⌈0.05·n⌉-th smallest) of the n
    training records' squared distances to their nearest other training record. About 0.05 when the samples are as
    novel as fresh draws, 1 when every sample is a training record."""
    train = np.concatenate([c.x for c in ctx.train], axis=1)
    return share(ctx.samples, train, QUANTILE)
