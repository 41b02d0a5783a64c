"""The Python API: run, load and read experiments from a notebook or a script, and add plug-ins with decorators.

Everything here is also reachable as ``modelcollapse.NAME`` (loaded on first use, so ``import modelcollapse`` stays
light)::

    import modelcollapse as mc

    run = mc.run("gaussian-replace", out="runs/x", overwrite=True, overrides={"replicates": 50})
    df = run.metrics()            # pandas: arm, replicate, generation, metric, value, + one typed column per varied key
    run.curves("variance")        # per arm and generation: median, q25, q75, mean, sem, n
    run.plot("variance")          # a matplotlib Axes

A run made here and one made by ``modelcollapse run`` with the same config write the same ``metrics.parquet``: each
command and its function here share one code path (:func:`run_and_report`, :func:`modelcollapse.engine.sweep.run_sweep`,
:func:`modelcollapse.chains.chain.run_chains`), and ``tests/test_parity.py`` feeds both the same input. Errors are
:class:`ConfigError` and :class:`RunError`, whose messages name config keys and this module's arguments
(``resume=True``, ``workers``), never CLI flags (the shared code takes a :class:`~modelcollapse.errors.Spelling`).

Plug-ins registered with the decorators (:func:`metric`, :func:`regime`, :func:`model`, :func:`data`,
:func:`filter`) are usable by name in any config run in this process. Re-registering a name replaces the earlier
plug-in when that one was defined in ``__main__`` (a notebook cell or a script run again) or is the same function
(same module and qualified name: a module imported again); any other clash (a built-in, another package's plug-in)
is a ConfigError unless ``replace=True`` is passed.

>>> import numpy as np
>>> @metric("doc_sample_range")
... def doc_sample_range(ctx):  # ctx.samples: (R, m, ...) -> one value per replicate, shape (R,)
...     x = ctx.samples.reshape(ctx.samples.shape[0], -1)
...     return x.max(1) - x.min(1)
>>> from modelcollapse.plugins.metrics import METRICS
>>> "doc_sample_range" in METRICS
True
>>> METRICS.unregister("doc_sample_range")
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .audit import audit  # the function itself (mc.audit is the subpackage, callable as this function)
from .config import PRESETS_DIR, load_raw, preset_names, set_dotted
from .engine.executors import ExecutorSpec
from .engine.runner import GenerationEvent, run_name
from .errors import PYTHON, ConfigError, RunError, Spelling
from .plugins.watermark import GAMMA as WM_GAMMA
from .plugins.watermark import KEY as WM_KEY
from .plugins.watermark import TOKENIZER as WM_TOKENIZER
from .registry import Registry
from .rundir.layouts import refuse_earlier_layout
from .rundir.store import RUN_KINDS, RunStore, prepare_out  # noqa: F401 (api.prepare_out: the one --overwrite)

__all__ = [
    "run",
    "load",
    "sweep",
    "chain",
    "presets",
    "watermark_z",
    "audit",
    "Run",
    "GenerationEvent",
    "ConfigError",
    "RunError",
    "metric",
    "regime",
    "model",
    "data",
    "filter",
    "reward",
]


# -- configs --------------------------------------------------------------------------------------------------------
def _copy(tree: Any) -> Any:
    """Copy dicts and lists (leaves, such as an estimator instance, are shared)."""
    if isinstance(tree, Mapping):
        return {k: _copy(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [_copy(v) for v in tree]
    return tree


def raw_config(config: Any, overrides: Mapping[str, Any] | Iterable[str] | None = None) -> dict[str, Any]:
    """A raw config from a dict, a YAML path or a preset name, with ``overrides`` applied: a mapping of dotted keys
    to values (``{"loop.samples": 50}``), or ``"key=value"`` strings as on the command line.

    >>> raw_config({"loop": {"samples": 10}}, {"loop.samples": 20, "replicates": 3})
    {'loop': {'samples': 20}, 'replicates': 3}
    """
    if isinstance(config, Mapping):
        raw = _copy(config)
    elif isinstance(config, str | Path):
        raw = load_raw(str(config))
    else:
        raise ConfigError(f"config must be a dict, a YAML path or a preset name; got {type(config).__name__}.")
    if overrides is None:
        return raw
    if isinstance(overrides, str) or not isinstance(overrides, Mapping | Iterable):
        raise ConfigError(
            f"overrides must be a dict of dotted keys to values, e.g. {{'loop.samples': 50}}; got {overrides!r}."
        )
    if not isinstance(overrides, Mapping):
        from .config import apply_overrides

        return apply_overrides(raw, [str(item) for item in overrides], "overrides")
    for key, value in overrides.items():
        if not isinstance(key, str) or not key.strip() or any(not part for part in key.split(".")):
            raise ConfigError(f"overrides keys are dotted config keys such as 'loop.samples'; got {key!r}.")
        raw = set_dotted(raw, key.strip(), _copy(value))
    return raw


def run(
    config: Any,
    out: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    overrides: Mapping[str, Any] | None = None,
    on_generation: Callable[[GenerationEvent], None] | None = None,
    trust_code: bool = False,
    quiet: bool = True,
    *,
    workers: int | None = None,
    executor: str = "local",
    address: str | None = None,
    track: str | None = None,
    tracking_uri: str | None = None,
    report: bool | None = None,
) -> Run:
    """Run ``config`` (a dict, a YAML path or a preset name) into ``out`` (default ``runs/NAME``) and return its
    :class:`Run`.

    ``overrides``: dotted keys to values, validated like the config. ``resume=True`` continues the run in ``out``
    (the same config); ``overwrite=True`` first deletes a previous modelcollapse run there (and refuses a folder
    holding anything else). ``on_generation(event)`` is called after each generation is persisted, in the process
    that runs it (with ``workers > 1`` it must be picklable: a module-level function), with ``event.arm``,
    ``event.generation`` and ``event.metrics`` (metric name -> ``(R,)`` array of the unit's replicates).
    ``workers``/``executor``/``address``: as ``modelcollapse run``'s options. ``quiet=False`` shows a progress bar.
    A suite config (``suite:``) runs each member into ``out/MEMBER``. ``track="mlflow"`` logs each generation live to
    MLflow at ``tracking_uri`` (default ``sqlite:///OUT/mlflow.db``; see :mod:`modelcollapse.analysis.tracking`).
    ``report``: build ``report.html`` (and ``figures/``) at the end; None (default) builds it when ``track`` is set,
    so MLflow holds what ``modelcollapse run --track mlflow`` logs (the CLI builds it unless ``--no-report``).
    """
    raw = raw_config(config, overrides)
    out = Path(out) if out is not None else Path("runs") / run_name(raw, config)
    spec = ExecutorSpec(kind=executor, address=address, workers=workers, spelling=PYTHON)
    run_and_report(
        raw,
        out,
        [],
        overwrite=overwrite,
        resume=resume,
        quiet=quiet,
        executor=spec,
        trust_code=trust_code,
        track=track,
        tracking_uri=tracking_uri,
        report=bool(track) if report is None else report,
        on_generation=on_generation,
        spelling=PYTHON,
    )
    return Run(out)


def run_and_report(
    source: Any,
    out: Path | None,
    overrides: list[str],
    *,
    overwrite: bool,
    resume: bool,
    quiet: bool,
    executor: ExecutorSpec,
    trust_code: bool,
    track: str | None,
    tracking_uri: str | None,
    report: bool,
    plugins: Iterable[str] = (),
    on_generation: Callable[[GenerationEvent], None] | None = None,
    warn: Callable[[str], None] | None = None,
    spelling: Spelling = PYTHON,
):
    """The one code path of ``modelcollapse run`` and :func:`run`: run ``source`` (a YAML path, a preset name or a
    raw config dict, with ``overrides`` strings) via :func:`~modelcollapse.engine.runner.run_config`, tracked live
    when ``track="mlflow"``; then, with ``report``, build ``report.html`` and add it and ``figures/`` to each run's
    MLflow parent run. ``warn(line)`` reports a tracking failure (default: a RuntimeWarning). Returns ``(out,
    [(name, manifest)], report path or None)``; errors name the options as ``spelling`` spells them."""
    from .engine.runner import run_config

    if track not in (None, "mlflow"):
        raise ConfigError(
            f"{spelling.arg('track')} must be 'mlflow'{' or None' if spelling.python else ''}; got {track!r}."
        )
    hooks = None
    if track == "mlflow":  # live, per generation; the driver polls the run directory when units run elsewhere
        from .analysis.tracking import Hooks, tracking

        @contextlib.contextmanager
        def hooks(path: Path):
            with tracking(path, tracking_uri, poll=None if executor.in_process else 1.0, warn=warn) as tracker:
                yield Hooks(tracker, on_generation)
    elif on_generation is not None:
        hooks = lambda path: contextlib.nullcontext(on_generation)  # noqa: E731
    out, runs = run_config(
        source,
        out,
        overrides,
        resume=resume,
        quiet=quiet,
        executor=executor,
        trust_code=trust_code,
        plugins=tuple(plugins),
        track=hooks,
        overwrite=overwrite,
        spelling=spelling,
    )
    if not report:
        return out, runs, None
    from .analysis.report import build_report

    path = build_report(out)
    if track == "mlflow":
        from .analysis.tracking import attach_report

        for run_dir in [out / name for name, _ in runs] if RunStore(out).kind == "suite" else [out]:
            attach_report(run_dir, tracking_uri, warn)
    return out, runs, path


def sweep(
    config: Any,
    grid: Mapping[str, list[Any]] | None = None,
    out: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    workers: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = True,
    executor: str = "local",
    address: str | None = None,
    trust_code: bool = False,
) -> Run:
    """Run ``config`` at every point of ``grid`` (dotted key -> list of values; default the config's
    ``sweep.grid``), one run directory per point under ``out`` (default ``sweeps/NAME``). Returns a :class:`Run`
    whose ``metrics()`` has ``point`` and one typed column per grid key. A failed point raises RunError after the
    others finish (their results stay in ``out``)."""
    from .engine.sweep import run_sweep

    raw = raw_config(config, overrides)
    if grid is not None and (
        not isinstance(grid, Mapping) or not all(isinstance(v, list | tuple) and v for v in grid.values())
    ):
        raise ConfigError(f"grid must map dotted config keys to non-empty lists of values; got {grid!r}.")
    grid = {k: list(v) for k, v in grid.items()} if grid else None
    out = Path(out) if out is not None else Path("sweeps") / run_name(raw, config)
    spec = ExecutorSpec(kind=executor, address=address, workers=workers, retries=0, spelling=PYTHON)
    path, manifest = run_sweep(
        raw,
        grid,
        out,
        [],
        workers=workers,
        resume=resume,
        quiet=quiet,
        executor=spec,
        spelling=PYTHON,
        trust_code=trust_code,
        overwrite=overwrite,
    )
    failed = [p for p in manifest["points"] if p["status"] == "failed"]
    if failed:
        raise RunError(
            f"{len(failed)} of {len(manifest['points'])} sweep points failed; first {failed[0]['dir']} "
            f"{failed[0]['values']}: {failed[0].get('error')}. The others are in {path}; pass resume=True to retry."
        )
    return Run(path)


def chain(
    config: Any,
    out: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = True,
) -> Run:
    """Run telephone chains (a model rewriting its own output; no retraining) from a config dict, YAML path or
    preset (``telephone-summarize``) into ``out`` (default ``runs/NAME``, NAME the config's ``name``, as
    ``modelcollapse chain``). Returns its :class:`Run`. ``quiet=False`` shows a progress bar over the chains' steps
    (and a line per generation) on stderr, as ``modelcollapse chain`` does."""
    from .chains.chain import run_chains

    return Run(run_chains(raw_config(config, overrides), out, [], resume, quiet, overwrite=overwrite, spelling=PYTHON))


def presets() -> dict[str, str]:
    """Every preset's name and the first line of its description (loop runs, suites and telephone chains)."""
    out = {}
    for name in preset_names():
        text = str(load_raw(str(PRESETS_DIR / f"{name}.yaml")).get("description") or "").strip()
        out[name] = text.splitlines()[0] if text else ""
    return out


def load(path: str | Path) -> Run:
    """The :class:`Run` in a run directory (a run, a suite, a sweep or a telephone run)."""
    return Run(path)


# -- results ----------------------------------------------------------------------------------------------------------
def _lookup(tree: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, Mapping) or part not in tree:
            return None
        tree = tree[part]
    return tree


def varied_values(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{arm name: {varied key: value}}`` of a resolved config: the keys its ``arms`` and ``grid`` set, with the
    values as the config holds them (typed), and the base config's value where an arm leaves a key alone. Arm names
    are rebuilt as :func:`modelcollapse.config.expand_arms` builds them.

    >>> varied_values({"name": "x", "loop": {"samples": 9}, "arms": {"a": {}, "b": {"loop.samples": 5}},
    ...                "grid": {"seed_like": [1, 2]}})["b,seed_like=2"]
    {'loop.samples': 5, 'seed_like': 2}
    """
    arms, grid = dict(config.get("arms") or {}), dict(config.get("grid") or {})
    keys = list(dict.fromkeys([k for overrides in arms.values() for k in (overrides or {})] + list(grid)))
    out = {}
    for (arm, overrides), combo in itertools.product(
        list(arms.items()) or [(None, {})], list(itertools.product(*grid.values())) or [()]
    ):
        values = {**dict(overrides or {}), **dict(zip(grid, combo))}
        name = ",".join(([arm] if arm else []) + [f"{k}={v}" for k, v in zip(grid, combo)]) or str(config.get("name"))
        resolved = (config.get("arms_resolved") or {}).get(name) or config
        base = {
            k: _lookup(resolved, k)
            if _lookup(resolved, k) is not None
            else _lookup(resolved, "loop.regime." + k.split(".")[-1])
            for k in keys
            if k not in values
        }
        out[name] = {k: values[k] if k in values else base[k] for k in keys}
    return out


def _decoded(table):
    """``table`` with dictionary-encoded columns decoded to plain strings (sortable, comparable)."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table[field.name].cast(field.type.value_type))
    return table


def _scalar(value: Any) -> Any:
    """A varied key's value as a table cell: scalars as they are; a plug-in spec ``{kind: NAME}`` as ``NAME``, one with
    parameters as ``NAME(k=v, ...)``; anything else as its text."""
    if isinstance(value, Mapping) and "kind" in value:
        params = ", ".join(f"{k}={v}" for k, v in value.items() if k != "kind")
        return f"{value['kind']}({params})" if params else str(value["kind"])
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


class Run:
    """A run directory, read: ``config`` (config.yaml as a dict; a suite's suite.yaml, a sweep's grid), ``manifest``
    (manifest.json), ``path``; :meth:`metrics`, :meth:`curves`, :meth:`plot`, :meth:`report`. ``kind``: ``loop``,
    ``suite``, ``sweep`` or ``telephone``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.store = RunStore(self.path)
        refuse_earlier_layout(self.path)
        if not self.path.is_dir() or self.store.kind not in RUN_KINDS:
            raise ConfigError(
                f"{str(self.path)!r} is not a modelcollapse run directory (no config.yaml and "
                "manifest.json, suite.yaml, or sweep manifest)."
            )

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, kind={self.kind!r}, status={self.manifest.get('status')!r})"

    @property
    def kind(self) -> str:
        return self.store.kind

    @property
    def config(self) -> dict[str, Any]:
        kind = self.kind
        if kind == "suite":
            return self.store.read_suite()
        if kind == "sweep":
            manifest = self.manifest
            return {"name": manifest.get("name"), "grid": manifest.get("grid")}
        return self.store.read_config()

    @property
    def manifest(self) -> dict[str, Any]:
        return self.store.read_manifest()

    @property
    def members(self) -> dict[str, Run]:
        """A suite's runs (name -> Run), a sweep's points (directory -> Run); empty for a single run."""
        if self.kind == "suite":
            names = self.config.get("members", [])
        elif self.kind == "sweep":
            names = [p["dir"] for p in self.manifest.get("points", [])]
        else:
            return {}
        return {n: Run(self.path / n) for n in names if RunStore(self.path / n).kind in RUN_KINDS}

    def table(self, metrics: list[str] | None = None):
        """The metrics as a pyarrow Table: the tidy columns (``arm`` and ``metric`` decoded to strings), then one
        column per varied key (typed: int, float, bool or str), then for suites ``run`` and for sweeps ``point`` and
        one column per grid key."""
        import pyarrow as pa

        kind = self.kind
        if kind in ("suite", "sweep"):
            parts = []
            points = {p["dir"]: (i, p) for i, p in enumerate(self.manifest.get("points", []))}
            for name, member in self.members.items():
                t = member.table(metrics)
                if kind == "suite":
                    t = t.append_column("run", pa.array([name] * t.num_rows, pa.string()))
                else:
                    i, p = points[name]
                    t = t.append_column("point", pa.array(np.full(t.num_rows, i, np.int64)))
                    for key, value in p["values"].items():
                        t = t.append_column(key, pa.array([_scalar(value)] * t.num_rows))
                parts.append(t)
            if not parts:
                raise RunError(f"{self.path} has no results yet.")
            return pa.concat_tables(parts, promote_options="default")
        table = _decoded(self.store.read_metrics(metrics))
        if kind == "loop":
            values = varied_values(self.config)
            arms = table["arm"].to_pylist()
            for key in next(iter(values.values()), {}):
                if key in table.column_names:
                    continue
                by_arm = {a: _scalar(v[key]) for a, v in values.items()}
                table = table.append_column(key, pa.array([by_arm.get(a) for a in arms]))
        return table

    def metrics(self, polars: bool = False, metrics: list[str] | None = None):
        """The tidy table as a pandas DataFrame (``polars=True``: a polars DataFrame): one row per (arm, replicate,
        generation, metric) with its ``value``, plus a typed column per varied key (see :meth:`table`).
        ``metrics``: only these metrics' rows."""
        table = self.table(metrics)
        if polars:
            try:
                import polars as pl
            except ImportError:
                raise ConfigError("metrics(polars=True) needs polars: pip install polars.") from None
            return pl.from_arrow(table)
        return table.to_pandas()

    def group_columns(self, df) -> list[str]:
        tidy = {"arm", "replicate", "generation", "metric", "value", "chain", "start", "seed"}
        extra = [c for c in df.columns if c not in tidy]
        return (
            (["run"] if "run" in extra else [])
            + (["point"] if "point" in extra else [])
            + ["arm"]
            + [c for c in extra if c not in ("run", "point")]
        )

    def curves(self, metric: str):
        """One metric's curve per arm and generation (pandas): ``median``, ``q25``, ``q75``, ``mean``, ``sem``
        (standard error of the mean, ddof=1) and ``n`` across replicates, NaNs skipped. Grouped by ``run`` (suites),
        ``point`` (sweeps), ``arm`` and the varied-key columns."""
        import pandas as pd

        df = self.metrics(metrics=[metric])
        if df.empty:
            names = sorted(set(self.metrics()["metric"]))
            from .errors import choice_error

            raise choice_error("metric", metric, names)
        keys = self.group_columns(df) + ["generation"]
        grouped = df.groupby(keys, sort=True, dropna=False)["value"]
        out = pd.DataFrame(
            {
                "median": grouped.median(),
                "q25": grouped.quantile(0.25),
                "q75": grouped.quantile(0.75),
                "mean": grouped.mean(),
                "sem": grouped.sem(),
                "n": grouped.count(),
            }
        )
        return out.reset_index()

    def plot(self, metric: str, ax=None, *, logy: bool = False):
        """The median of ``metric`` over the generations, one line per arm (per member run of a suite, per grid
        point of a sweep, per task of a telephone run), each with its interquartile band; returns the matplotlib
        Axes (a new figure's unless ``ax`` is given). A legend names the lines when there is more than one."""
        import matplotlib.pyplot as plt

        cur = self.curves(metric)
        ident = [c for c in ("run", "point", "arm") if c in cur.columns]
        lines = [(key if isinstance(key, tuple) else (key,), part) for key, part in cur.groupby(ident, dropna=False)]
        if ax is None:  # wider when the legend goes beside the axes; constrained: room for labels added later too
            _, ax = plt.subplots(figsize=(8.5 if len(lines) > 4 else 6, 3.6), layout="constrained")
        labels = self._line_labels(cur, ident, [key for key, _ in lines])
        alpha = 0.2 if len(lines) <= 3 else 0.07  # many overlapping bands would hide the lines
        for key, part in lines:
            (line,) = ax.plot(
                part["generation"],
                part["median"],
                lw=1.6,
                marker="o" if len(part) == 1 else None,
                label=labels[key] if len(lines) > 1 else "median",
            )
            ax.fill_between(part["generation"], part["q25"], part["q75"], color=line.get_color(), alpha=alpha, lw=0)
        ax.set_xlabel("generation")
        ax.xaxis.get_major_locator().set_params(integer=True)  # generations are whole numbers: no 2.5 ticks
        ax.set_ylabel(f"{metric} (median; band: IQR)")
        if logy:
            ax.set_yscale("log")
        if len(lines) > 4:  # beside the axes, where it hides no line
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        elif len(lines) > 1:
            ax.legend(fontsize="small")
        return ax

    def _line_labels(self, cur, ident: list[str], keys: list[tuple]) -> dict[tuple, str]:
        """A legend entry per line of :meth:`plot` (``keys``: its values of ``ident``, the columns that name a line,
        among ``run``, ``point``, ``arm``): the member run (suites), the point's grid values as ``key=value``
        (sweeps; the keys whose value differs between points) and the arm where its run or point has more than one."""
        points = [p["values"] for p in self.manifest.get("points", [])] if "point" in ident else []
        grid = [k for k in (self.config.get("grid") or {}) if len({repr(v.get(k)) for v in points}) > 1]
        outer = [c for c in ident if c != "arm"]
        arms = cur.groupby(outer)["arm"].nunique() if outer else None
        out = {}
        for key in keys:
            row = dict(zip(ident, key))
            parts = [str(row["run"])] if "run" in row and cur["run"].nunique() > 1 else []
            parts += [f"{k}={_scalar(points[row['point']].get(k))}" for k in grid] if "point" in row else []
            group = key[:-1] if len(outer) > 1 else key[0]  # the (run or point) the line belongs to
            if not parts or arms is None or arms[group] > 1:
                parts.append(str(row["arm"]))
            out[key] = ", ".join(parts)
        return out

    def report(self) -> Path:
        """Build ``report.html`` from the run directory alone and return its path."""
        from .analysis.report import build_any

        return build_any(self.path)


# -- decorators -----------------------------------------------------------------------------------------------------
def _origin(obj: Any) -> tuple[str, str]:
    return getattr(obj, "__module__", "") or "", getattr(obj, "__qualname__", "") or ""


def _register(registry: Registry, name: str, aliases: tuple[str, ...], traits: dict[str, Any], replace: bool):
    def add(obj):
        for n in (name, *aliases):
            if n not in registry:
                continue
            existing = registry.get(n)
            module, qualname = _origin(existing)
            if replace or module == "__main__" or (module, qualname) == _origin(obj):
                registry.unregister(n)
            else:
                raise ConfigError(
                    f"{registry.key}: {n!r} is already registered (by {module}.{qualname}); choose "
                    "another name, or pass replace=True to replace it in this process."
                )
        return registry.register(name, *aliases, **traits)(obj)

    return add


def metric(name: str, *aliases: str, replace: bool = False, **traits: Any):
    """Register a metric: a function ``(ctx) -> (R,)`` of one generation's
    :class:`~modelcollapse.plugins.metrics.Context` (``ctx.samples`` ``(R, m, ...)``, ``ctx.model``,
    ``ctx.source``, ...). Trait ``from_model=True``: it reads only the fitted model."""
    from .plugins.metrics import METRICS

    return _register(METRICS, name, aliases, traits, replace)


def regime(name: str, *aliases: str, replace: bool = False, **traits: Any):
    """Register a regime: a function ``(inputs, *, params) -> [Chunk]`` whose keyword-only parameters (with type
    hints) are its config parameters (``loop.regime: {kind: NAME, k: 3}``). Traits ``keeps_history``,
    ``needs_fresh``, ``mixes_real`` (see :mod:`modelcollapse.plugins.regimes`)."""
    from .plugins.regimes import REGIMES

    return _register(REGIMES, name, aliases, traits, replace)


def model(name: str, *aliases: str, replace: bool = False, **traits: Any):
    """Register a model family: a class with ``fit(x, *, rng)`` and ``sample(n, *, rng)`` over all replicates
    (see :mod:`modelcollapse.plugins.models.base`); its ``__init__`` keyword parameters are ``model.*`` keys."""
    from .plugins.models import MODELS

    return _register(MODELS, name, aliases, traits, replace)


def data(name: str, *aliases: str, replace: bool = False, **traits: Any):
    """Register a data source: a class with ``sample(replicates, n, rng)`` and ``pool(...)`` (see
    :mod:`modelcollapse.plugins.data.base`); its ``__init__`` keyword parameters are ``data.*`` keys."""
    from .plugins.data import SOURCES

    return _register(SOURCES, name, aliases, traits, replace)


def filter(name: str, *aliases: str, replace: bool = False, **traits: Any):  # noqa: A001 (mc.filter is the contract)
    """Register a curation filter: a function ``(x, keep, ctx, *, params) -> (x, keep)`` (see
    :mod:`modelcollapse.plugins.filters`), used as ``loop.filters: [{kind: NAME, ...}]``."""
    from .plugins.filters import FILTERS

    return _register(FILTERS, name, aliases, traits, replace)


def reward(name: str, *aliases: str, replace: bool = False, **traits: Any):
    """Register a reward for the ``curate`` filter: a function ``(x, *, params) -> (R, n)`` of records ``x``
    ``(R, n, ...)`` (see :mod:`modelcollapse.plugins.rewards`), used as ``reward: {kind: NAME, ...}``."""
    from .plugins.rewards import REWARDS

    return _register(REWARDS, name, aliases, traits, replace)


def watermark_z(
    texts,
    *,
    scheme: str = "hf",
    key: int = WM_KEY,
    gamma: float = WM_GAMMA,
    seeding: str = "lefthash",
    tokenizer: str = WM_TOKENIZER,
    **options,
):
    """One green-list z-score per text (numpy array ``(len(texts),)``), each text scored exactly as given (a leading
    space is part of its first token): ``scheme="hf"`` counts exactly as transformers' ``WatermarkDetector``
    (``seeding`` lefthash or selfhash), ``"kirchenbauer"`` as our own loop's generator; ``tokenizer``: ``smollm2``
    (the packaged model's, also ``modelcollapse watermark detect``'s default), ``gpt2`` or a local tokenizer folder.
    See :func:`modelcollapse.plugins.watermark.watermark_z` for the other options."""
    from .plugins.watermark import watermark_z as z

    return z(texts, scheme=scheme, key=key, gamma=gamma, seeding=seeding, tokenizer=tokenizer, **options)
