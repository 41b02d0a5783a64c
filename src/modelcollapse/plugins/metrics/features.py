"""Sample-quality metrics: k-NN precision and recall, and the Fréchet distance.

For every continuous family, on raw features (records ``(d,)`` floats, flattened); for image sources with class
labels, on a small classifier's features instead (``metrics/images.py``: an FID-like instrument). Samples are the generation's synthetic records, compared with
the held-out real records. Precision and recall (Kynkäänniemi et al. 2019, k = 3) use the same number of records on
each side, ``min(m, h, 1000)`` (the first ones: both sides are i.i.d. draws), because the k-NN radii depend on the set
size and unequal sets would bias one side; at most 1000 keeps the pairwise distances cheap.
"""

from __future__ import annotations

import numpy as np

from .base import METRICS, Context
from .moments import gaussian_w2_sq

K = 3
MAX_POINTS = 1000
PAIR_BUDGET = 8_000_000  # distances held at once: replicates are processed in blocks of this many pairs


def pairwise_sq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``(R, n, m)`` between ``a`` ``(R, n, d)`` and ``b`` ``(R, m, d)``."""
    d = (a**2).sum(-1)[:, :, None] + (b**2).sum(-1)[:, None, :] - 2 * np.einsum("rnd,rmd->rnm", a, b)
    return np.clip(d, 0, None)


def knn_radius_sq(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each record of ``x`` ``(R, n, d)`` to its k-th nearest other record, ``(R, n)``."""
    d = pairwise_sq(x, x)
    return np.partition(d, k, axis=-1)[..., k]  # index 0 is the record itself (distance 0)


def coverage(query: np.ndarray, support: np.ndarray, k: int) -> np.ndarray:
    """Share of ``query`` ``(R, n, d)`` records inside the k-NN manifold of ``support`` ``(R, m, d)``: the union of
    balls around each support record with radius its distance to its k-th nearest support neighbour. ``(R,)``."""
    out = np.empty(len(query))
    block = max(1, PAIR_BUDGET // (support.shape[1] * max(support.shape[1], query.shape[1])))
    for s in range(0, len(query), block):
        q, sup = query[s:s + block], support[s:s + block]
        radius = knn_radius_sq(sup, k)
        out[s:s + block] = (pairwise_sq(q, sup) <= radius[:, None, :]).any(-1).mean(-1)
    return out


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


@METRICS.register("precision")
def precision(ctx: Context) -> np.ndarray:
    """k-NN precision (k = 3): the share of synthetic records inside the real records' k-NN manifold, in [0, 1].
    Quality: it stays high when samples are concentrated in high-density real regions."""
    x, y = paired(ctx)
    return coverage(x, y, K)


@METRICS.register("recall", headline=7)
def recall(ctx: Context) -> np.ndarray:
    """k-NN recall (k = 3): the share of held-out real records inside the synthetic records' k-NN manifold, in
    [0, 1]. Diversity: it falls when the model stops covering parts of the real distribution."""
    x, y = paired(ctx)
    return coverage(y, x, K)


def frechet_sq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared Fréchet distance between Gaussians fitted (mean, covariance with ddof 1) to ``x`` ``(R, n, d)`` and
    ``y`` ``(R, m, d)``: ‖μx − μy‖² + tr(Σx + Σy − 2 (Σy^½ Σx Σy^½)^½), ``(R,)``."""

    def fit(a):
        mu = a.mean(1)
        c = a - mu[:, None, :]
        return mu, np.einsum("rni,rnj->rij", c, c) / (a.shape[1] - 1)

    return gaussian_w2_sq(*fit(x), *fit(y))


@METRICS.register("frechet")
def frechet(ctx: Context) -> np.ndarray:
    """Squared Fréchet distance (FID's formula) between all the generation's samples and all held-out real records,
    on raw features (squared data units) or classifier features for image sources. It is squared."""
    x, y = embedded(ctx)
    return frechet_sq(x, np.broadcast_to(y, (len(x), *y.shape)))
