"""Sample-quality metrics: k-NN precision and recall, and the Fréchet distance.

For every continuous family, on raw features (records ``(d,)`` floats, flattened); for image sources with class
labels, on a small classifier's features instead (``metrics/images.py``: an FID-like instrument). Samples are the
generation's synthetic records, compared with the held-out real records. Precision and recall (Kynkäänniemi et al.
2019, k = 3) use the same number of records on each side, ``min(m, h, 1000)`` (the first ones: both sides are i.i.d.
draws), because the k-NN radii depend on the set size and unequal sets would bias one side; at most 1000 keeps the
pairwise distances cheap.
"""

from __future__ import annotations

import numpy as np

from ...measures import frechet_sq, prdc
from .base import METRICS, Context

K = 3
MAX_POINTS = 1000


def embedded(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic ``(R, m, f)`` and real ``(h, f)`` features: raw records flattened, or classifier features for
    labelled image sources."""
    from .images import embed, has_classifier

    if has_classifier(ctx.source):
        return embed(ctx)
    x = np.asarray(ctx.samples, float).reshape(*ctx.samples.shape[:2], -1)
    return x, np.asarray(ctx.heldout, float).reshape(len(ctx.heldout), -1)


def paired(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic ``(R, n, f)`` and real ``(R, n, f)`` features, ``n = min(m, h, 1000)``."""
    x, y = embedded(ctx)
    n = min(x.shape[1], len(y), MAX_POINTS)
    return x[:, :n], np.broadcast_to(y[:n], (len(x), n, y.shape[1]))


def knn_measures(ctx: Context) -> dict[str, np.ndarray]:
    """:func:`~modelcollapse.measures.prdc` (k = 3) of the synthetic against the real features of :func:`paired`,
    computed once per generation for both ``precision`` and ``recall``."""
    if "prdc" not in ctx.shared:
        x, y = paired(ctx)
        ctx.shared["prdc"] = prdc(y, x, K)
    return ctx.shared["prdc"]


@METRICS.register("precision")
def precision(ctx: Context) -> np.ndarray:
    """k-NN precision (k = 3): the share of synthetic records inside the real records' k-NN manifold, in [0, 1].
    Quality: it stays high when samples are concentrated in high-density real regions."""
    return knn_measures(ctx)["precision"]


@METRICS.register("recall", headline=7)
def recall(ctx: Context) -> np.ndarray:
    """k-NN recall (k = 3): the share of held-out real records inside the synthetic records' k-NN manifold, in
    [0, 1]. Diversity: it falls when the model stops covering parts of the real distribution."""
    return knn_measures(ctx)["recall"]


@METRICS.register("frechet")
def frechet(ctx: Context) -> np.ndarray:
    """Squared Fréchet distance (FID's formula) between all the generation's samples and all held-out real records,
    on raw features (squared data units) or classifier features for image sources. It is squared."""
    x, y = embedded(ctx)
    return frechet_sq(x, np.broadcast_to(y, (len(x), *y.shape)))
