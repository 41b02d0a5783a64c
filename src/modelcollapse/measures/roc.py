"""The ROC curve of the rule "flag a score above the threshold" and its area (AUC), negatives against positives."""

from __future__ import annotations

import numpy as np


def roc_auc(negative_scores, positive_scores) -> np.ndarray | float:
    """P(positive score > negative score) + ½ P(tie): the area under the ROC curve (the Mann-Whitney U over the
    product of the sizes), along the last axis of ``negative_scores`` ``(..., n)`` and ``positive_scores``
    ``(..., m)``; a float for 1-D inputs, else ``(...)``. 0.5 when the scores do not separate the two, 1 when every
    positive scores above every negative.

    >>> roc_auc([0, 1], [2, 3]), roc_auc([0, 1], [0, 1]), roc_auc([[0, 5]], [[1, 2]]).tolist()
    (1.0, 0.5, [0.5])
    """
    from scipy.stats import rankdata

    r, m = np.asarray(negative_scores, float), np.asarray(positive_scores, float)
    ranks = rankdata(np.concatenate([r, m], axis=-1), axis=-1)
    n_r, n_m = r.shape[-1], m.shape[-1]
    auc = (ranks[..., n_r:].sum(-1) - n_m * (n_m + 1) / 2) / (n_r * n_m)
    return float(auc) if auc.ndim == 0 else auc


def roc_curve(negative_scores, positive_scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC of the rule "flag a score > threshold": ``(fpr, tpr, thresholds)``, each ``(k,)``, from 1-D scores.
    ``thresholds`` are the distinct scores in decreasing order, then −inf; ``fpr[i]`` / ``tpr[i]`` are the shares of
    negative / positive scores above ``thresholds[i]``, so the curve runs from (0, 0) to (1, 1), every threshold's
    operating point is one of its vertices, and its trapezoid area (ties on the diagonal) equals :func:`roc_auc`.

    >>> fpr, tpr, t = roc_curve([0, 1], [1, 2])
    >>> fpr.tolist(), tpr.tolist(), t.tolist()
    ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0], [2.0, 1.0, 0.0, -inf])
    """
    r, m = np.sort(np.asarray(negative_scores, float)), np.sort(np.asarray(positive_scores, float))
    thresholds = np.append(np.unique(np.concatenate([r, m]))[::-1], -np.inf)

    def above(s):  # share of sorted scores s strictly above each threshold
        return (s.size - np.searchsorted(s, thresholds, side="right")) / s.size

    return above(r), above(m), thresholds
