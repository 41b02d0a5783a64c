"""Measures of discrete distributions: Shannon entropy, the entropy of a set of labels, heterozygosity, total variation,
missing mass and mode coverage."""

from __future__ import annotations

import numpy as np
from scipy import special


def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy −Σ p log p over the last axis of probabilities ``p`` ``(..., K)``, in nats (0 log 0 = 0);
    ``(...)``.

    >>> float(entropy(np.full(4, 0.25))) == float(np.log(4))
    True
    """
    return special.entr(p).sum(-1)


def label_entropy(labels: np.ndarray) -> np.ndarray:
    """Entropy in nats of the histogram of integer labels ``labels`` ``(R, n)`` (non-negative), per row: the
    :func:`entropy` of the observed labels' frequencies; ``(R,)``. log C for C equally frequent labels, 0 for one.

    >>> label_entropy(np.array([[0, 1, 2, 3], [5, 5, 5, 5]])).tolist() == [float(np.log(4)), 0.0]
    True
    """
    out = []
    for row in np.asarray(labels):
        p = np.bincount(row) / len(row)
        h = float(entropy(p[p > 0]))  # the observed labels only: the sum runs over them alone
        # One label: −0.0, the sign −Σ p log p has and the stored class_entropy values carry (Σ −p log p gives +0.0).
        out.append(-0.0 if h == 0 else h)
    return np.asarray(out)


def missing_mass(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Σᵢ pᵢ · 1[qᵢ = 0] over the last axis: the mass of distribution ``p`` ``(..., K)`` on the categories to which
    ``q`` ``(..., K)`` (probabilities or counts) gives nothing; ``(...)``, in [0, 1] for a probability vector ``p``.

    >>> float(missing_mass(np.array([0.5, 0.3, 0.2]), np.array([4, 0, 0])))
    0.5
    """
    return ((q == 0) * p).sum(-1)


def heterozygosity(p: np.ndarray) -> np.ndarray:
    """1 − Σ p², over the last axis of probabilities ``p`` ``(..., K)``: the chance two independent draws differ
    (Gini-Simpson); ``(...)`` in [0, 1).

    >>> float(heterozygosity(np.array([0.5, 0.5])))
    0.5
    """
    return 1 - (p**2).sum(-1)


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Total-variation distance ½ Σ |p − q| over the last axis of probabilities ``p`` and ``q`` ``(..., K)``
    (they broadcast); ``(...)`` in [0, 1].

    >>> float(total_variation(np.array([1.0, 0.0]), np.array([0.25, 0.75])))
    0.75
    """
    return 0.5 * np.abs(p - q).sum(-1)


def mode_coverage(labels: np.ndarray, weights: np.ndarray, threshold: float = 0.25) -> np.ndarray:
    """The share of the K modes that receive at least ``threshold`` times the records their weight expects: mode k is
    covered when (records labelled k) / n >= ``threshold`` · ``weights[k]``. ``labels`` ``(R, n)`` ints in 0..K-1 (a
    record that belongs to no mode carries any other value, e.g. -1 or K: it counts in n, for no mode); ``weights``
    ``(K,)`` the modes' probabilities (they are normalised). Returns ``(R,)`` in [0, 1]: 1/K when every record lies in
    one mode of K equally weighted ones, 1 when they are spread as the weights say.

    >>> mode_coverage(np.array([[0, 0, 0, 0], [0, 1, 2, 3], [0, 1, -1, -1]]), np.full(4, 0.25)).tolist()
    [0.25, 1.0, 0.5]
    """
    w = np.asarray(weights, float) / np.sum(weights)
    labels = np.asarray(labels)
    counts = (labels[..., None] == np.arange(len(w))).sum(-2)  # (R, K)
    return (counts / labels.shape[-1] >= threshold * w).mean(-1)
