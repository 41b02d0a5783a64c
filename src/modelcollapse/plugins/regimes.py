"""Regimes: how generation g+1's training set is assembled from real and synthetic data.

Each regime is a small function from :class:`RegimeInputs` to a list of :class:`Chunk`; adding one is one function
plus one decorator. See DESIGN's mixing law: every regime is a setting of p_{i+1} = α·p_θ(i+1) + β·p_i + γ·p_0.

| regime                 | training set of generation g+1                                          |
| ---------------------- | ----------------------------------------------------------------------- |
| replace                | the synthetic samples of generation g only                              |
| accumulate             | the real pool plus every synthetic sample so far                         |
| accumulate-subsample   | a uniform subsample of ``loop.samples`` records of the accumulated pool |
| mix                    | ``real_fraction`` from the fixed original pool, the rest synthetic of g  |
| fresh                  | ``real_fraction`` drawn anew from the real distribution, the rest synthetic of g |

Alemohammad et al.'s names for the three MAD loops are aliases: ``fully-synthetic`` = replace,
``synthetic-augmentation`` = mix (a fixed real set), ``fresh-data`` = fresh. In mix and fresh, ``loop.n_real`` and
``loop.n_synthetic`` (records per generation) override ``real_fraction × samples`` and ``samples − n_real`` when given.
A curated synthetic chunk is always refilled to its full size before it reaches a regime (see ``filters.curate``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..registry import Registry

REAL = -1  # origin tag of real records; synthetic records carry the generation that sampled them


@dataclass
class Chunk:
    """Records ``x`` ``(R, n, *event_shape)`` with their provenance ``origin`` ``(R, n)``: -1 real, k synthetic of
    generation k. ``cache`` holds per-chunk statistics a family may reuse (e.g. moments)."""

    x: np.ndarray
    origin: np.ndarray
    cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def tagged(cls, x: np.ndarray, origin: int) -> Chunk:
        return cls(x, np.full(x.shape[:2], origin, dtype=np.int32))

    @property
    def size(self) -> int:
        return self.x.shape[1]


@dataclass
class RegimeInputs:
    """What a regime may use. ``synthetic`` holds every synthetic chunk so far if the regime keeps history, else only
    the newest; ``fresh(n)`` draws ``n`` new real records per replicate."""

    real: Chunk
    synthetic: list[Chunk]
    samples: int
    real_fraction: float
    fresh: Callable[[int], Chunk]
    rng: np.random.Generator
    n_real: int | None = None
    n_synthetic: int | None = None


REGIMES: Registry = Registry("loop.regime")


def regime(*names: str, keeps_history: bool = False, needs_fresh: bool = False, mixes_real: bool = False):
    """Register a regime under one or more names. ``keeps_history``: it needs every past synthetic chunk (they are
    checkpointed); ``needs_fresh``: it draws fresh real data; ``mixes_real``: it reads ``n_real``/``real_fraction``."""

    def add(fn):
        fn.keeps_history, fn.needs_fresh, fn.mixes_real = keeps_history, needs_fresh, mixes_real
        for name in names:
            REGIMES.register(name)(fn)
        return fn

    return add


def subsample(chunks: list[Chunk], n: int, rng: np.random.Generator) -> Chunk:
    """``n`` records per replicate chosen uniformly without replacement from the concatenated chunks."""
    x = np.concatenate([c.x for c in chunks], axis=1) if len(chunks) > 1 else chunks[0].x
    origin = np.concatenate([c.origin for c in chunks], axis=1) if len(chunks) > 1 else chunks[0].origin
    keys = rng.random(origin.shape)
    # The n smallest of i.i.d. uniform keys are a uniform random n-subset per replicate (argpartition: O(N)).
    pick = np.argpartition(keys, n - 1, axis=1)[:, :n] if n < keys.shape[1] else np.argsort(keys, axis=1)
    idx = pick.reshape(pick.shape + (1,) * (x.ndim - 2))
    return Chunk(np.take_along_axis(x, idx, axis=1), np.take_along_axis(origin, pick, axis=1))


def head(chunk: Chunk, n: int) -> Chunk:
    """The first ``n`` records: a uniform subset, since synthetic records are i.i.d. draws."""
    return Chunk(chunk.x[:, :n], chunk.origin[:, :n])


def real_count(inputs: RegimeInputs) -> int:
    """Real records per generation: ``n_real`` if given, else ``round(real_fraction × samples)``."""
    return inputs.n_real if inputs.n_real is not None else int(round(inputs.real_fraction * inputs.samples))


def synthetic_count(inputs: RegimeInputs, k: int) -> int:
    """Synthetic records per generation: ``n_synthetic`` if given, else ``samples − k``."""
    return inputs.n_synthetic if inputs.n_synthetic is not None else inputs.samples - k


def real_plus_synthetic(real: Chunk | None, inputs: RegimeInputs, k: int) -> list[Chunk]:
    s = synthetic_count(inputs, k)
    return ([real] if k else []) + ([head(inputs.synthetic[-1], s)] if s > 0 else [])


@regime("replace", "fully-synthetic")
def replace(inputs: RegimeInputs) -> list[Chunk]:
    return [inputs.synthetic[-1]]


@regime("accumulate", keeps_history=True)
def accumulate(inputs: RegimeInputs) -> list[Chunk]:
    return [inputs.real, *inputs.synthetic]


@regime("accumulate-subsample", keeps_history=True)
def accumulate_subsample(inputs: RegimeInputs) -> list[Chunk]:
    return [subsample([inputs.real, *inputs.synthetic], inputs.samples, inputs.rng)]


@regime("mix", "synthetic-augmentation", mixes_real=True)
def mix(inputs: RegimeInputs) -> list[Chunk]:
    k = real_count(inputs)
    return real_plus_synthetic(subsample([inputs.real], k, inputs.rng) if k else None, inputs, k)


@regime("fresh", "fresh-data", needs_fresh=True, mixes_real=True)
def fresh(inputs: RegimeInputs) -> list[Chunk]:
    k = real_count(inputs)
    return real_plus_synthetic(inputs.fresh(k) if k else None, inputs, k)
