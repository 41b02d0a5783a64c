"""Mode coverage: how many of the real distribution's modes the generated records still reach.

A mode is *covered* when it receives at least a quarter of the records its weight expects (``THRESHOLD``;
:func:`~modelcollapse.measures.mode_coverage`). Two ways to say which mode a record belongs to:

* ``mode_coverage``, for a Gaussian-mixture source (``data.kind: gaussian-mixture``, components ``means_`` ``(K, d)``,
  ``stds_`` ``(K,)``, ``weights_`` ``(K,)``): the component of highest posterior probability under the source, if
  the record lies within the radius that holds 99% of that component's mass, σ_k·√χ²_d(0.99) (3.03σ in 2-D);
  otherwise none (an off-mode record counts against every mode's share). On ``mad-loops``' 4-mode grid: 1 while every
  mode keeps its share, 0.25 once one mode holds everything.
* ``class_coverage``, for an image source with class labels: the class the feature classifier predicts
  (``metrics/images.py``, the instrument of ``class_entropy``), against the real test images' class frequencies.
  1 when all ten digits are drawn about as often as in the data; 0.1 when one class remains.

Both take the generation's samples ``(R, m, ...)`` and return ``(R,)`` shares in [0, 1] (unitless, not squared).
"""

from __future__ import annotations

import numpy as np

from ...measures import mode_coverage as coverage_share
from .base import METRICS, Context
from .images import predicted_classes

THRESHOLD = 0.25  # a mode is covered with at least a quarter of the records its weight expects
MASS = 0.99  # a record belongs to a mixture component only within the radius holding this share of its mass


def mixture_modes(x: np.ndarray, weights: np.ndarray, means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """The mode ``(R, m)`` of each record of ``x`` ``(R, m, d)`` under an isotropic Gaussian mixture (``weights``
    ``(K,)``, ``means`` ``(K, d)``, ``stds`` ``(K,)``): its most probable component, or -1 beyond that component's
    99%-mass radius.

    >>> mixture_modes(np.array([[[0.1, 0.0], [5.0, 0.0], [2.5, 9.0]]]), np.ones(2) / 2, np.array([[0.0, 0], [5, 0]]),
    ...               np.ones(2)).tolist()
    [[0, 1, -1]]
    """
    sq = ((x[..., None, :] - means) ** 2).sum(-1)  # (R, m, K)
    d = means.shape[1]
    log_post = np.log(weights) - 0.5 * sq / stds**2 - d * np.log(stds)
    mode = log_post.argmax(-1)
    from scipy import stats  # here, not at the top: importing scipy.stats costs a toy run a second

    inside = np.take_along_axis(sq, mode[..., None], -1)[..., 0] <= stds[mode] ** 2 * stats.chi2.ppf(MASS, d)
    return np.where(inside, mode, -1)


@METRICS.register("mode_coverage", source_needs=("weights_",), headline=14)
def mode_coverage(ctx: Context) -> np.ndarray:
    """Share of the source mixture's K components covered by the generated records (see the module docstring):
    component k is covered when at least 0.25·w_k·m of the m records are its own (most probable component, within its
    99%-mass radius). In [0, 1]; 1/K when all records sit in one component."""
    src = ctx.source
    x = np.asarray(ctx.samples, float).reshape(*np.shape(ctx.samples)[:2], -1)
    modes = mixture_modes(x, src.weights_, src.means_, src.stds_)
    return coverage_share(modes, src.weights_, THRESHOLD)


@METRICS.register("class_coverage", headline=15)
def class_coverage(ctx: Context) -> np.ndarray:
    """Share of the C classes covered by the generated images: class k is covered when the feature classifier
    predicts it for at least 0.25·f_k·m of the m images, f_k its frequency among the real test images. In [0, 1];
    1/C when one class remains."""
    predicted = predicted_classes(ctx)  # first: it names the problem when the source has no class labels
    real = ctx.source.class_labels("test")
    return coverage_share(predicted, np.bincount(real) / len(real), THRESHOLD)
