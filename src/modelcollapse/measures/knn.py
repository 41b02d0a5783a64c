"""k-nearest-neighbour measures: squared pairwise distances, k-NN radii, and precision, recall, density and coverage
(PRDC) of a fake set against a real one.

Precision and recall are Kynkäänniemi et al. (2019); density and coverage Naeem et al. (2020). The real (fake)
manifold is the union of balls around each real (fake) record with radius its distance to its k-th nearest other real
(fake) record. The radii depend on the set size, so callers compare sets of equal size.
"""

from __future__ import annotations

import numpy as np

PAIR_BUDGET = 8_000_000  # distances held at once by prdc: replicates are processed in blocks of about this many pairs


def pairwise_sq(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances ``(R, n, m)`` between records ``a`` ``(R, n, d)`` and ``b`` ``(R, m, d)``:
    ‖a‖² + ‖b‖² − 2 a·b (one matrix product per replicate), clipped at 0 against rounding. ``b_sq``: ‖b‖² ``(R, m)``
    where the caller already has it (one who passes blocks of ``a`` against the same ``b``); the same values.

    >>> pairwise_sq(np.array([[[0.0, 0.0], [3.0, 4.0]]]), np.array([[[0.0, 0.0]]])).tolist()
    [[[0.0], [25.0]]]
    """
    b_sq = (b**2).sum(-1) if b_sq is None else b_sq
    d = (a**2).sum(-1)[:, :, None] + b_sq[:, None, :] - 2 * (a @ np.swapaxes(b, -1, -2))
    return np.clip(d, 0, None)


def knn_radius_sq(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each record of ``x`` ``(R, n, d)`` to its k-th nearest other record, ``(R, n)``
    (n > k)."""
    return np.partition(pairwise_sq(x, x), k, axis=-1)[..., k]  # index 0 is the record itself (distance 0)


def prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """k-NN precision, recall, density and coverage of ``fake`` ``(R, m, d)`` against ``real`` ``(R, n, d)``, each
    ``(R,)``:

    * ``precision``: the share of fake records inside the real manifold, in [0, 1] (quality);
    * ``recall``: the share of real records inside the fake manifold, in [0, 1] (diversity);
    * ``density``: the mean over fake records of the number of real balls holding it, divided by k (1 when the two
      match; unbounded above);
    * ``coverage``: the share of real records whose ball holds at least one fake record, in [0, 1].

    Replicates are processed in blocks of about 8 million distances (memory only: the values do not depend on it).

    >>> real = np.arange(10.0).reshape(1, 10, 1)
    >>> {name: float(v[0]) for name, v in prdc(real, real + 100.0, k=2).items()}
    {'precision': 0.0, 'recall': 0.0, 'density': 0.0, 'coverage': 0.0}
    """
    n, m = real.shape[1], fake.shape[1]
    out = {name: np.empty(len(real)) for name in ("precision", "recall", "density", "coverage")}
    block = max(1, PAIR_BUDGET // (n * n + m * m + n * m))
    for s in range(0, len(real), block):
        r, f = real[s : s + block], fake[s : s + block]
        real_r, fake_r = knn_radius_sq(r, k), knn_radius_sq(f, k)
        d = pairwise_sq(f, r)  # (R, m fake, n real)
        in_real = d <= real_r[:, None, :]  # fake i inside real j's ball
        out["precision"][s : s + block] = in_real.any(-1).mean(-1)
        out["recall"][s : s + block] = (d <= fake_r[:, :, None]).any(1).mean(-1)
        out["density"][s : s + block] = in_real.sum(-1).mean(-1) / k
        out["coverage"][s : s + block] = in_real.any(1).mean(-1)
    return out
