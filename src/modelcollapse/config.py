"""Typed, validated configuration: the one place for defaults.

A config is YAML with the keys ``name``, ``seed``, ``replicates``, ``shard_size``, ``data`` (``kind`` and its
parameters), ``model`` (``kind`` and its parameters), ``loop`` (``generations``, ``samples``, ``regime``,
``real_fraction``, ...), ``metrics`` and ``arms`` (named variants, each a mapping of dotted keys to values, compared in
one run). ``--set a.b=v`` overrides go through the same validation. Every error is a :class:`ConfigError` whose one
line names the key, what is accepted and what was received.

Validation is strict, so that a config that validates runs: numbers must be finite (NaN and infinities are refused
in every numeric key, plug-in parameters included), ``true`` is not an integer and ``1`` is not a boolean, ``grid``
values and ``metrics`` are non-empty lists, and the YAML itself may not repeat a key or use anchors and aliases
(:class:`StrictLoader`: an alias bomb fails at once instead of expanding).
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from .errors import ConfigError, choice_error, translate

PRESETS_DIR = Path(__file__).parent / "presets"


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys and anchors/aliases (so also ``<<`` merge keys): a config is a
    plain tree. Refusing aliases when they are composed, before anything is expanded, makes an alias bomb fail at once.

    >>> yaml.load("a: 1\\nb: [2, 3]", StrictLoader)
    {'a': 1, 'b': [2, 3]}
    >>> yaml.load("a: 1\\na: 2", StrictLoader)
    Traceback (most recent call last):
    ...
    yaml.constructor.ConstructorError: duplicate key 'a' (line 2)
    """

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                f"YAML aliases (*{event.anchor}, line {event.start_mark.line + 1}) are not accepted in configs; "
                "write the value out"
            )
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                f"YAML anchors (&{event.anchor}, line {event.start_mark.line + 1}) are not accepted in configs; "
                "write the value out"
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, what: str) -> Any:
    """Parse ``text`` with :class:`StrictLoader`; a one-line ConfigError naming ``what`` otherwise."""
    try:
        return yaml.load(text, StrictLoader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or getattr(err, "context", None) or str(err).splitlines()[0]
        mark = getattr(err, "problem_mark", None)
        where = (
            f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None and "line" not in problem else ""
        )
        raise ConfigError(f"{what} is not valid YAML: {problem}{where}.") from None
    except RecursionError:
        raise ConfigError(f"{what} is not valid YAML: nested too deeply.") from None


def non_finite(tree: Any, key: str = "") -> tuple[str, float] | None:
    """``(dotted key, value)`` of the first NaN or infinite number in ``tree`` (mappings and lists walked), or None."""
    if isinstance(tree, float) and not math.isfinite(tree):
        return key or "<root>", tree
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(tree))
    else:
        return None
    for k, v in items:
        found = non_finite(v, f"{key}.{k}" if key else str(k))
        if found:
            return found
    return None


def check_finite(tree: Any) -> None:
    """ConfigError naming the first NaN or infinite number anywhere in a raw config (plug-in parameters included)."""
    found = non_finite(tree)
    if found:
        raise ConfigError(f"{found[0]} must be a finite number; got {found[1]!r}. NaN and infinities are not accepted.")


class _Strict(BaseModel):
    # strict: no coercion (true is not 1, "3" is not 3); allow_inf_nan: numbers are finite
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


NonEmptyList = Annotated[list[Any], Field(min_length=1)]


class WeightsConfig(_Strict):
    """``loop.weights``: how a weighted fit shares its weight between provenances. Real records together carry
    ``real``, synthetic ones ``synthetic`` (default 1 − ``real``; given, the two must sum to 1), evenly within each;
    a training set of one kind gives it all the weight. Only families whose fit takes record weights accept it."""

    real: float = Field(ge=0.0, le=1.0, description="total weight of the real records in each fit")
    synthetic: float | None = Field(
        None, ge=0.0, le=1.0, description="total weight of the synthetic records (1 − real)"
    )


class LoopConfig(_Strict):
    generations: int = Field(10, ge=1, description="generations fitted, numbered 0..G-1")
    samples: int = Field(100, ge=1, description="synthetic samples drawn per generation (the training-set size)")
    real_samples: int | None = Field(None, ge=1, description="real records for generation 0; default loop.samples")
    regime: str | dict[str, Any] = Field(
        "replace", description="a regime name, or {kind: NAME, **its parameters} (see plugins/regimes.py)"
    )
    real_fraction: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of each training set drawn from real data "
        "under a mixing regime (mix, fresh; recorded as loop.regime.real_fraction)",
    )
    on_degenerate: Literal["continue", "stop"] = "continue"
    heldout: int = Field(2000, ge=1, description="held-out real records for likelihood and sample metrics")
    n_real: int | None = Field(
        None,
        ge=0,
        description="real records in each training set under a mixing regime "
        "(overrides real_fraction; recorded as loop.regime.n_real)",
    )
    n_synthetic: int | None = Field(None, ge=1, description="synthetic records drawn and trained on per generation")
    bias: float = Field(1.0, gt=0.0, description="sampling bias λ passed to the family's sample(); 1 = unbiased")
    filters: list[dict[str, Any]] = Field(default_factory=list, description="curation filters, applied in order")
    weights: WeightsConfig | None = Field(
        None,
        description="{real: w, synthetic: 1 − w}: fit with the real records weighted w in total (None: unweighted)",
    )
    fit_to: Literal["samples", "population"] = Field(
        "samples",
        description="population: generation g > 0 is fitted to the previous model's population itself, not "
        "to samples of it (no finite-sample error; the error anatomy's switch); formerly loop.sampling: exact",
    )


class AlarmConfig(_Strict):
    diversity_drop: float = Field(
        0.5, gt=0.0, lt=1.0, description="relative fall of a diversity metric vs generation 0"
    )
    likelihood_rise: float = Field(1.0, gt=0.0, description="rise of nll_real / perplexity vs generation 0, in nats")
    diversity_metrics: list[str] = ["distinct_2", "recall", "support_size", "tail_mass"]
    likelihood_metrics: list[str] = ["nll_real", "test_perplexity"]


class ReportConfig(_Strict):
    """What the loop keeps for the report's pictures of the distributions: replicate 0's synthetic records (at most
    ``records``) and its small fitted state, at ``generations`` (None: 0, 1, 2, 5, 10, 20, 50, ... and the last); and
    which grid key is the training-set size of the scaling view (``analysis/scaling.py``)."""

    generations: list[int] | None = Field(None, description="generations whose samples the report draws; None: auto")
    records: int = Field(500, ge=0, description="records of replicate 0 kept per drawn generation (0: none)")
    size_key: str | None = Field(
        None,
        description="grid key the scaling view puts on its x axis as the training-set size (None: a key ending in "
        "samples, real_samples, n_real or n_synthetic)",
    )


def report_generations(spec: list[int] | None, generations: int) -> list[int]:
    """The generations whose samples are kept for the report: ``spec`` within range, or 0, 1, 2, 5, 10, 20, 50, ...
    and the last one.

    >>> report_generations(None, 300)
    [0, 1, 2, 5, 10, 20, 50, 100, 200, 299]
    """
    if spec is not None:
        return sorted({g for g in spec if 0 <= g < generations})
    steps = {m * 10**e for e in range(7) for m in (1, 2, 5)}
    return sorted({0, generations - 1} | {g for g in steps if g < generations})


class SweepConfig(_Strict):
    grid: dict[str, NonEmptyList] = Field(default_factory=dict, description="default grid of `modelcollapse sweep`")
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
    metrics: list[str] | None = Field(None, min_length=1, description="default: the family's default_metrics")
    arms: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="{arm name: {dotted key: value}}; {} = base"
    )
    grid: dict[str, NonEmptyList] = Field(default_factory=dict, description="{dotted key: [values]}, each non-empty")
    alarm: AlarmConfig = Field(default_factory=AlarmConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    anatomy: dict[str, Any] | None = Field(None, description="factorial error-source design over the arms (anatomy.py)")
    plugins: list[str] = Field(
        default_factory=list, description="plug-in modules or .py files imported before validation (their code runs)"
    )
    _plan: Any = PrivateAttr(None)  # the engine's plan of this config, made once (engine/plan.py)


def parse_value(text: str, option: str = "--set") -> Any:
    """A ``--set`` value: YAML scalar or flow collection (``3``, ``0.1``, ``true``, ``[1, 2]``, ``replace``), read
    with :class:`StrictLoader`; text that is not YAML stays text, but a duplicate key or an alias is refused
    (``option`` names where the value came from in that error)."""
    try:
        return yaml.load(text, StrictLoader)  # noqa: S506  (a SafeLoader subclass)
    except (yaml.constructor.ConstructorError, yaml.composer.ComposerError):
        return load_yaml(text, f"{option} value {text!r}")
    except (yaml.YAMLError, RecursionError):
        return text


class RenamedKey(DeprecationWarning):
    """A config key spelled as an earlier version spelled it: still accepted, translated by :data:`RENAMED`."""


warnings.simplefilter("default", RenamedKey)  # shown once per place, also outside __main__ (DeprecationWarning is not)

# Config keys renamed since the first release: old dotted key -> (new dotted key, {old value: new value}). The old
# spellings keep working, with a RenamedKey warning. ``model.sampler`` is also the diffusion family's own DDPM/DDIM
# switch: only the listed values are translated, so that one is left alone.
RENAMED = {
    "loop.sampling": ("loop.fit_to", {"finite": "samples", "exact": "population"}),
    "model.sampler": ("model.next_fit", {"samples": "samples", "exact": "direct", "auto": "auto"}),
}


def current_spelling(dotted: str, value: Any) -> tuple[str, Any]:
    """``(dotted, value)`` as this version spells them: a renamed key (:data:`RENAMED`) becomes its new key and
    value, with a :class:`RenamedKey` warning; any other key is returned as it is.

    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     current_spelling("loop.sampling", "exact")
    ('loop.fit_to', 'population')
    """
    if dotted not in RENAMED:
        return dotted, value
    new, values = RENAMED[dotted]
    if not isinstance(value, str) or value not in values:
        if dotted == "model.sampler":  # the diffusion family's sampler (ddpm, ddim), or a family's unknown key
            return dotted, value
        raise choice_error(f"{dotted} (now {new})", value, sorted(values))
    warnings.warn(
        f"{dotted}: {value} is now spelled {new}: {values[value]}; the old spelling will be removed in a later "
        "version.",
        RenamedKey,
        stacklevel=3,
    )
    return new, values[value]


def renamed(raw: dict[str, Any]) -> dict[str, Any]:
    """A raw config with every renamed key (:data:`RENAMED`) in this version's spelling (a copy where one changed);
    the old and the new spelling of one key together are a ConfigError."""
    for old in RENAMED:
        section, key = old.split(".")
        sub = raw.get(section)
        if not isinstance(sub, dict) or key not in sub:
            continue
        new, value = current_spelling(old, sub[key])
        if new == old:
            continue
        new_key = new.split(".")[1]
        if new_key in sub:
            raise ConfigError(f"{old} is the earlier name of {new}, and both are set; set {new} only.")
        raw = {**raw, section: {(new_key if k == key else k): (value if k == key else v) for k, v in sub.items()}}
    return raw


def set_dotted(tree: dict, dotted: str, value: Any) -> dict:
    """Return a copy of ``tree`` with ``dotted`` (``loop.samples``) set to ``value``; a renamed key is set under its
    new spelling (:func:`current_spelling`), so it overrides a config written with the new one."""
    dotted, value = current_spelling(dotted, value)
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


def apply_overrides(raw: dict[str, Any], overrides: list[str], option: str = "--set") -> dict[str, Any]:
    """Apply ``--set key=value`` strings to a raw config; ``option`` names them in errors (``overrides`` when the
    strings come from Python)."""
    for item in overrides:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"{option} needs key=value with a non-empty key; got {item!r}.")
        raw = set_dotted(raw, key.strip(), parse_value(value, option))
    return raw


def load_raw(source: str) -> dict[str, Any]:
    """Read a config file, or a preset by name."""
    path = Path(source)
    if not path.exists() and not source.endswith((".yaml", ".yml")):
        path = PRESETS_DIR / f"{source}.yaml"
        if not path.exists():
            raise choice_error("CONFIG", source, preset_names(), "a YAML file or a preset:")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read config {source!r}: {err.strerror}.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"config {source!r} is not UTF-8 text (byte {err.start}); a config is a YAML file.") from None
    if "\x00" in text:
        raise ConfigError(f"config {source!r} is a binary file (it contains NUL bytes); a config is a YAML file.")
    raw = load_yaml(text, f"config {source!r}")
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
            if dotted.split(".")[0] == "plugins":  # else an arm's modules would be imported at run time, unchecked
                raise ConfigError(
                    f"arms and grid may not set {dotted!r}: plug-ins are imported once for the whole run, "
                    "after consent (trust_code) and before validation; list them in the top-level plugins."
                )
            tree = set_dotted(tree, dotted, value)
        parts = ([arm_name] if arm_name else []) + [f"{k}={v}" for k, v in zip(keys, combo)]
        name = ",".join(parts) or config.name
        try:
            arms.append((name, Config.model_validate(renamed(tree))))
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
        raise ConfigError(
            f"anatomy must be a mapping with keys 'factors' and optionally 'metric', 'statistic'; got {anatomy!r}."
        )
    if anatomy.get("statistic", "mean") not in STATISTICS:
        raise ConfigError(
            f"anatomy.statistic must be one of {', '.join(map(repr, STATISTICS))}; got {anatomy['statistic']!r}."
        )
    factors = anatomy["factors"]
    if (
        not isinstance(factors, dict)
        or not factors
        or any(not isinstance(v, list) or len(v) != 2 or v[0] == v[1] for v in factors.values())
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
        raise ConfigError(
            f"anatomy needs exactly one arm per cell of the {2 ** len(factors)}-cell design; "
            f"missing: {wanted or 'none'} (or a cell is repeated)."
        )
    return cells
