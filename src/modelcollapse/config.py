"""Typed, validated configuration: the one place for defaults.

A config is YAML with the keys ``name``, ``seed``, ``replicates``, ``shard_size``, ``data`` (``kind`` and its
parameters), ``model`` (``kind`` and its parameters), ``loop`` (``generations``, ``samples``, ``regime``,
``real_fraction``, ...), ``metrics`` and ``arms`` (named variants, each a mapping of dotted keys to values, compared in
one run). ``--set a.b=v`` overrides go through the same validation. Every error is a :class:`ConfigError` whose one
line names the key, what is accepted and what was received.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from .errors import ConfigError, choice_error, translate

PRESETS_DIR = Path(__file__).parent / "presets"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoopConfig(_Strict):
    generations: int = Field(10, ge=1, description="generations fitted, numbered 0..G-1")
    samples: int = Field(100, ge=1, description="synthetic samples drawn per generation (the training-set size)")
    real_samples: int | None = Field(None, ge=1, description="real records for generation 0; default loop.samples")
    regime: str | dict[str, Any] = Field(
        "replace", description="a regime name, or {kind: NAME, **its parameters} (see plugins/regimes.py)"
    )
    real_fraction: float = Field(0.0, ge=0.0, le=1.0, description="alias of the mixing regimes' real_fraction")
    on_degenerate: Literal["continue", "stop"] = "continue"
    heldout: int = Field(2000, ge=1, description="held-out real records for likelihood and sample metrics")
    n_real: int | None = Field(None, ge=0, description="alias of the mixing regimes' n_real (overrides real_fraction)")
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
    plugins: list[str] = Field(
        default_factory=list, description="plug-in modules or .py files imported before validation (their code runs)"
    )
    _plan: Any = PrivateAttr(None)  # the engine's plan of this config, made once (engine/plan.py)


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


# -- the anatomy design (arms named factor=level, one per cell of a 2^k factorial) --------------------------------
STATISTICS = ("mean", "median")


def parse_arm(name: str) -> dict[str, str]:
    """``"sampling=exact,family=matched"`` -> ``{"sampling": "exact", "family": "matched"}`` (parts without '=' are
    ignored)."""
    return dict(part.split("=", 1) for part in name.split(",") if "=" in part)


def check_design(anatomy: dict[str, Any], arm_names: list[str]) -> dict[str, tuple[int, ...]]:
    """Validate an ``anatomy`` config against the run's arm names; return {arm: cell levels}. Every one of the 2^k
    cells must be exactly one arm; arms that name no factor are left out of the anatomy."""
    if not isinstance(anatomy, dict) or set(anatomy) - {"metric", "factors", "statistic"} or "factors" not in anatomy:
        raise ConfigError(f"anatomy must be a mapping with keys 'factors' and optionally 'metric', 'statistic'; got {anatomy!r}.")
    if anatomy.get("statistic", "mean") not in STATISTICS:
        raise ConfigError(f"anatomy.statistic must be one of {', '.join(map(repr, STATISTICS))}; got {anatomy['statistic']!r}.")
    factors = anatomy["factors"]
    if not isinstance(factors, dict) or not factors or any(
        not isinstance(v, list) or len(v) != 2 or v[0] == v[1] for v in factors.values()
    ):
        raise ConfigError(
            "anatomy.factors must map each factor to [reference level, error level], two different names; "
            f"got {factors!r}."
        )
    cells: dict[str, tuple[int, ...]] = {}
    for name in arm_names:
        parsed = parse_arm(name)
        if not set(parsed) & set(factors):
            continue
        try:
            cells[name] = tuple(factors[f].index(str(parsed[f])) for f in factors)
        except (KeyError, ValueError):
            raise ConfigError(
                f"arm {name!r} must set every anatomy factor to one of its levels, as "
                + ",".join(f"{f}={'|'.join(v)}" for f, v in factors.items())
                + "."
            ) from None
    missing = [c for c in itertools.product((0, 1), repeat=len(factors)) if c not in cells.values()]
    if missing or len(set(cells.values())) != len(cells):
        wanted = [",".join(f"{f}={factors[f][i]}" for f, i in zip(factors, c)) for c in missing]
        raise ConfigError(f"anatomy needs exactly one arm per cell of the {2 ** len(factors)}-cell design; missing: {wanted or 'none'} (or a cell is repeated).")
    return cells
