"""The Vendi score (Friedman and Dieng 2023): a number of "effective distinct records" from a similarity kernel."""

from __future__ import annotations

import numpy as np

from .discrete import entropy
from .knn import pairwise_sq

EIGEN_FLOOR = 1e-12  # eigenvalues of K/n at or below this are rounding noise, left out of the entropy


def vendi(x: np.ndarray, bandwidth: float | None = None) -> np.ndarray:
    """The Vendi score exp(H(λ)) of records ``x`` ``(R, n, f)``, per replicate, ``(R,)`` in [1, n]: λ the
    eigenvalues of K/n (those above 1e-12, over the sum of all, clipped at 0), H the Shannon entropy in nats. K is the
    cosine kernel x·x' for unit-norm records (``bandwidth`` None) or the Gaussian kernel exp(−‖x − x'‖² / (2 h²))
    with bandwidth h. n identical records score 1; n orthogonal unit records score n.

    >>> float(vendi(np.eye(5)[None])[0].round(9)), float(vendi(np.ones((1, 5, 3)), bandwidth=1.0)[0].round(9))
    (5.0, 1.0)
    """
    n = x.shape[1]
    if bandwidth is None:  # K = X Xᵀ shares its non-zero eigenvalues with Xᵀ X (f × f): cheaper when f < n
        xt = np.swapaxes(x, -1, -2)
        gram = (xt @ x if x.shape[2] < n else x @ xt) / n
    else:
        gram = np.exp(-pairwise_sq(x, x) / (2 * bandwidth**2)) / n
    lam = np.clip(np.linalg.eigvalsh(gram), 0, None)
    kept = np.where(lam > EIGEN_FLOOR, lam, 0.0) / lam.sum(-1, keepdims=True)
    return np.exp(entropy(kept))
