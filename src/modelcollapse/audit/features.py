"""The feature space every kind's fidelity, coverage and diversity indicators are computed in.

* text: the packaged all-MiniLM-L6-v2 sentence embeddings (``chains/metrics.py`` ``embed``), unit norm, 384-D;
* tables: the raw values standardised by the reference's mean and standard deviation (per feature, ddof 1);
* images: for 8×8 or 28×28 grey images, the 64-D penultimate layer of the small digits / MNIST classifier the image
  metrics use (``plugins/metrics/images.py``, trained once per process with seed 0), with a class-probability vector
  for ``class_entropy``; other images: the raw pixels, scaled to [0, 1].

Pixel values above 1 are read as 0..255 and divided by 255; colour images are averaged to grey for the classifier.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .indicators import Pool, words_of
from .inputs import Dataset

CLASSIFIER_SOURCES = {(8, 8): "digits", (28, 28): "mnist"}


def grey01(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    x = x / 255.0 if x.size and x.max() > 1.0 else x
    return x.mean(-1) if x.ndim == 4 else x


def image_features(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(features, class probabilities or None)`` of images ``(n, h, w[, c])``."""
    grey = grey01(x)
    kind = CLASSIFIER_SOURCES.get(grey.shape[1:])
    if kind is None:
        return grey.reshape(len(grey), -1).astype(np.float64), None
    from ..plugins.data import SOURCES
    from ..plugins.metrics.images import features

    return features(SimpleNamespace(source=SOURCES.build({"kind": kind}, "data")), grey)


def pools(reference: Dataset, candidates: list[Dataset]) -> tuple[Pool, list[Pool]]:
    """The reference's and every candidate's :class:`Pool` (features computed once per record)."""
    kind = reference.kind
    if kind == "text":
        from ..chains.metrics import embed

        def make(d):
            return Pool(kind, d.records, embed(d.records).astype(np.float64), True, [words_of(t) for t in d.records])

        return make(reference), [make(c) for c in candidates]
    if kind == "table":
        x = reference.records
        mu, sd = x.mean(0), x.std(0, ddof=1) if len(x) > 1 else np.ones(x.shape[1])
        sd = np.where(sd > 0, sd, 1.0)
        return Pool(kind, x, (x - mu) / sd), [Pool(kind, c.records, (c.records - mu) / sd) for c in candidates]

    def make_images(d):
        f, probs = image_features(d.records)
        return Pool(kind, d.records, f, extra={} if probs is None else {"probs": probs})

    return make_images(reference), [make_images(c) for c in candidates]
