"""Metrics: pure functions of one generation's :class:`Context`, each returning one value per replicate ``(R,)``.

Names are a contract (they are the ``metric`` column of ``metrics.parquet``). Each docstring states exactly what is
computed, its units, and whether it is squared. Adding a metric is one function plus its registration; a metric
that reads only the fitted model (never the generation's samples) says ``from_model=True``, so the direct fit
(``model.next_fit: direct``) may skip drawing the samples. A metric that needs something of the family or the data
source says so with ``needs=`` / ``source_needs=`` (attribute or method names; a fitted attribute, ending in ``_``,
must be in the family's ``fitted`` declaration), so a config asking it of a family that lacks it fails at
validation::

    >>> import numpy as np
    >>> from modelcollapse.plugins.metrics import METRICS, Context
    >>> @METRICS.register("sample_range")
    ... def sample_range(ctx: Context) -> np.ndarray:
    ...     # Largest minus smallest synthetic record per replicate (records' units), ``(R,)``.
    ...     x = ctx.samples.reshape(ctx.samples.shape[0], -1)
    ...     return x.max(1) - x.min(1)
    >>> ctx = Context(model=None, samples=np.array([[[0.0], [2.5]], [[1.0], [1.5]]]), source=None, heldout=None,
    ...               generation=0, rng=None)
    >>> measure(["sample_range"], ctx)["sample_range"]
    array([2.5, 0.5])
    >>> METRICS.unregister("sample_range")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import ConfigError, PluginError
from ...registry import Registry, running

METRICS: Registry = Registry("metrics", traits={"from_model": False, "needs": (), "source_needs": (), "headline": None})


@dataclass
class Context:
    """Everything a metric may look at for one generation.

    ``model``: the fitted family (R replicates); ``samples``: its synthetic records ``(R, m, ...)``; ``source``: the
    real distribution; ``heldout``: real records ``(h, ...)`` shared by all replicates, drawn once per run;
    ``gen0``: the generation-0 model; ``train``: the training chunks of this generation; ``rng``: for sample-based
    metrics; ``arrays``: extra arrays a metric wants kept in the run directory (name -> array); ``shared``: values
    several metrics derive from (name -> value), computed by the first that needs them this generation;
    ``gen0_size``: the number of records per replicate generation 0 was fitted to (None where unknown).
    """

    model: Any
    samples: np.ndarray
    source: Any
    heldout: np.ndarray
    generation: int
    rng: np.random.Generator
    gen0: Any = None
    train: list = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    gen0_size: int | None = None


def require(ctx: Context, attribute: str, metric: str, owner: str = "model"):
    """``getattr(ctx.model or ctx.source, attribute)``, or a clear error naming the metric."""
    obj = ctx.model if owner == "model" else ctx.source
    if not hasattr(obj, attribute):
        raise ConfigError(
            f"metric {metric!r} needs {owner} {type(obj).__name__} to provide {attribute}(); "
            "remove it from metrics or choose another family."
        )
    return getattr(obj, attribute)


def measure(names: list[str], ctx: Context) -> dict[str, np.ndarray]:
    """Every named metric on ``ctx``, as ``{name: (R,) float array}`` (R = ``len(ctx.samples)``; any length when
    ``ctx.samples`` is None, as a caller measuring a fitted model alone may pass). A metric that raises, or returns
    anything but R numbers, is a :class:`~modelcollapse.errors.PluginError` naming it."""
    replicates = None if ctx.samples is None else len(ctx.samples)
    out = {}
    for name in names:
        with running("metric", name):
            value = METRICS.get(name)(ctx)
        out[name] = per_replicate(value, name, replicates)
    return out


def per_replicate(value: Any, name: str, replicates: int | None) -> np.ndarray:
    """A metric's result as ``(R,)`` floats; ``(R, 1)`` and other shapes holding R values are flattened. Anything
    else (a scalar, one value per sample) would be broadcast or misread downstream, so it is refused here, by name."""
    expected = f"({replicates},)" if replicates is not None else "(R,)"
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise PluginError(
            f"metric {name!r} returned {type(value).__name__}, not numbers; expected an array of shape "
            f"{expected}, one value per replicate."
        ) from None
    if array.ndim == 0 or (replicates is not None and array.size != replicates):
        raise PluginError(
            f"metric {name!r} returned shape {array.shape}; expected {expected}, one value per replicate."
        )
    return array.reshape(-1)
