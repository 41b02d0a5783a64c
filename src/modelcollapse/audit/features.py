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
from .shards import image_task, map_records, split, text_shard

CLASSIFIER_SOURCES = {(8, 8): "digits", (28, 28): "mnist"}


def grey01(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    x = x / 255.0 if x.size and x.max() > 1.0 else x
    return x.mean(-1) if x.ndim == 4 else x


def classifier_for(grey: np.ndarray):
    """The digits / MNIST feature classifier for grey images ``(n, h, w)`` of 8×8 or 28×28 pixels, else None."""
    kind = CLASSIFIER_SOURCES.get(grey.shape[1:])
    if kind is None:
        return None
    from ..plugins.data import SOURCES
    from ..plugins.metrics.images import classifier

    return classifier(SimpleNamespace(source=SOURCES.build({"kind": kind}, "data")))


def shard_count(reference: Dataset, candidates: list[Dataset]) -> int:
    """How many shards of per-record work :func:`pools` maps (its progress total); 0 where there is none (tables,
    images without a feature classifier)."""
    if reference.kind == "table" or (
        reference.kind == "images" and tuple(reference.records.shape[1:3]) not in CLASSIFIER_SOURCES
    ):
        return 0
    return sum(len(split(d.records)) for d in [reference, *candidates])


def pools(reference: Dataset, candidates: list[Dataset], executor=None, on_shard=None) -> tuple[Pool, list[Pool]]:
    """The reference's and every candidate's :class:`Pool`. The per-record work (text embeddings and MinHash
    signatures, image classifier features) runs in shards on ``executor`` (``shards.py``; default in process),
    calling ``on_shard(1)`` as each shard is done."""
    kind, sets = reference.kind, [reference, *candidates]
    if kind == "text":
        done = map_records(text_shard, [d.records for d in sets], executor, on_shard=on_shard)
        made = []
        for d, out in zip(sets, done):
            pool = Pool(kind, d.records, out["features"].astype(np.float64), True, [words_of(t) for t in d.records])
            pool.signatures = out["signatures"]  # computed with the features; the cached property stays unused
            made.append(pool)
        return made[0], made[1:]
    if kind == "table":
        x = reference.records
        mu, sd = x.mean(0), x.std(0, ddof=1) if len(x) > 1 else np.ones(x.shape[1])
        sd = np.where(sd > 0, sd, 1.0)
        names = reference.columns
        return (
            Pool(kind, x, (x - mu) / sd, columns=names),
            [Pool(kind, c.records, (c.records - mu) / sd, columns=names) for c in candidates],
        )
    greys = [grey01(d.records) for d in sets]
    net = classifier_for(greys[0])
    if net is None:
        made = [Pool(kind, d.records, g.reshape(len(g), -1).astype(np.float64)) for d, g in zip(sets, greys)]
    else:
        done = map_records(image_task(net), greys, executor, on_shard=on_shard)
        made = [Pool(kind, d.records, out["features"], extra={"probs": out["probs"]}) for d, out in zip(sets, done)]
    return made[0], made[1:]
