"""Rewards (``loop.filters[].reward`` of the ``curate`` filter): what a curator prefers, as a function of records.

A reward is ``fn(x, *, params) -> (R, n)`` floats for records ``x`` ``(R, n, *event_shape)``; its settings are
keyword-only parameters, validated from the signature. Adding one is one function plus its registration::

    >>> import numpy as np
    >>> @REWARDS.register("first-coordinate")
    ... def first_coordinate(x, *, scale: float = 1.0):
    ...     # The first coordinate of each vector record, times ``scale``.
    ...     return scale * np.asarray(x, float).reshape(*np.shape(x)[:2], -1)[..., 0]
    >>> build_reward({"kind": "first-coordinate", "scale": 2.0}, "reward")(np.array([[[1.0, 5.0], [-0.5, 0.0]]]))
    array([[ 2., -1.]])
    >>> REWARDS.unregister("first-coordinate")

Config: ``loop.filters: [{kind: curate, k: 2, beta: 1.0, reward: {kind: table, values: [0, 0.5, 1, 1.5, 2]}}]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..registry import Registry

REWARDS: Registry = Registry("loop.filters[].reward.kind")


def build_reward(spec: Any, key: str) -> Callable[[np.ndarray], np.ndarray]:
    """The reward of ``spec`` (a name or ``{kind: NAME, **parameters}``) with its parameters bound; ``key`` is where
    the spec sits in the config (``loop.filters[0].reward``), for error messages."""
    return REWARDS.build(spec, key)


@REWARDS.register("table")
def table(x, *, values: list[float]):
    """A reward per category: r(x) = ``values[x]`` for category-index records ``(R, n)`` (a categorical family's).

    >>> table(np.array([[0, 2, 1]]), values=[0.0, 0.5, 1.0]).tolist()
    [[0.0, 1.0, 0.5]]
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.integer) or x.ndim != 2:
        raise ConfigError(f"reward 'table' needs category-index records (R, n); got {x.dtype} records of shape {x.shape}.")
    if x.size and (x.min() < 0 or x.max() >= len(values)):
        raise ConfigError(f"reward 'table' has {len(values)} values (categories 0..{len(values) - 1}); "
                          f"got a record of category {int(x.max() if x.max() >= len(values) else x.min())}.")
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
