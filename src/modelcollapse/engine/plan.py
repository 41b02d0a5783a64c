"""Validation and planning: a config checked against the plug-in registries, its arms expanded once, every plug-in
resolved to its canonical name and full parameters.

This is the one place where plug-ins meet the config: names are resolved (aliases included) through the registries,
parameters are validated from each plug-in's signature (:mod:`modelcollapse.registry`), and family capabilities are
checked against what the loop will ask of them and what each metric needs, all read from the traits declared at
registration (a family's ``provides``, ``fitted`` and ``check``; a metric's ``needs`` / ``source_needs``; a source's
``can_draw`` and ``provides``). A config that passes :func:`validate` runs; one that does not fails before anything
is written. That includes sizes: a run whose working set or result table cannot fit
in this machine's memory is refused (:func:`check_memory`), and plug-in parameters that name Python code to import
(``model.estimator``, a verifier filter's ``function``: the ``imports`` trait) are refused unless ``trust_code``.

>>> config = validate({"name": "demo", "replicates": 4, "loop": {"generations": 3, "regime": "fully-synthetic"}})
>>> plan = make_plan(config)
>>> [name for name, _ in plan.arms], plan.resolved["loop"]["regime"]
(['demo'], {'kind': 'replace'})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..config import Config, check_design, check_finite, expand_arms, renamed
from ..errors import ConfigError, translate
from ..plugins.data import SOURCES
from ..plugins.filters import FILTERS, build_chain
from ..plugins.metrics import METRICS
from ..plugins.models import MODELS
from ..plugins.regimes import REGIMES, regime_spec
from ..registry import consent, import_plugins
from ..seeding import arm_key
from .next_fit import next_fit_for


@dataclass(frozen=True)
class Plan:
    """A validated run: ``arms`` ``[(name, arm config)]`` in order, and ``resolved``, the config with every default
    filled in and each arm's resolved form under ``arms_resolved`` (what ``config.yaml`` records)."""

    config: Config
    arms: list[tuple[str, Config]]
    resolved: dict[str, Any]

    @property
    def stream_keys(self) -> list[int]:
        """Each arm's random-stream key: the sha256 key of its name, or 0 for the single arm of a config with neither
        ``arms`` nor ``grid`` (so its ``name`` does not change its numbers); see :mod:`modelcollapse.seeding`."""
        if not (self.config.arms or self.config.grid):
            return [0] * len(self.arms)
        return [arm_key(name) for name, _ in self.arms]


def validate(raw: dict[str, Any], *, trust_code: bool = False) -> Config:
    """Validate the top level and every arm (data, model, regime, filter and metric names and parameters).
    ``trust_code``: allow parameters that name Python code to import (see :func:`check_trust`)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of keys; got {type(raw).__name__}.")
    if "suite" in raw:
        raise ConfigError("this config is a suite of runs; run it with `modelcollapse run`, not as a single config.")
    if "task" in raw and "backend" in raw:
        raise ConfigError(
            f"{raw.get('name', 'this config')!r} is a telephone-chain config: run it with `modelcollapse chain`."
        )
    check_finite(raw)
    try:
        config = Config.model_validate(renamed(raw))
    except ValidationError as err:
        raise translate(err, "", Config) from None
    make_plan(config, trust_code=trust_code)
    return config


def make_plan(config: Config, *, trust_code: bool = False) -> Plan:
    """Expand ``config``'s arms, check each, and resolve everything. The plan made by :func:`validate` travels with
    the config, so a validated run expands its arms once."""
    if config._plan is None:
        config._plan = _plan(config, trust_code)
    return config._plan


def _plan(config: Config, trust_code: bool = False) -> Plan:
    if config.plugins:
        consent("plugins", config.plugins, trust_code)
    import_plugins(config.plugins)  # the config's plug-in modules register their names before anything resolves
    arms = expand_arms(config)
    for _, arm in arms:
        check_finite(arm.model_dump())  # a grid or arm value may bring a NaN
        check_trust(arm, trust_code)  # before anything is built: building imports
    for _, arm in arms:
        check_arm(arm)
    check_memory(config, arms)
    if config.anatomy is not None:
        check_design(config.anatomy, [name for name, _ in arms])
    resolved = resolve(config)
    resolved["arms_resolved"] = {name: resolve(arm) for name, arm in arms}
    for arm in resolved["arms_resolved"].values():
        for key in ("arms", "grid", "version"):
            arm.pop(key, None)
    return Plan(config, arms, resolved)


def metric_names(arm: Config) -> list[str]:
    """The arm's ``metrics``, or its family's ``default_metrics``."""
    return list(arm.metrics or MODELS.trait(arm.model["kind"], "default_metrics"))


def able(trait: str) -> str:
    """The families that declare ``provides=(trait, ...)``, quoted and comma-separated (for error messages)."""
    return ", ".join(repr(name) for name in MODELS if MODELS.provides(name, trait))


def check_arm(arm: Config) -> None:
    """Validate the plug-in names and parameters of one arm, and the family's capabilities against the loop."""
    source = SOURCES.build(arm.data, "data")
    model = MODELS.build(arm.model, "model")
    regime, _ = regime_spec(arm.loop)
    if REGIMES.trait(regime, "needs_fresh") and not SOURCES.trait(arm.data["kind"], "can_draw"):
        raise ConfigError(
            f"loop.regime {regime!r} draws fresh real data, which data.kind {arm.data['kind']!r} cannot; "
            "use 'mix' for a fixed pool."
        )
    if arm.loop.fit_to == "population":
        if not MODELS.provides(arm.model["kind"], "fit_population"):
            raise ConfigError(
                f"loop.fit_to 'population' fits each generation to the previous model's population, which model.kind "
                f"{arm.model['kind']!r} cannot do; families that can: {able('fit_population')}."
            )
        if regime != "replace":
            raise ConfigError(f"loop.fit_to 'population' needs loop.regime 'replace'; got {regime!r}.")
        if arm.loop.bias != 1.0 and not MODELS.provides(arm.model["kind"], "fit_population_bias"):
            raise ConfigError(
                f"loop.bias {arm.loop.bias!r} under loop.fit_to 'population' needs a family whose fit_population() "
                f"accepts bias=; model.kind {arm.model['kind']!r} does not. Use loop.fit_to: samples."
            )
    names = metric_names(arm)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # a second listing would be dropped silently: say so
        raise ConfigError(f"metrics lists {', '.join(map(repr, repeated))} more than once; name each metric once.")
    for name in names:
        METRICS.get(name, "metrics")
        check_metric(name, arm)
    check_bias(arm.loop.bias, arm.model["kind"])
    check = MODELS.trait(arm.model["kind"], "check")
    if check:  # capabilities that depend on the family's settings (sklearn's estimator, an LM's decoding)
        check(model, metrics=names, source=source, bias=arm.loop.bias)
    build_chain(arm.loop.filters, arm.model)
    check_weights(arm)
    next_fit_for(arm, model, source, names)  # refuses next_fit: direct where invalid


def check_weights(arm: Config) -> None:
    """``loop.weights`` needs a family whose fit takes record weights, and shares that sum to 1."""
    weights = arm.loop.weights
    if weights is None:
        return
    if weights.synthetic is not None and abs(weights.real + weights.synthetic - 1.0) > 1e-9:
        raise ConfigError(
            f"loop.weights.real {weights.real!r} and loop.weights.synthetic {weights.synthetic!r} must sum to 1 "
            "(leave synthetic out: it defaults to 1 − real)."
        )
    if not MODELS.provides(arm.model["kind"], "fit_weighted"):
        raise ConfigError(
            f"loop.weights needs a family whose fit takes record weights; model.kind {arm.model['kind']!r} "
            f"cannot. Families that can: {able('fit_weighted')}; or remove loop.weights."
        )
    if arm.loop.fit_to == "population":
        raise ConfigError(
            "loop.weights weight a fit to records; loop.fit_to 'population' fits populations. Use loop.fit_to: samples."
        )


def check_metric(name: str, arm: Config) -> None:
    """A metric's ``needs`` (what the fitted family must provide) and ``source_needs`` (what the data source must
    provide), declared at its registration, against what this arm's family and source declare at theirs."""
    sides = (("model", MODELS, arm.model["kind"], "needs"), ("data", SOURCES, arm.data["kind"], "source_needs"))
    for owner, registry, kind, trait in sides:
        missing = [n for n in METRICS.trait(name, trait) if not registry.provides(kind, n)]
        if missing:
            able = sorted(m for m in registry if all(registry.provides(m, n) for n in missing))
            raise ConfigError(
                f"metric {name!r} needs {owner}.kind to provide {', '.join(missing)}, "
                f"which {owner}.kind {kind!r} does not; "
                f"remove it from metrics, or use a {owner}.kind that does"
                + (f": {', '.join(map(repr, able))}." if able else ".")
            )


def check_trust(arm: Config, trust_code: bool) -> None:
    """Refuse plug-in parameters that name Python code to import (a plug-in's ``imports`` trait lists them) unless
    ``trust_code`` (the one gate, :func:`~modelcollapse.registry.consent`): a config from someone else would otherwise
    run any installed module's code, at validation. A value equal to the plug-in's own default is modelcollapse's
    choice, not the config's, and needs no trust."""
    if trust_code:
        return
    from ..registry import params_model

    specs = [("model", MODELS, arm.model)] + [
        (f"loop.filters[{i}]", FILTERS, f) for i, f in enumerate(arm.loop.filters)
    ]
    for key, registry, spec in specs:
        if not isinstance(spec, dict) or spec.get("kind") not in registry:
            continue  # named and checked by check_arm
        name = registry.canonical(spec["kind"])
        fields = params_model(registry.get(name)).model_fields
        for param in registry.trait(name, "imports", ()):
            named = param in spec and isinstance(spec[param], str)  # an object passed in Python is already imported
            if named and (param not in fields or fields[param].is_required() or spec[param] != fields[param].default):
                consent(f"{key}.{param}", spec[param], trust_code)


def physical_memory() -> int:
    """This machine's physical memory in bytes (``os.sysconf`` page size × physical pages; 0 if unknown)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


# One tidy metrics row in Arrow memory: replicate and generation (int64), value (float64), arm and metric codes (int32).
# Consolidation streams the table to disk, but the report and `show` read it back whole: a table that cannot be read
# back is a run that cannot be looked at.
ROW_BYTES = 32
RECORD_COPIES = 4  # real pool, training set, synthetic draw and a filter/metric copy, per record and replicate


def memory_estimate(arm: Config, metrics: int, units: int) -> tuple[int, int]:
    """Lower bounds in bytes of what one arm needs at once: (one unit's records: ``shard_size`` replicates ×
    records a generation × record size × copies, every generation's for regimes that keep history; the arm's rows of
    the metrics table read back whole, plus its ``units`` unit descriptors). Record size is 8 bytes × ``data.dim`` (1
    if unknown)."""
    loop, source = arm.loop, SOURCES.build(arm.data, "data")
    dim = getattr(source, "dim", 1)
    dim = dim if isinstance(dim, int) and dim > 0 else 1
    regime, params = regime_spec(loop)
    records = max(loop.samples, loop.real_samples or 0, loop.n_synthetic or 0, int(params.get("n_real") or 0))
    copies = loop.generations + RECORD_COPIES if REGIMES.trait(regime, "keeps_history") else RECORD_COPIES
    working = min(arm.replicates, arm.shard_size) * records * dim * 8 * copies
    table = arm.replicates * loop.generations * (metrics + 2) * ROW_BYTES + units * 256
    return working, table


def check_memory(config: Config, arms: list[tuple[str, Config]], memory: int | None = None) -> None:
    """Refuse a run that cannot fit in ``memory`` (default: this machine's), before anything is allocated."""
    memory = physical_memory() if memory is None else memory
    if memory <= 0:
        return
    total_table = 0
    for name, arm in arms:
        units = -(-arm.replicates // arm.shard_size)
        working, table = memory_estimate(arm, len(metric_names(arm)), units)
        total_table += table
        if working > memory:
            raise ConfigError(
                f"arm {name!r} needs about {working / 2**30:.3g} GiB at once (shard_size {arm.shard_size} × "
                f"{arm.loop.samples} records a generation × record size), more than this machine's "
                f"{memory / 2**30:.3g} GiB; lower shard_size or loop.samples."
            )
    if total_table > memory:
        raise ConfigError(
            f"the results table would need about {total_table / 2**30:.3g} GiB (replicates × generations × metrics), "
            f"more than this machine's {memory / 2**30:.3g} GiB; lower replicates or loop.generations."
        )


def check_bias(bias: float, kind: str) -> None:
    """λ ≠ 1 needs a family that declares ``provides=("bias", ...)`` (its ``sample`` takes ``bias=``); a family whose λ
    needs some of its own settings refuses the rest in its ``check`` trait."""
    if bias != 1.0 and not MODELS.provides(kind, "bias"):
        raise ConfigError(
            f"loop.bias {bias!r} needs a family whose sample() accepts bias=; model.kind {kind!r} does not. "
            "Use loop.bias: 1.0 (unbiased) or a family that supports it."
        )


def resolve(config: Config) -> dict[str, Any]:
    """The config with every default filled in and every plug-in under its canonical name, as in ``config.yaml``."""
    from ..version import __version__

    out = config.model_dump()
    source, model = (
        SOURCES.build(config.data, "data"),
        MODELS.build(config.model, "model"),
    )  # once each (a file source hashes its file)
    out["data"] = SOURCES.resolve(config.data, "data", built=source)
    out["model"] = MODELS.resolve(config.model, "model", built=model)
    name, params = regime_spec(config.loop)
    out["loop"]["regime"] = {"kind": name, **params}
    for key in ("real_fraction", "n_real"):  # recorded once, among the regime's parameters
        out["loop"].pop(key, None)
    if out["loop"].get("weights") and out["loop"]["weights"]["synthetic"] is None:
        out["loop"]["weights"]["synthetic"] = 1.0 - out["loop"]["weights"]["real"]
    if out["metrics"] is None:
        out["metrics"] = metric_names(config)
    if "next_fit" in out["model"]:  # record the choice 'auto' made
        out["model"]["next_fit"] = next_fit_for(config, model, source, out["metrics"])
    out["version"] = __version__
    return out
