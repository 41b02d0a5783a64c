"""Rewards (``loop.filters[].reward`` of the ``curate`` filter): what a curator prefers, as a function of records.

A reward is ``fn(x, *, params) -> (R, n)`` floats for records ``x`` ``(R, n, *event_shape)``; its settings are
keyword-only parameters, validated from the signature. A reward that reads the real data source (a classifier trained
on it, its tokenizer) registers with ``needs_source=True`` and takes the source as a second positional argument,
``fn(x, source, *, params)``. Adding one is one function plus its registration::

    >>> import numpy as np
    >>> @REWARDS.register("first-coordinate")
    ... def first_coordinate(x, *, scale: float = 1.0):
    ...     # The first coordinate of each vector record, times ``scale``.
    ...     return scale * np.asarray(x, float).reshape(*np.shape(x)[:2], -1)[..., 0]
    >>> build_reward({"kind": "first-coordinate", "scale": 2.0}, "reward")(np.array([[[1.0, 5.0], [-0.5, 0.0]]]))
    array([[ 2., -1.]])
    >>> REWARDS.unregister("first-coordinate")

Config: ``loop.filters: [{kind: curate, k: 2, beta: 1.0, reward: {kind: table, values: [0, 0.5, 1, 1.5, 2]}}]``.

Built in: ``table`` (categories), ``quadratic`` (vectors), ``class-probability`` (images: the curators' digits
classifier's probability of one class), ``sentiment`` and ``text-length`` (token blocks, decoded by the source).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError
from ..registry import Registry

REWARDS: Registry = Registry("loop.filters[].reward.kind")


def build_reward(spec: Any, key: str, source: Any = None) -> Callable[[np.ndarray], np.ndarray]:
    """The reward of ``spec`` (a name or ``{kind: NAME, **parameters}``) as ``x -> (R, n)``, its parameters (and the
    data ``source``, for a reward that needs it) bound; ``key`` is where the spec sits in the config
    (``loop.filters[0].reward``), for error messages."""
    name, params = REWARDS.params(spec, key)
    fn = functools.partial(REWARDS.get(name), **params)
    return functools.partial(fn, source=source) if REWARDS.trait(name, "needs_source") else fn


@REWARDS.register("table")
def table(x, *, values: list[float]):
    """A reward per category: r(x) = ``values[x]`` for category-index records ``(R, n)`` (a categorical family's).

    >>> table(np.array([[0, 2, 1]]), values=[0.0, 0.5, 1.0]).tolist()
    [[0.0, 1.0, 0.5]]
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer) or x.ndim != 2:
        raise ConfigError(
            f"reward 'table' needs category-index records (R, n); got {x.dtype} records of shape {x.shape}."
        )
    if x.size and (x.min() < 0 or x.max() >= len(values)):
        raise ConfigError(
            f"reward 'table' has {len(values)} values (categories 0..{len(values) - 1}); "
            f"got a record of category {int(x.max() if x.max() >= len(values) else x.min())}."
        )
    return np.asarray(values, float)[x]


@REWARDS.register("quadratic")
def quadratic(x, *, center: float | list[float] = 0.0, scale: float = 1.0):
    """r(x) = −``scale``·‖x − ``center``‖² for vector records ``(R, n, d)`` (``center`` a number or d numbers): the
    curator prefers records near ``center`` (``scale`` < 0: far from it). Under K = ∞ curation of N(μ, σ²) with
    weight e^{βr} the kept records are N(μ', σ'²) with 1/σ'² = 1/σ² + 2βs and μ' = σ'²(μ/σ² + 2βs·c).

    >>> quadratic(np.array([[[1.0, 0.0], [0.0, 3.0]]]), center=[0.0, 1.0]).tolist()
    [[-2.0, -4.0]]
    """
    v = np.asarray(x, float).reshape(*np.shape(x)[:2], -1)
    c = np.asarray(center, float)
    if c.ndim and len(c) != v.shape[-1]:
        raise ConfigError(f"reward 'quadratic' center has {len(c)} coordinates; the records have {v.shape[-1]}.")
    return -scale * ((v - c) ** 2).sum(-1)


# -- images and text: rewards that read the data source ---------------------------------------------------------------
@REWARDS.register("class-probability", needs_source=True)
def class_probability(x, source, *, label: int):
    """The probability, in [0, 1], that the curators' classifier gives class ``label`` for image records
    ``(R, n, H, W)``: a curator who prefers one digit. The classifier is the ``classifier-verifier`` filter's
    (``metrics.images.verifier_net``: one hidden layer of 128, seed 1, trained on the source's real training images),
    not the measuring instrument behind ``class_entropy``, so the metrics grade the curator with another classifier.
    Under ``k: inf`` with a large β the kept records are those the classifier calls ``label``."""
    from .metrics.images import class_probs, verifier_net

    user = "loop.filters curate.reward class-probability"
    if np.ndim(x) != 4:
        raise ConfigError(f"{user} needs grey images (R, n, H, W); got records of shape {np.shape(x)}.")
    net = verifier_net(source, 128, None, 1, user=user)
    classes = net[-1].out_features
    if not 0 <= label < classes:
        raise ConfigError(f"{user}.label must be a class of the source, in [0, {classes - 1}]; got {label!r}.")
    if net[1].in_features != np.prod(np.shape(x)[2:]):
        raise ConfigError(
            f"{user}: images of shape {np.shape(x)[2:]} do not match the source's training images "
            f"({net[1].in_features} pixels)."
        )
    return class_probs(net, x)[..., label].astype(float)


def decoded(x, source, user: str) -> list[str]:
    """The texts of token-block records ``(R, n, B)``, replicate-major, decoded by the source's tokenizer (as the text
    metrics decode them)."""
    if not hasattr(source, "decode") or np.ndim(x) != 3 or not np.issubdtype(np.asarray(x).dtype, np.integer):
        raise ConfigError(
            f"{user} needs token-block records (R, n, B) from a text source (wikipedia, corpus); got "
            f"{np.asarray(x).dtype} records of shape {np.shape(x)} from {type(source).__name__}."
        )
    return source.decode(np.asarray(x).reshape(-1, np.shape(x)[-1]))


@REWARDS.register("sentiment", needs_source=True)
def sentiment(x, source, *, scale: float = 1.0):
    """``scale`` × the VADER compound sentiment, in [-1, 1] (``prose.positivity``, the telephone chains'
    ``positivity``), of each decoded token block ``(R, n, B)``: a curator who prefers positive text (``scale`` < 0:
    negative). Needs ``vaderSentiment`` (the ``telephone`` extra)."""
    from .metrics.prose import positivity

    texts = decoded(x, source, "loop.filters curate.reward sentiment")
    try:
        scores = [positivity(t) for t in texts]
    except ImportError:
        raise ConfigError(
            "loop.filters curate.reward sentiment needs vaderSentiment; "
            "install it with pip install 'modelcollapse[telephone]'."
        ) from None
    return scale * np.asarray(scores, float).reshape(np.shape(x)[:2])


@REWARDS.register("text-length", needs_source=True)
def text_length(x, source, *, unit: Literal["words", "characters"] = "words", scale: float = 1.0):
    """``scale`` × the length of each decoded token block ``(R, n, B)``, in words (``prose.length_words``: runs of
    letters and digits) or characters (``prose.length_chars``): a curator who prefers long (``scale`` > 0) or short
    (``scale`` < 0) text. A block has a fixed number of tokens, so longer means longer words and fewer symbols."""
    from .metrics.prose import length_chars, length_words

    measure = length_words if unit == "words" else length_chars
    texts = decoded(x, source, "loop.filters curate.reward text-length")
    return scale * np.asarray([measure(t) for t in texts], float).reshape(np.shape(x)[:2])
