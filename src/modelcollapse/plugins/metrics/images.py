"""Metrics of image generations (records: grey images ``(R, n, H, W)`` in [0, 1]).

``latent_std`` follows Shumailov et al. (Supplementary Fig. 7). For image sources with class labels, the shared
``frechet``, ``precision`` and ``recall`` (``metrics/features.py``) compare generated and real test images in the
feature space of a small classifier trained on the real training images (an MLP, 2 hidden layers, features = its
64-unit penultimate layer, :func:`embed`); ``class_entropy`` uses its predictions.
The classifier is part of the measuring instrument, not of the experiment: it is trained once per source (kind and
parameters) and process with a fixed seed (0), so every run, arm and resume measures with the same one.

Every image metric also keeps, once per generation, a grid of samples in ``ctx.arrays["sample_grid"]``
``(R, 64, H, W)`` float16 for the report; the metrics that read predicted classes keep each class's count among the
generated images in ``ctx.arrays["class_counts"]`` ``(R, classes)`` (the report's class shares by generation).
"""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError
from ...measures import label_entropy
from .base import METRICS, Context, require

LATENT_STD_SAMPLES = 100  # generated images for latent_std, as the paper's notebook


def keep_grid(ctx: Context, k: int = 64) -> None:
    if "sample_grid" not in ctx.arrays:
        ctx.arrays["sample_grid"] = np.asarray(ctx.samples)[:, :k].astype(np.float16)


def train_classifier(x: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0, hidden: tuple[int, ...] = (256, 64)):
    """An MLP ``H·W -> hidden... -> classes`` (ReLU between layers; the instrument's is ``H·W -> 256 -> 64 ->
    classes``) trained with Adam (lr 1e-3, batches of 128) for ``epochs`` on images ``x`` ``(n, H, W)`` and labels
    ``y`` ``(n,)``; initial weights and batch order from ``seed``."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        widths, layers = [x[0].size, *hidden], [nn.Flatten()]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        net = nn.Sequential(*layers, nn.Linear(widths[-1], int(y.max()) + 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.tensor(np.asarray(x), dtype=torch.float32), torch.tensor(np.asarray(y), dtype=torch.long)
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 128):
            idx = order[i : i + 128]
            loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


_CACHE: dict = {}  # feature classifiers and real features, per source kind and parameters, for the process


def source_cache(source) -> dict:
    key = (
        type(source).__qualname__,
        tuple(sorted((k, repr(v)) for k, v in vars(source).items() if not k.startswith("_"))),
    )
    return _CACHE.setdefault(key, {})


def classifier(ctx: Context):
    """The source's feature classifier, trained on first use and cached per source kind and parameters."""
    cache = source_cache(ctx.source)
    if "net" not in cache:
        labels = getattr(ctx.source, "class_labels", lambda split: None)("train")
        if labels is None:
            raise ConfigError(
                "image metrics need class labels to train their feature classifier; "
                f"data.kind {type(ctx.source).__name__} "
                "has none (give data.labels, or drop frechet, precision, recall and class_entropy from metrics)."
            )
        cache["net"] = train_on_source(ctx.source, labels)
    return cache["net"]


def train_on_source(source, labels: np.ndarray, epochs: int | None = None, **kw):
    """:func:`train_classifier` on every training image of ``source`` (in order: no draw) and their ``labels``;
    ``epochs`` None: the instrument's rule, about 30,000 images' worth (at least 2). ``kw``: ``seed``, ``hidden``."""
    x = source.pool(1, 10**12, np.random.default_rng(0))[0]
    return train_classifier(x, labels, epochs or max(2, int(30000 / len(x))), **kw)


def verifier_net(source, hidden: int, epochs: int | None, seed: int, user: str = "loop.filters classifier-verifier"):
    """The curators' classifier (the ``classifier-verifier`` filter's and the ``class-probability`` reward's): an MLP
    ``H·W -> hidden -> classes`` trained on the source's real training images and labels (:func:`train_on_source`;
    ``epochs`` None: the instrument's rule, about 30,000 images' worth), cached per source, settings and process.
    ``user`` names who needs it, for the error when the source has no class labels."""
    labels = getattr(source, "class_labels", lambda split: None)("train")
    if labels is None:
        raise ConfigError(
            f"{user} needs an image source with class labels (digits, mnist, images with labels); "
            f"data.kind {type(source).__name__} has none."
        )
    cache = source_cache(source)
    key = ("verifier", hidden, epochs, seed)
    if key not in cache:
        cache[key] = train_on_source(source, labels, epochs, seed=seed, hidden=(hidden,))
    return cache[key]


def class_probs(net, x: np.ndarray, batch: int = 65536) -> np.ndarray:
    """The classifier's class probabilities ``(R, n, classes)`` (float32) for images ``x`` ``(R, n, H, W)``, all
    replicates in one pass (in batches of ``batch`` images)."""
    import torch

    flat_x = torch.as_tensor(np.asarray(x, np.float32).reshape(-1, *np.shape(x)[2:]))
    with torch.no_grad():
        p = torch.cat([torch.softmax(net(b), -1) for b in flat_x.split(batch)])
    return p.numpy().reshape(*np.shape(x)[:2], -1)


def class_confidence(net, x: np.ndarray, batch: int = 65536) -> np.ndarray:
    """The classifier's largest class probability ``(R, n)`` for images ``x`` ``(R, n, H, W)``."""
    return class_probs(net, x, batch).max(-1).astype(float)


def features(ctx: Context, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate-layer features ``(n, 64)`` and class probabilities ``(n, classes)`` of images ``(n, H, W)``."""
    return forward(classifier(ctx), x)


def forward(net, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`features` under a given classifier ``net`` (one :func:`train_classifier` returned)."""
    import torch

    with torch.no_grad():
        h = net[:-1](torch.as_tensor(np.asarray(x, np.float32)))
        return h.numpy().astype(np.float64), torch.softmax(net[-1](h), -1).numpy()


def real_features(ctx: Context) -> np.ndarray:
    cache = source_cache(ctx.source)
    if "real" not in cache:
        test = ctx.source.heldout() if hasattr(ctx.source, "heldout") else ctx.heldout
        cache["real"] = features(ctx, test)[0]
    return cache["real"]


def has_classifier(source) -> bool:
    """Whether the source has class labels to train the feature classifier on (the image sources)."""
    return getattr(source, "class_labels", lambda split: None)("train") is not None


def embed(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """Classifier features of the generated images ``(R, m, 64)`` and of the real test images ``(h, 64)``."""
    keep_grid(ctx)
    return np.stack([features(ctx, rep)[0] for rep in np.asarray(ctx.samples)]), real_features(ctx)


@METRICS.register("latent_std", needs=("encode_mean",), headline=9)
def latent_std(ctx: Context) -> np.ndarray:
    """Standard deviation of the generation-0 encoder's latent means over the first 100 generated images (all
    latent dimensions pooled). Shumailov et al. report 0.67 → 0.61 → 0.53 → 0.47 → 0.43 over 5 MNIST generations."""
    keep_grid(ctx)
    ref = ctx.gen0 if ctx.gen0 is not None else ctx.model
    require(ctx, "encode_mean", "latent_std")
    return ref.encode_mean(np.asarray(ctx.samples)[:, :LATENT_STD_SAMPLES]).reshape(len(ctx.samples), -1).std(axis=1)


@METRICS.register("class_entropy")
def class_entropy(ctx: Context) -> np.ndarray:
    """Entropy (nats) of the histogram of the classifier's predicted classes over the generated images
    (:func:`~modelcollapse.measures.label_entropy`); log 10 ≈ 2.30 for balanced digits, falling as generations lose
    modes."""
    return label_entropy(predicted_classes(ctx))


def predicted_classes(ctx: Context) -> np.ndarray:
    """The feature classifier's predicted class ``(R, m)`` of every generated image, computed once per generation
    (``class_entropy`` and ``class_coverage`` read it)."""
    keep_grid(ctx)
    if "predicted_classes" not in ctx.shared:
        probs = [features(ctx, rep)[1] for rep in np.asarray(ctx.samples)]
        ctx.shared["predicted_classes"] = np.stack([p.argmax(1) for p in probs])
        # each class's count, kept for the report's class shares by generation (analysis/curation.py)
        ctx.arrays["class_counts"] = np.stack([np.bincount(p.argmax(1), minlength=p.shape[1]) for p in probs])
    return ctx.shared["predicted_classes"]
