"""Memorisation: the share of generated records that copy a training record (Shi et al., NeurIPS 2025: under
self-consuming training a diffusion model shifts from generalising to reproducing its training set).

A generated record is *memorised* when its squared distance to the nearest training record is at most τ, the
``quantile``-quantile of the training records' squared distances to their nearest *other* training record: it sits
closer to the training set than all but that share of training records sit to each other. The quantile is an order
statistic (numpy's ``inverted_cdf``: the ⌈q·n⌉-th smallest, the smallest at q = 0), so it is the same on distances and
on squared distances. With the default q = 0.05, a model that generalises (its records as far from the training set
as fresh draws from the training distribution) scores about 0.05; one that returns its training records scores 1.
"""

from __future__ import annotations

import numpy as np

from .knn import PAIR_BUDGET, pairwise_sq

QUANTILE = 0.05  # the default q: the 5% closest training pairs set the bar


def nearest_sq(a: np.ndarray, b: np.ndarray, *, exclude_self: bool = False) -> np.ndarray:
    """Squared Euclidean distance ``(R, n)`` from each record of ``a`` ``(R, n, d)`` to its nearest record of ``b``
    ``(R, m, d)``; ``exclude_self`` (``a`` is ``b``): to its nearest *other* record. Rows are processed in blocks of
    about 8 million distances, a function of the shapes alone (for memory: another block size can change the last
    bits of a distance, through the matrix product's kernel).

    >>> x = np.array([[[0.0], [1.0], [3.0]]])
    >>> nearest_sq(x, x, exclude_self=True).tolist()
    [[1.0, 1.0, 4.0]]
    """
    r, n = a.shape[:2]
    out = np.empty((r, n))
    block = max(1, PAIR_BUDGET // (r * b.shape[1]))
    b_sq = (b**2).sum(-1)  # once, not once a block (MNIST: 50,000 records of 784 pixels)
    for s in range(0, n, block):
        d = pairwise_sq(a[:, s : s + block], b, b_sq)  # (R, block, m)
        if exclude_self:
            rows = np.arange(d.shape[1])
            d[:, rows, s + rows] = np.inf
        out[:, s : s + block] = d.min(-1)
    return out


def memorisation_share(samples: np.ndarray, train: np.ndarray, quantile: float = QUANTILE) -> np.ndarray:
    """The share ``(R,)`` in [0, 1] of ``samples`` ``(R, m, d)`` memorised from ``train`` ``(R, n, d)`` (n ≥ 2; see
    the module docstring): a sample counts when its squared distance to the nearest training record is at most the
    ``quantile``-quantile (in [0, 1]) of the training records' squared nearest-other-record distances. Records are
    compared as flat vectors in their own units (pixels for images). Unitless, not squared.

    >>> train = np.array([[[0.0], [1.0], [3.0], [6.0]]])
    >>> memorisation_share(np.array([[[0.0], [3.0], [4.5], [10.0]]]), train).tolist()
    [0.5]
    """
    if not 0 <= quantile <= 1:
        raise ValueError(f"quantile must be in [0, 1]; got {quantile!r}")
    a, b = (np.asarray(v, np.float64).reshape(*np.shape(v)[:2], -1) for v in (samples, train))
    if b.shape[1] < 2:
        raise ValueError(f"train must hold at least 2 records per replicate; got shape {np.shape(train)}")
    bar = np.quantile(nearest_sq(b, b, exclude_self=True), quantile, axis=1, method="inverted_cdf")  # (R,)
    return (nearest_sq(a, b) <= bar[:, None]).mean(-1)
