"""Regimes: how generation g+1's training set is assembled from real and synthetic data.

Each regime is a small function from :class:`RegimeInputs` to a list of :class:`Chunk` (the training set is their
union); its settings are keyword-only parameters, validated from the signature. Adding one is one function plus its
registration::

    @REGIMES.register("window", keeps_history=True)
    def window(inputs, *, k: int = 2):
        return list(inputs.synthetic[-k:])

and a config chooses it with ``loop.regime: {kind: window, k: 3}`` (a bare name takes the defaults). See DESIGN's
mixing law: every regime is a setting of p_{i+1} = α·p_θ(i+1) + β·p_i + γ·p_0.

| regime                 | training set of generation g+1                                          |
| ---------------------- | ----------------------------------------------------------------------- |
| replace                | the synthetic samples of generation g only                              |
| accumulate             | the real pool plus every synthetic sample so far                         |
| accumulate-subsample   | a uniform subsample of ``loop.samples`` records of the accumulated pool |
| mix                    | ``real_fraction`` from the fixed original pool, the rest synthetic of g  |
| fresh                  | ``real_fraction`` drawn anew from the real distribution, the rest synthetic of g |
| window                 | the synthetic samples of the last ``k`` generations                      |

Alemohammad et al.'s names for the three MAD loops are aliases: ``fully-synthetic`` = replace,
``synthetic-augmentation`` = mix (a fixed real set), ``fresh-data`` = fresh. In mix and fresh, ``n_real`` and
``loop.n_synthetic`` (records per generation) override ``real_fraction × samples`` and ``samples − n_real`` when given.
``loop.real_fraction`` and ``loop.n_real`` are kept as aliases of the mixing regimes' parameters.
A curated synthetic chunk is always refilled to its full size before it reaches a regime (see ``filters.curate``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
from pydantic import Field

from ..errors import ConfigError
from ..registry import Registry

REAL = -1  # origin tag of real records; synthetic records carry the generation that sampled them
#: The rows the loop writes about each training set's provenance (real and synthetic records per replicate):
#: bookkeeping, not measurements, so reports keep them out of the headline figures.
PROVENANCE_ROWS = ("train_real", "train_synthetic")


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


def provenance(train: list[Chunk], replicates: int) -> tuple[np.ndarray, np.ndarray]:
    """Real and synthetic records per replicate in a training set, ``(R,)`` floats each (zeros for an empty set).
    Counts are cached on each chunk: the accumulate pool is recounted every generation, O(G²·M) over a run."""
    for c in train:
        if "real_count" not in c.cache:
            c.cache["real_count"] = (c.origin == REAL).sum(1)
    real = sum((c.cache["real_count"] for c in train), np.zeros(replicates))
    return real, sum((c.size for c in train), np.zeros(replicates)) - real


@dataclass
class RegimeInputs:
    """What a regime may use. ``synthetic`` holds every synthetic chunk so far if the regime keeps history, else only
    the newest; ``samples`` is ``loop.samples``; ``fresh(n)`` draws ``n`` new real records per replicate;
    ``n_synthetic`` is ``loop.n_synthetic`` (synthetic records drawn per generation; None: ``samples`` − real);
    ``ordered_draws``: the family's ``ordered_draws`` trait (its synthetic records come in an order that depends on
    their values, so a part of them is kept by a seeded uniform choice, not by position)."""

    real: Chunk
    synthetic: list[Chunk]
    samples: int
    fresh: Callable[[int], Chunk]
    rng: np.random.Generator
    n_synthetic: int | None = None
    ordered_draws: bool = False


REGIMES: Registry = Registry("loop.regime", traits={"keeps_history": False, "needs_fresh": False, "mixes_real": False})
"""Regimes by name. Traits: ``keeps_history`` (it needs every past synthetic chunk: they are checkpointed),
``needs_fresh`` (it draws fresh real data, so the source must be able to), ``mixes_real`` (it takes ``real_fraction``
and ``n_real``, which ``loop.real_fraction`` / ``loop.n_real`` may also set)."""


def subsample(chunks: list[Chunk], n: int, rng: np.random.Generator) -> Chunk:
    """``n`` records per replicate chosen uniformly without replacement from the concatenated chunks."""
    x = np.concatenate([c.x for c in chunks], axis=1) if len(chunks) > 1 else chunks[0].x
    origin = np.concatenate([c.origin for c in chunks], axis=1) if len(chunks) > 1 else chunks[0].origin
    keys = rng.random(origin.shape)
    # The n smallest of i.i.d. uniform keys are a uniform random n-subset per replicate (argpartition: O(N)).
    pick = np.argpartition(keys, n - 1, axis=1)[:, :n] if n < keys.shape[1] else np.argsort(keys, axis=1)
    idx = pick.reshape(pick.shape + (1,) * (x.ndim - 2))
    return Chunk(np.take_along_axis(x, idx, axis=1), np.take_along_axis(origin, pick, axis=1))


def weighted_records(chunks: list[Chunk], real_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """A training set's records ``(R, N, ...)`` and their weights ``(R, N)`` for ``loop.weights``: the real records
    share ``real_weight`` evenly, the synthetic ones 1 − ``real_weight``; a replicate whose set holds one kind only
    gives it all the weight. Each replicate's weights sum to 1.

    >>> real, synthetic = Chunk.tagged(np.zeros((1, 2)), REAL), Chunk.tagged(np.ones((1, 3)), 0)
    >>> weighted_records([real, synthetic], 0.6)[1].round(3).tolist()
    [[0.3, 0.3, 0.133, 0.133, 0.133]]
    """
    x = np.concatenate([c.x for c in chunks], axis=1) if len(chunks) > 1 else chunks[0].x
    real = np.concatenate([c.origin for c in chunks], axis=1) == REAL
    n_real, n_synthetic = real.sum(1, keepdims=True), (~real).sum(1, keepdims=True)
    share_real = np.where(n_synthetic > 0, real_weight, 1.0)
    share_synthetic = np.where(n_real > 0, 1.0 - real_weight, 1.0)
    return x, np.where(real, share_real / np.maximum(n_real, 1), share_synthetic / np.maximum(n_synthetic, 1))


def trimmed(inputs: RegimeInputs, n: int) -> Chunk:
    """``n`` records per replicate of the newest synthetic chunk, a uniform subset: its first ``n`` where records come
    in random order (i.i.d. draws in the order drawn), a seeded uniform choice (:func:`subsample`, from
    ``inputs.rng``) where the family's draws are ordered (a categorical's, sorted by category: its first records
    would be its lowest categories)."""
    chunk = inputs.synthetic[-1]
    if inputs.ordered_draws and n < chunk.size:
        return subsample([chunk], n, inputs.rng)
    return Chunk(chunk.x[:, :n], chunk.origin[:, :n])


def real_count(samples: int, real_fraction: float, n_real: int | None) -> int:
    """Real records per generation: ``n_real`` if given, else ``round(real_fraction × samples)``."""
    return n_real if n_real is not None else int(round(real_fraction * samples))


def synthetic_count(inputs: RegimeInputs, k: int) -> int:
    """Synthetic records per generation: ``n_synthetic`` if given, else ``samples − k``."""
    return inputs.n_synthetic if inputs.n_synthetic is not None else inputs.samples - k


def real_plus_synthetic(real: Chunk | None, inputs: RegimeInputs, k: int) -> list[Chunk]:
    s = synthetic_count(inputs, k)
    return ([real] if k else []) + ([trimmed(inputs, s)] if s > 0 else [])


@REGIMES.register("replace", "fully-synthetic")
def replace(inputs: RegimeInputs) -> list[Chunk]:
    return [inputs.synthetic[-1]]


@REGIMES.register("accumulate", keeps_history=True)
def accumulate(inputs: RegimeInputs) -> list[Chunk]:
    return [inputs.real, *inputs.synthetic]


@REGIMES.register("accumulate-subsample", keeps_history=True)
def accumulate_subsample(inputs: RegimeInputs) -> list[Chunk]:
    return [subsample([inputs.real, *inputs.synthetic], inputs.samples, inputs.rng)]


@REGIMES.register("mix", "synthetic-augmentation", mixes_real=True)
def mix(
    inputs: RegimeInputs,
    *,
    real_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0,
    n_real: Annotated[int, Field(ge=0)] | None = None,
) -> list[Chunk]:
    """``real_fraction × samples`` (or ``n_real``) records from the fixed real pool, the rest synthetic of g."""
    k = real_count(inputs.samples, real_fraction, n_real)
    return real_plus_synthetic(subsample([inputs.real], k, inputs.rng) if k else None, inputs, k)


@REGIMES.register("fresh", "fresh-data", needs_fresh=True, mixes_real=True)
def fresh(
    inputs: RegimeInputs,
    *,
    real_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0,
    n_real: Annotated[int, Field(ge=0)] | None = None,
) -> list[Chunk]:
    """``real_fraction × samples`` (or ``n_real``) records drawn anew from the real distribution, the rest synthetic."""
    k = real_count(inputs.samples, real_fraction, n_real)
    return real_plus_synthetic(inputs.fresh(k) if k else None, inputs, k)


@REGIMES.register("window", keeps_history=True)
def window(inputs: RegimeInputs, *, k: Annotated[int, Field(ge=1)] = 2) -> list[Chunk]:
    """The synthetic samples of the last ``k`` generations (fewer while fewer exist); ``k = 1`` is ``replace``.

    >>> import numpy as np
    >>> chunks = [Chunk.tagged(np.zeros((1, 3)), g) for g in range(5)]
    >>> inputs = RegimeInputs(chunks[0], chunks, 3, fresh=None, rng=None)
    >>> [int(c.origin[0, 0]) for c in window(inputs, k=2)]
    [3, 4]
    """
    return list(inputs.synthetic[-k:])


def regime_spec(loop) -> tuple[str, dict]:
    """``(canonical name, validated parameters)`` of ``loop.regime``, with the loop-level mixing keys folded in.

    ``loop.regime`` is a name or ``{kind: NAME, **parameters}``. ``loop.real_fraction`` and ``loop.n_real`` set a
    mixing regime's ``real_fraction`` / ``n_real`` from the loop level; set in both places they must agree.
    ``loop.n_real`` with a regime that mixes no real data is an error (``real_fraction`` is left alone there: sweeps
    vary it freely).
    """
    spec = {"kind": loop.regime} if isinstance(loop.regime, str) else dict(loop.regime)
    key = "loop.regime" if isinstance(loop.regime, str) else "loop.regime.kind"
    name = REGIMES.canonical(spec.get("kind"), key) if "kind" in spec else spec.get("kind")
    mixes = name is not None and REGIMES.trait(name, "mixes_real", False)
    loop_level = {"real_fraction": loop.real_fraction, "n_real": loop.n_real}
    defaults = {"real_fraction": 0.0, "n_real": None}
    for param, value in loop_level.items():
        if value == defaults[param]:
            continue
        if not mixes:
            if param == "n_real":
                raise ConfigError(
                    "loop.n_real is used only by the regimes "
                    f"{', '.join(map(repr, REGIMES.with_trait('mixes_real')))}; "
                    f"got loop.regime {name!r}."
                )
            continue
        if param in spec and spec[param] != value:
            raise ConfigError(
                f"loop.{param} {value!r} and loop.regime.{param} {spec[param]!r} disagree; set one of them."
            )
        spec[param] = value
    return REGIMES.params(spec, "loop.regime")
