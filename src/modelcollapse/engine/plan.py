"""Validation and planning: a config checked against the plug-in registries, its arms expanded once, every plug-in
resolved to its canonical name and full parameters.

This is the one place where plug-ins meet the config: names are resolved (aliases included) through the registries,
parameters are validated from each plug-in's signature (:mod:`modelcollapse.registry`), and family capabilities are
checked against what the loop will ask of them (:mod:`modelcollapse.plugins.models.base`'s protocols). A config that
passes :func:`validate` runs; one that does not fails before anything is written.

>>> config = validate({"name": "demo", "replicates": 4, "loop": {"generations": 3, "regime": "fully-synthetic"}})
>>> plan = make_plan(config)
>>> [name for name, _ in plan.arms], plan.resolved["loop"]["regime"]
(['demo'], {'kind': 'replace'})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..config import Config, check_design, expand_arms
from ..errors import ConfigError, translate
from ..registry import import_plugins
from ..plugins.data import SOURCES
from ..plugins.filters import build_chain
from ..plugins.metrics import METRICS
from ..plugins.models import MODELS
from ..plugins.models.base import FitsPopulation, capable
from ..plugins.regimes import REGIMES, regime_spec
from .exact import sampler_for


@dataclass(frozen=True)
class Plan:
    """A validated run: ``arms`` ``[(name, arm config)]`` in order, and ``resolved``, the config with every default
    filled in and each arm's resolved form under ``arms_resolved`` (what ``config.yaml`` records)."""

    config: Config
    arms: list[tuple[str, Config]]
    resolved: dict[str, Any]


def validate(raw: dict[str, Any]) -> Config:
    """Validate the top level and every arm (data, model, regime, filter and metric names and parameters)."""
    if "suite" in raw:
        raise ConfigError("this config is a suite of runs; run it with `modelcollapse run`, not as a single config.")
    if "task" in raw and "backend" in raw:
        raise ConfigError(f"{raw.get('name', 'this config')!r} is a telephone-chain config: run it with `modelcollapse chain`.")
    try:
        config = Config.model_validate(raw)
    except ValidationError as err:
        raise translate(err, "", Config) from None
    make_plan(config)
    return config


def make_plan(config: Config) -> Plan:
    """Expand ``config``'s arms, check each, and resolve everything. The plan made by :func:`validate` travels with
    the config, so a validated run expands its arms once."""
    if config._plan is None:
        config._plan = _plan(config)
    return config._plan


def _plan(config: Config) -> Plan:
    import_plugins(config.plugins)  # the config's plug-in modules register their names before anything resolves
    arms = expand_arms(config)
    for _, arm in arms:
        check_arm(arm)
    if config.anatomy is not None:
        check_design(config.anatomy, [name for name, _ in arms])
    resolved = resolve(config)
    resolved["arms_resolved"] = {name: resolve(arm) for name, arm in arms}
    for arm in resolved["arms_resolved"].values():
        for key in ("arms", "grid", "version"):
            arm.pop(key, None)
    return Plan(config, arms, resolved)


def metric_names(arm: Config, model) -> list[str]:
    return list(arm.metrics or model.default_metrics)


def check_arm(arm: Config) -> None:
    """Validate the plug-in names and parameters of one arm, and the family's capabilities against the loop."""
    source = SOURCES.build(arm.data, "data")
    model = MODELS.build(arm.model, "model")
    regime, _ = regime_spec(arm.loop)
    if REGIMES.trait(regime, "needs_fresh") and not source.can_draw:
        raise ConfigError(
            f"loop.regime {regime!r} draws fresh real data, which data.kind {arm.data['kind']!r} cannot; "
            "use 'mix' for a fixed pool."
        )
    if arm.loop.sampling == "exact":
        if not capable(model, FitsPopulation):
            can = sorted(name for name in MODELS if capable(MODELS.get(name), FitsPopulation))
            raise ConfigError(
                f"loop.sampling 'exact' fits each generation to the previous model's population, which model.kind "
                f"{arm.model['kind']!r} cannot do; families that can: {', '.join(map(repr, can))}."
            )
        if regime != "replace":
            raise ConfigError(f"loop.sampling 'exact' needs loop.regime 'replace'; got {regime!r}.")
    for name in metric_names(arm, model):
        METRICS.get(name, "metrics")
    check_bias(model, arm.loop.bias, arm.model["kind"])
    if hasattr(model, "check_metrics"):  # a family whose capabilities depend on its settings (sklearn's estimator)
        model.check_metrics(metric_names(arm, model), source)
    build_chain(arm.loop.filters, arm.model)
    sampler_for(arm, model, source, metric_names(arm, model))  # refuses sampler: exact where invalid


def check_bias(model, bias: float, kind: str) -> None:
    """λ ≠ 1 needs a family whose ``sample`` takes ``bias=`` (and whose own ``check_bias`` accepts it)."""
    from ..plugins.models.base import SamplesWithBias

    if bias != 1.0 and not capable(model, SamplesWithBias):
        raise ConfigError(
            f"loop.bias {bias!r} needs a family whose sample() accepts bias=; model.kind {kind!r} does not. "
            "Use loop.bias: 1.0 (unbiased) or a family that supports it."
        )
    if hasattr(model, "check_bias"):  # a family whose λ needs some of its own settings (LMs: decoding: sample)
        model.check_bias(bias)


def resolve(config: Config) -> dict[str, Any]:
    """The config with every default filled in and every plug-in under its canonical name, as in ``config.yaml``."""
    from .. import __version__

    out = config.model_dump()
    out["data"] = SOURCES.resolve(config.data, "data")
    out["model"] = MODELS.resolve(config.model, "model")
    name, params = regime_spec(config.loop)
    out["loop"]["regime"] = {"kind": name, **params}
    for legacy in ("real_fraction", "n_real"):  # folded into the regime's parameters
        out["loop"].pop(legacy, None)
    model = MODELS.build(config.model, "model")
    if out["metrics"] is None:
        out["metrics"] = list(model.default_metrics)
    if "sampler" in out["model"]:  # record the choice 'auto' made
        out["model"]["sampler"] = sampler_for(config, model, SOURCES.build(config.data, "data"), out["metrics"])
    out["version"] = __version__
    return out
