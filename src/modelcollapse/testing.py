"""Conformance checks a plug-in author runs, as scikit-learn's ``check_estimator`` is run on an estimator.

Each check builds the plug-in through its registry, exercises it at a small size and raises :class:`ConformanceError`
(an ``AssertionError``, so a failing check fails a pytest test) with one message naming the plug-in, what it did and
how to fix it. They pass silently. Every family, metric and regime shipped with modelcollapse passes them
(``tests/test_testing.py``). Traits are the one way a plug-in declares what it can do, so much of what is checked is
that the declaration matches the code: the engine believes the traits and never probes.

>>> import numpy as np
>>> from modelcollapse.plugins.regimes import REGIMES
>>> from modelcollapse.testing import check_family, check_metric, check_regime
>>> check_family("gaussian", data={"kind": "gaussian", "dim": 2})
>>> check_metric("variance", model={"kind": "gaussian"})
>>> check_regime("window")
>>> @REGIMES.register("two-back")
... def two_back(inputs):
...     return [inputs.synthetic[-2] if len(inputs.synthetic) > 1 else inputs.real]
>>> check_regime("two-back")
Traceback (most recent call last):
...
modelcollapse.testing.ConformanceError: regime 'two-back': it used synthetic data of generation 2 when generation 3 \
was the newest, but does not declare keeps_history=True: the loop keeps only the newest generation for it. Register \
it with keeps_history=True.
>>> REGIMES.unregister("two-back")
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .registry import Registry


class ConformanceError(AssertionError):
    """A plug-in does not do what its registration declares, or what its axis's protocol asks."""


def _fail(what: str, message: str) -> None:
    raise ConformanceError(f"{what}: {message}")


def registered_name(registry: Registry, plugin: Any, axis: str) -> str:
    """The canonical name ``plugin`` (a name, or the class or function itself) is registered under in ``registry``."""
    if isinstance(plugin, str):
        return registry.canonical(plugin)
    for name in registry:
        if registry.get(name) is plugin:
            return name
    label = getattr(plugin, "__name__", repr(plugin))
    _fail(f"{axis} {label}", f"it is not registered; register it first, e.g. @{axis.upper()}S.register('name', ...)")


# -- families ---------------------------------------------------------------------------------------------------------
def check_family(
    family: Any,
    *,
    data: dict | str = "gaussian",
    params: dict | None = None,
    replicates: int = 3,
    n: int = 200,
    draws: int = 20,
) -> None:
    """Check a model family (its registered name or class) against the family protocol and its declared traits,
    fitted to ``data`` (a ``data`` spec it can fit) with ``params`` (its ``model`` settings):

    - its traits: ``provides`` names only methods it has, and every optional method it has is declared (an undeclared
      one is never used); ``default_metrics`` are registered metrics whose ``needs`` it declares; ``state_format`` is
      ``npz`` or ``safetensors``;
    - ``sample`` before ``fit`` raises; ``fit(x, rng=)`` returns self and leaves ``x`` untouched; its fitted attributes
      are the ``fitted`` it declares, ``degenerate_`` one bool per replicate;
    - ``sample(n, rng=)`` gives ``(R, n, *event_shape)`` numbers; the same generator gives the same samples, two calls
      differ; the same seed fits the same model;
    - ``get_state()`` survives a checkpoint in its ``state_format`` and reproduces the samples;
    - declared ``moments`` and ``log_prob`` return their documented shapes.
    """
    from .plugins.data import SOURCES
    from .plugins.models import MODELS

    name = registered_name(MODELS, family, "model")
    what = f"family {name!r}"
    check_family_traits(name, what)
    source = SOURCES.build(data if isinstance(data, dict) else {"kind": data}, "data")
    x = np.array(source.pool(replicates, n, np.random.default_rng(0)))

    def build():
        return MODELS.build({"kind": name, **(params or {})}, "model").bind(source, x)

    model = build()
    _sample_before_fit_raises(model, what)
    before = x.copy()
    if model.fit(x, rng=np.random.default_rng(1)) is not model:
        _fail(what, "fit() must return self (the fitted model)")
    if not np.array_equal(x, before):
        _fail(what, "fit() changed its input records in place; copy them before modifying")
    _check_fitted(model, name, what, replicates)
    _check_samples(model, what, replicates, draws, x.shape[2:])
    again = build().fit(x, rng=np.random.default_rng(1))
    if not _same_draws(model, again, draws):
        _fail(what, "two fits with the same seed sample differently; draw every random number from the rng argument")
    _check_state(model, build(), name, what, draws)
    _check_declared_methods(model, name, what, x)


def check_family_traits(name: str, what: str) -> None:
    """A family's declared traits against its class (see :func:`check_family`)."""
    from .plugins.metrics import METRICS
    from .plugins.models import MODELS
    from .plugins.models.base import CAPABILITIES

    cls, traits = MODELS.get(name), MODELS.traits(name)
    provides = tuple(traits["provides"])
    needs = {n for m in METRICS for n in METRICS.trait(m, "needs") if not n.endswith("_")}
    for cap in provides:
        if not _has(cls, cap):
            _fail(
                what,
                f"declares provides={cap!r}, but {CAPABILITIES.get(cap, cap + '()')} is not defined; "
                "remove it from provides or define it",
            )
    for cap in sorted(set(CAPABILITIES) | needs):
        if cap not in provides and _has(cls, cap):
            _fail(
                what,
                f"defines {CAPABILITIES.get(cap, cap + '()')} but does not declare it, so the engine never "
                f"uses it; add {cap!r} to provides=(...) at registration",
            )
    if traits["state_format"] not in ("npz", "safetensors"):
        _fail(what, f"state_format must be 'npz' or 'safetensors'; got {traits['state_format']!r}")
    fitted = traits["fitted"]
    if fitted is not None and not all(isinstance(a, str) and a.endswith("_") for a in fitted):
        _fail(what, f"fitted must list attribute names ending in '_' (or be None); got {fitted!r}")
    for metric in traits["default_metrics"]:
        if metric not in METRICS:
            _fail(what, f"default_metrics names {metric!r}, which is not a registered metric")
        missing = [n for n in METRICS.trait(metric, "needs") if not MODELS.provides(name, n)]
        if missing:
            _fail(what, f"default metric {metric!r} needs {', '.join(missing)}, which the family does not declare")


def _has(cls: type, capability: str) -> bool:
    """Whether ``cls`` has ``capability``: a method, or for ``bias`` / ``fit_population_bias`` a ``bias`` parameter."""
    method = {"bias": "sample", "fit_population_bias": "fit_population"}.get(capability, capability)
    if not callable(getattr(cls, method, None)):
        return False
    return method == capability or "bias" in inspect.signature(getattr(cls, method)).parameters


def _same_draws(a, b, draws: int) -> bool:
    """Whether two fitted models draw the same records from the same seed."""
    return np.array_equal(a.sample(draws, rng=np.random.default_rng(3)), b.sample(draws, rng=np.random.default_rng(3)))


def _sample_before_fit_raises(model, what: str) -> None:
    try:
        model.sample(2, rng=np.random.default_rng(0))
    except Exception:  # noqa: BLE001  (any clear error will do; Family.check_fitted raises RunError)
        return
    _fail(what, "sample() before fit() returned records; raise instead (Family.check_fitted does)")


def _check_fitted(model, name: str, what: str, replicates: int) -> None:
    from .plugins.models import MODELS

    degenerate = getattr(model, "degenerate_", None)
    if degenerate is None or np.shape(degenerate) != (replicates,) or np.asarray(degenerate).dtype != bool:
        _fail(
            what,
            f"fit() must set degenerate_, one bool per replicate, shape ({replicates},); got "
            f"{None if degenerate is None else np.shape(degenerate)}",
        )
    declared = MODELS.trait(name, "fitted")
    actual = {k for k in vars(model) if k.endswith("_") and not k.startswith("_")}
    if declared is not None and not actual <= set(declared):
        _fail(
            what,
            f"fit() set {', '.join(sorted(actual - set(declared)))}, which fitted={tuple(declared)!r} does "
            "not declare; list every fitted attribute at registration",
        )


def _check_samples(model, what: str, replicates: int, draws: int, event_shape: tuple) -> None:
    a = np.asarray(model.sample(draws, rng=np.random.default_rng(7)))
    expected = (replicates, draws, *event_shape)
    if a.shape != expected:
        _fail(what, f"sample({draws}) returned shape {a.shape}; expected {expected}: (replicates, records, *event)")
    if a.dtype.kind not in "biuf":
        _fail(what, f"sample() returned dtype {a.dtype}; expected numbers (ints for categories or tokens, else floats)")
    if not np.array_equal(a, model.sample(draws, rng=np.random.default_rng(7))):
        _fail(what, "sample() with the same generator gave different records; draw only from the rng argument")
    gen = np.random.default_rng(8)
    if np.array_equal(model.sample(draws, rng=gen), model.sample(draws, rng=gen)):
        _fail(what, "two successive sample() calls gave the same records; never keep randomness on the object")


def _check_state(model, fresh, name: str, what: str, draws: int) -> None:
    from .plugins.models import MODELS
    from .rundir.columns import load_arrays, save_arrays

    state = model.get_state()
    if not all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values()):
        _fail(what, "get_state() must return numeric numpy arrays (checkpoints are npz or safetensors, never pickle)")
    fmt = MODELS.trait(name, "state_format")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"state.{fmt}"
        save_arrays(path, state)
        restored = fresh.set_state(load_arrays(path))
    if not _same_draws(model, restored, draws):
        _fail(
            what,
            f"a model restored from get_state() (saved as {fmt}) samples differently; get_state() must hold "
            "every fitted array sample() reads",
        )


def _refused_by_check(model, name: str, capability: str) -> bool:
    """Whether the family's ``check`` trait refuses, for ``model``'s settings, the metrics that need ``capability``:
    a capability that depends on the settings (diffusion's ``moments`` with ``network: affine`` only) is then not
    this model's to check."""
    from .errors import ConfigError
    from .plugins.metrics import METRICS
    from .plugins.models import MODELS

    check = MODELS.trait(name, "check")
    needy = [m for m in METRICS if capability in (METRICS.trait(m, "needs") or ())]
    if check is None or not needy:
        return False
    try:
        check(model, metrics=needy, source=None, bias=1.0)
    except ConfigError:
        return True
    return False


def _check_declared_methods(model, name: str, what: str, x: np.ndarray) -> None:
    from .errors import ConfigError
    from .plugins.models import MODELS

    R = x.shape[0]
    if MODELS.provides(name, "moments"):
        try:
            mean, cov = model.moments()
        except ConfigError as err:  # allowed only where the family's check refuses moments for these settings
            if not _refused_by_check(model, name, "moments"):
                _fail(what, f"declares provides='moments', but moments() raised: {err}")
        else:
            d = np.shape(mean)[-1] if np.ndim(mean) == 2 else None
            if d is None or np.shape(cov) != (R, d, d):
                _fail(
                    what, f"moments() returned shapes {np.shape(mean)}, {np.shape(cov)}; expected (R, d) and (R, d, d)"
                )
    if MODELS.provides(name, "log_prob"):
        lp = np.asarray(model.log_prob(x[:, :5]))
        if lp.shape != (R, 5):
            _fail(what, f"log_prob() of {x[:, :5].shape} records returned shape {lp.shape}; expected ({R}, 5)")


# -- metrics ----------------------------------------------------------------------------------------------------------
def check_metric(
    metric: Any,
    *,
    model: dict | str = "gaussian",
    data: dict | str = "gaussian",
    replicates: int = 3,
    n: int = 200,
    draws: int = 100,
) -> None:
    """Check a metric (its registered name or function) on ``model`` fitted to ``data`` (specs the metric can be
    computed on): the family and source declare what its ``needs`` / ``source_needs`` ask; it returns one finite-or-NaN
    float per replicate; the same inputs and seed give the same values; and a metric registered ``from_model=True``
    gives the same values whatever the samples (the exact fast path skips drawing them)."""
    from .plugins.data import SOURCES
    from .plugins.metrics import METRICS, Context, measure
    from .plugins.models import MODELS
    from .plugins.regimes import REAL, Chunk

    name = registered_name(METRICS, metric, "metric")
    what = f"metric {name!r}"
    model_spec = model if isinstance(model, dict) else {"kind": model}
    data_spec = data if isinstance(data, dict) else {"kind": data}
    check_metric_traits(name, what, model_spec["kind"], data_spec["kind"])
    source = SOURCES.build(data_spec, "data")
    x = np.array(source.pool(replicates, n, np.random.default_rng(0)))
    fitted = MODELS.build(model_spec, "model").bind(source, x).fit(x, rng=np.random.default_rng(1))
    heldout = source.pool(1, n, np.random.default_rng(2))[0]

    def value(seed: int) -> np.ndarray:
        samples = fitted.sample(draws, rng=np.random.default_rng(seed))
        ctx = Context(
            fitted,
            samples,
            source,
            heldout,
            1,
            np.random.default_rng(4),
            gen0=fitted,
            train=[Chunk.tagged(x, REAL)],
            gen0_size=n,
        )
        return measure([name], ctx)[name]

    first = value(3)
    if not np.array_equal(first, value(3), equal_nan=True):
        _fail(what, "the same inputs and seed gave different values; draw only from ctx.rng")
    if METRICS.trait(name, "from_model") and not np.array_equal(first, value(9), equal_nan=True):
        _fail(
            what,
            "it is registered from_model=True but its values change with the samples; compute it from "
            "ctx.model alone, or drop from_model",
        )


def check_metric_traits(name: str, what: str, model_kind: str, data_kind: str) -> None:
    """A metric's declared traits: ``needs`` and ``source_needs`` are tuples of names, which ``model_kind`` and
    ``data_kind`` declare (else the metric cannot be checked on them); ``headline`` is None or a rank."""
    from .plugins.data import SOURCES
    from .plugins.metrics import METRICS
    from .plugins.models import MODELS

    traits = METRICS.traits(name)
    for trait, registry, kind in (("needs", MODELS, model_kind), ("source_needs", SOURCES, data_kind)):
        names = traits[trait]
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            _fail(what, f"{trait} must be a tuple of attribute or method names; got {names!r}")
        missing = [n for n in names if not registry.provides(kind, n)]
        if missing:
            _fail(
                what,
                f"it declares {trait}={tuple(names)!r}, but {registry.key} {kind!r} does not provide "
                f"{', '.join(missing)}; check it on a {registry.key} that does",
            )
    rank = traits["headline"]
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int)):
        _fail(what, f"headline must be None or an int rank (1 = told first); got {rank!r}")


# -- regimes ----------------------------------------------------------------------------------------------------------
def check_regime(
    regime: Any, *, params: dict | None = None, replicates: int = 2, samples: int = 12, generations: int = 4
) -> None:
    """Check a regime (its registered name or function) with ``params`` (its ``loop.regime`` settings), given a real
    pool and ``generations`` synthetic chunks: it returns a non-empty list of :class:`~.plugins.regimes.Chunk`, each
    ``x`` ``(R, n, ...)`` with ``origin`` ``(R, n)``, records drawn only from its inputs; the same generator gives the
    same training set; and its traits match what it does: it reads older synthetic generations only if
    ``keeps_history``, draws fresh real data only if ``needs_fresh``, takes ``real_fraction`` exactly if
    ``mixes_real``."""
    from .plugins.regimes import REAL, REGIMES, Chunk, RegimeInputs

    name = registered_name(REGIMES, regime, "regime")
    what = f"regime {name!r}"
    traits = REGIMES.traits(name)
    _, bound = REGIMES.params({"kind": name, **(params or {})}, "loop.regime")
    takes_fraction = "real_fraction" in bound
    if takes_fraction != traits["mixes_real"]:
        _fail(
            what,
            "it takes real_fraction but does not declare mixes_real=True"
            if takes_fraction
            else "it declares mixes_real=True but takes no real_fraction parameter",
        )
    fresh_calls = []

    def fresh(k: int) -> Chunk:
        fresh_calls.append(k)
        return Chunk.tagged(np.full((replicates, k), -0.5), REAL)

    def run() -> list:
        real = Chunk.tagged(np.full((replicates, samples), -1.0), REAL)
        synthetic = [Chunk.tagged(np.full((replicates, samples), float(g)), g) for g in range(generations)]
        inputs = RegimeInputs(real, synthetic, samples, fresh, np.random.default_rng(0))
        return REGIMES.get(name)(inputs, **bound)

    out = run()
    if not isinstance(out, list) or not out or not all(isinstance(c, Chunk) for c in out):
        _fail(what, f"it must return a non-empty list of Chunk; got {type(out).__name__}")
    for c in out:
        if c.x.shape[0] != replicates or c.origin.shape != c.x.shape[:2]:
            _fail(
                what,
                f"a chunk has x {c.x.shape} and origin {c.origin.shape}; expected x (R={replicates}, n, ...) "
                "and origin (R, n)",
            )
    again = run()
    if len(again) != len(out) or not all(np.array_equal(a.x, b.x) for a, b in zip(out, again)):
        _fail(what, "the same generator gave a different training set; draw only from inputs.rng")
    origins = np.concatenate([c.origin.reshape(-1) for c in out])
    older = sorted({int(o) for o in origins if o != REAL and o < generations - 1})
    if older and not traits["keeps_history"]:
        _fail(
            what,
            f"it used synthetic data of generation {older[0]} when generation {generations - 1} was the "
            "newest, but does not declare keeps_history=True: the loop keeps only the newest generation for "
            "it. Register it with keeps_history=True.",
        )
    if fresh_calls and not traits["needs_fresh"]:
        _fail(
            what,
            "it drew fresh real data (inputs.fresh) but does not declare needs_fresh=True, so a fixed-pool "
            "source would not be refused at validation",
        )
