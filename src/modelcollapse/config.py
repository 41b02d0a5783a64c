"""Typed, validated configuration: the one place for defaults.

A config is YAML with the keys ``name``, ``seed``, ``replicates``, ``shard_size``, ``data`` (``kind`` and its
parameters), ``model`` (``kind`` and its parameters), ``loop`` (``generations``, ``samples``, ``regime``,
``real_fraction``, ...), ``metrics`` and ``arms`` (named variants, each a mapping of dotted keys to values, compared in
one run). ``--set a.b=v`` overrides go through the same validation. Every error is a :class:`ConfigError` whose one
line names the key, what is accepted and what was received.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from .errors import ConfigError, choice_error, did_you_mean

PRESETS_DIR = Path(__file__).parent / "presets"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoopConfig(_Strict):
    generations: int = Field(10, ge=1, description="generations fitted, numbered 0..G-1")
    samples: int = Field(100, ge=1, description="synthetic samples drawn per generation (the training-set size)")
    real_samples: int | None = Field(None, ge=1, description="real records for generation 0; default loop.samples")
    regime: str = "replace"
    real_fraction: float = Field(0.0, ge=0.0, le=1.0, description="share of real records (mix, fresh)")
    on_degenerate: Literal["continue", "stop"] = "continue"
    heldout: int = Field(2000, ge=1, description="held-out real records for likelihood and sample metrics")
    n_real: int | None = Field(None, ge=0, description="real records per generation (mix/fresh); overrides real_fraction")
    n_synthetic: int | None = Field(None, ge=1, description="synthetic records drawn and trained on per generation")
    bias: float = Field(1.0, gt=0.0, description="sampling bias λ passed to the family's sample(); 1 = unbiased")
    filters: list[dict[str, Any]] = Field(default_factory=list, description="curation filters, applied in order")
    sampling: Literal["finite", "exact"] = Field(
        "finite", description="exact: generation g > 0 is fitted to the previous model's population, not to samples of it"
    )


class AlarmConfig(_Strict):
    diversity_drop: float = Field(0.5, gt=0.0, lt=1.0, description="relative fall of a diversity metric vs generation 0")
    likelihood_rise: float = Field(1.0, gt=0.0, description="rise of nll_real / perplexity vs generation 0, in nats")
    diversity_metrics: list[str] = ["distinct_2", "recall", "support_size", "tail_mass"]
    likelihood_metrics: list[str] = ["nll_real", "test_perplexity"]


class SweepConfig(_Strict):
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="default grid of `modelcollapse sweep`")
    metric: str | None = Field(None, description="metric of the sweep heatmap (final generation, median)")


class Config(_Strict):
    name: str = "run"
    description: str = ""
    seed: int = Field(0, ge=0)
    replicates: int = Field(100, ge=1)
    shard_size: int = Field(1000, ge=1, description="replicates per independent random stream and executor task")
    data: dict[str, Any] = Field(default_factory=lambda: {"kind": "gaussian"})
    model: dict[str, Any] = Field(default_factory=lambda: {"kind": "gaussian"})
    loop: LoopConfig = Field(default_factory=LoopConfig)
    metrics: list[str] | None = None
    arms: dict[str, dict[str, Any]] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    alarm: AlarmConfig = Field(default_factory=AlarmConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    anatomy: dict[str, Any] | None = Field(None, description="factorial error-source design over the arms (anatomy.py)")


def _describe(err: dict) -> str:
    kind, ctx = err["type"], err.get("ctx", {})
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return f"must be {sign} {bound}"
    return err["msg"].lower().replace("input should be", "must be")


def fields_at(model: type[BaseModel], path: tuple) -> list[str]:
    """The field names of the (nested) pydantic model found by following ``path`` from ``model``."""
    for part in path:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def translate(err: ValidationError, prefix: str, fields: list[str] | type[BaseModel]) -> ConfigError:
    """Turn pydantic's first error into one line: key, accepted values, value received, did-you-mean.

    ``fields``: the accepted keys at the top, or the model class (nested sections are then looked up)."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    key = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
    if not isinstance(fields, list):
        fields = fields_at(fields, tuple(first["loc"][:-1])) if len(first["loc"]) > 1 else list(fields.model_fields) + ["suite"]
    if first["type"] == "extra_forbidden":
        fields = _fields_at(first["loc"][:-1], fields)
        accepted = ", ".join(sorted(fields))
        return ConfigError(
            f"unknown key {key!r}; accepted keys here: {accepted}.{did_you_mean(first['loc'][-1], fields)}"
        )
    return ConfigError(f"{key} {_describe(first)}; got {first.get('input')!r}.")


def _fields_at(loc: tuple, top: list[str]) -> list[str]:
    """The accepted keys of the section at ``loc`` (``('loop',)`` -> LoopConfig's fields), else ``top``."""
    sections = {"loop": LoopConfig, "alarm": AlarmConfig, "sweep": SweepConfig}
    if len(loc) == 1 and loc[0] in sections:
        return list(sections[loc[0]].model_fields)
    return top


@functools.cache
def _params_model(cls: type) -> type[BaseModel]:
    """A pydantic model built from ``cls.__init__``'s keyword parameters, their annotations and defaults."""
    fields = {}
    hints = inspect.get_annotations(cls.__init__, eval_str=True)
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        default = ... if p.default is p.empty else p.default
        fields[name] = (hints.get(name, Any), default)
    return create_model(f"{cls.__name__}Params", __config__=ConfigDict(extra="forbid"), **fields)


def build(registry, spec: dict[str, Any], key: str):
    """Build the plug-in ``spec['kind']`` from ``registry`` with the validated parameters in ``spec``."""
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigError(f"{key}.kind is required; accepted: {', '.join(registry.names())}; got {spec!r}.")
    params = {k: v for k, v in spec.items() if k != "kind"}
    cls = registry.get(spec["kind"], f"{key}.kind")
    model = _params_model(cls)
    try:
        validated = model.model_validate(params)
    except ValidationError as err:
        raise translate(err, key, list(model.model_fields)) from None
    return cls(**{k: getattr(validated, k) for k in model.model_fields})


def resolved_params(registry, spec: dict[str, Any], key: str) -> dict[str, Any]:
    """``spec`` with every default filled in, for the resolved config written beside the results."""
    obj = build(registry, spec, key)
    cls = type(obj)
    return {"kind": spec["kind"], **{k: _plain(getattr(obj, k)) for k in _params_model(cls).model_fields}}


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def parse_value(text: str) -> Any:
    """A ``--set`` value: YAML scalar or flow collection (``3``, ``0.1``, ``true``, ``[1, 2]``, ``replace``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def set_dotted(tree: dict, dotted: str, value: Any) -> dict:
    """Return a copy of ``tree`` with ``dotted`` (``loop.samples``) set to ``value``."""
    out = dict(tree)
    head, _, rest = dotted.partition(".")
    if not head:
        raise ConfigError(f"--set needs key=value with a non-empty key; got {dotted!r}.")
    if rest:
        sub = out.get(head) or {}
        if not isinstance(sub, dict):
            raise ConfigError(f"{head} is not a section, so {dotted!r} cannot be set.")
        out[head] = set_dotted(sub, rest, value)
    else:
        out[head] = value
    return out


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set key=value`` strings to a raw config."""
    for item in overrides:
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"--set needs key=value; got {item!r}.")
        raw = set_dotted(raw, key.strip(), parse_value(value))
    return raw


def load_raw(source: str) -> dict[str, Any]:
    """Read a config file, or a preset by name."""
    path = Path(source)
    if not path.exists() and not source.endswith((".yaml", ".yml")):
        path = PRESETS_DIR / f"{source}.yaml"
        if not path.exists():
            raise choice_error("CONFIG", source, preset_names(), "a YAML file or a preset:")
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read config {source!r}: {err.strerror}.") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config {source!r} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {source!r} must be a mapping of keys; got {type(raw).__name__}.")
    return raw


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def validate(raw: dict[str, Any]) -> Config:
    """Validate the top level and every arm (data, model, regime and metric names included)."""
    if "suite" in raw:
        raise ConfigError("this config is a suite of runs; run it with `modelcollapse run`, not as a single config.")
    if "task" in raw and "backend" in raw:
        raise ConfigError(f"{raw.get('name', 'this config')!r} is a telephone-chain config: run it with `modelcollapse chain`.")
    try:
        config = Config.model_validate(raw)
    except ValidationError as err:
        raise translate(err, "", Config) from None
    arms = expand_arms(config)
    for _, arm in arms:
        check_arm(arm)
    if config.anatomy is not None:
        from .analysis.anatomy import check_design

        check_design(config.anatomy, [name for name, _ in arms])
    return config


def expand_arms(config: Config) -> list[tuple[str, Config]]:
    """The named variants of a config: explicit ``arms``, times the product of ``grid`` values.

    Each arm is a full config (its own ``arms`` and ``grid`` emptied). A config with neither is one arm named after
    ``name``.
    """
    base = config.model_dump()
    base["arms"], base["grid"] = {}, {}
    explicit = list(config.arms.items()) or [(None, {})]
    keys = list(config.grid)
    combos = list(itertools.product(*(config.grid[k] for k in keys))) or [()]
    arms = []
    for (arm_name, overrides), combo in itertools.product(explicit, combos):
        tree = base
        for dotted, value in list(overrides.items()) + list(zip(keys, combo)):
            if dotted.split(".")[0] in {"arms", "grid", "seed"}:
                raise ConfigError(f"arms and grid may not set {dotted!r}: one run shares one seed and one arm list.")
            tree = set_dotted(tree, dotted, value)
        parts = ([arm_name] if arm_name else []) + [f"{k}={v}" for k, v in zip(keys, combo)]
        name = ",".join(parts) or config.name
        try:
            arms.append((name, Config.model_validate(tree)))
        except ValidationError as err:
            raise translate(err, "", Config) from None
    return arms


def check_arm(arm: Config) -> None:
    """Validate the plug-in names and parameters of one arm."""
    from .plugins.data import SOURCES
    from .engine.exact import sampler_for
    from .plugins.metrics import METRICS
    from .plugins.models import MODELS
    from .plugins.regimes import REGIMES

    source = build(SOURCES, arm.data, "data")
    model = build(MODELS, arm.model, "model")
    regime = REGIMES.get(arm.loop.regime, "loop.regime")
    if getattr(regime, "needs_fresh", False) and not source.can_draw:
        raise ConfigError(
            f"loop.regime {arm.loop.regime!r} draws fresh real data, which data.kind {arm.data['kind']!r} cannot; "
            "use 'mix' for a fixed pool."
        )
    if arm.loop.sampling == "exact":
        can = sorted(name for name in MODELS if hasattr(MODELS.get(name), "fit_population"))
        if not hasattr(model, "fit_population"):
            raise ConfigError(
                f"loop.sampling 'exact' fits each generation to the previous model's population, which model.kind "
                f"{arm.model['kind']!r} cannot do; families that can: {', '.join(map(repr, can))}."
            )
        if arm.loop.regime != "replace":
            raise ConfigError(f"loop.sampling 'exact' needs loop.regime 'replace'; got {arm.loop.regime!r}.")
    for name in arm.metrics or model.default_metrics:
        METRICS.get(name, "metrics")
    check_bias(model, arm.loop.bias, arm.model["kind"])
    check_counts(arm)
    from .plugins.filters import build_chain

    build_chain(arm.loop.filters, arm.model)
    sampler_for(arm, model, source, list(arm.metrics or model.default_metrics))  # refuses sampler: exact where invalid


def accepts_bias(model) -> bool:
    """Whether a family's ``sample`` takes the ``bias`` keyword (see ``models/__init__``)."""
    return "bias" in inspect.signature(model.sample).parameters


def check_bias(model, bias: float, kind: str) -> None:
    if bias != 1.0 and not accepts_bias(model):
        raise ConfigError(
            f"loop.bias {bias!r} needs a family whose sample() accepts bias=; model.kind {kind!r} does not. "
            "Use loop.bias: 1.0 (unbiased) or a family that supports it."
        )
    if hasattr(model, "check_bias"):  # a family whose λ needs some of its own settings (LMs: decoding: sample)
        model.check_bias(bias)


def check_counts(arm: Config) -> None:
    """``loop.n_real`` needs a regime that mixes in real data (the fixed pool's size is checked when the run starts)."""
    from .plugins.regimes import REGIMES

    loop = arm.loop
    regime = REGIMES.get(loop.regime, "loop.regime")
    if loop.n_real is not None and not getattr(regime, "mixes_real", False):
        mixing = sorted(n for n in REGIMES.names() if getattr(REGIMES.get(n), "mixes_real", False))
        raise ConfigError(f"loop.n_real is used only by the regimes {', '.join(map(repr, mixing))}; got loop.regime {loop.regime!r}.")


def resolve(config: Config) -> dict[str, Any]:
    """The config with every default filled in, as written to ``config.yaml``."""
    from . import __version__
    from .plugins.data import SOURCES
    from .plugins.models import MODELS

    out = config.model_dump()
    out["data"] = resolved_params(SOURCES, config.data, "data")
    out["model"] = resolved_params(MODELS, config.model, "model")
    if out["metrics"] is None:
        out["metrics"] = list(build(MODELS, config.model, "model").default_metrics)
    if "sampler" in out["model"]:  # record the choice 'auto' made
        from .engine.exact import sampler_for

        source, model = build(SOURCES, config.data, "data"), build(MODELS, config.model, "model")
        out["model"]["sampler"] = sampler_for(config, model, source, out["metrics"])
    out["version"] = __version__
    return out
