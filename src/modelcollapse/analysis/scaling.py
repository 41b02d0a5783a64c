"""The scaling view: each metric at its final generation against the training-set size T, on log-log axes, one curve
per arm (and per value of every other grid key), beside the closed forms of ``theory.reference`` drawn dashed.

It appears in the report of a run whose ``grid`` varies a size key (``tails-zipf`` and ``strong-collapse`` grid
``loop.samples``) and of a sweep whose grid, or whose points' own grids, do. A size key is a dotted key whose last
part is one of :data:`SIZE_NAMES`, or the one a config declares as ``report.size_key``. Everything is read from the
run (or sweep) directory: each arm's resolved config gives its T, the metrics table its values at its last generation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..rundir.store import RunStore
from . import plots
from .pages import Picture
from .rows import metric_batches, pair_rows
from .story import is_bookkeeping
from .theory import reference

#: The last part of a dotted key that names a training-set size (``loop.samples``, ``loop.regime.n_real``, ...).
SIZE_NAMES = ("samples", "real_samples", "n_real", "n_synthetic")


@dataclass
class ScalingCurve:
    """One curve of the scaling view: a metric at each training-set size of one arm (arrays ``(n,)``, sizes
    ascending), its replicates' median, quartiles, mean and standard error of the mean at the generation measured
    (each arm's last), and the closed form at ``ref_sizes`` ``(m,)`` (the sizes run and the geometric midpoints
    between them; NaN where none applies; ``ref_label`` None when none applies anywhere)."""

    label: str
    sizes: np.ndarray
    generation: np.ndarray
    median: np.ndarray
    q25: np.ndarray
    q75: np.ndarray
    mean: np.ndarray
    sem: np.ndarray
    replicates: np.ndarray
    ref_sizes: np.ndarray
    ref_values: np.ndarray
    ref_label: str | None = None
    ref_stat: str | None = None


def size_key(keys: list[str], declared: str | None = None) -> str | None:
    """The grid key the view puts on its x axis: ``declared`` (``report.size_key``) if it is one of ``keys``, else the
    first of ``keys`` whose last part is in :data:`SIZE_NAMES`, else None.

    >>> size_key(["data.k", "loop.samples"]), size_key(["model.ridge"])
    ('loop.samples', None)
    >>> size_key(["data.max_blocks"], "data.max_blocks")
    'data.max_blocks'
    """
    if declared:
        return declared if declared in keys else None
    return next((k for k in keys if k.rsplit(".", 1)[-1] in SIZE_NAMES), None)


def dotted(tree: dict[str, Any], key: str) -> Any:
    """``tree["a"]["b"]`` for ``"a.b"``, or None where a part is missing."""
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def loglog_slope(sizes: np.ndarray, values: np.ndarray) -> float:
    """The least-squares slope of log ``values`` on log ``sizes`` over the entries where both are finite and > 0
    (NaN with fewer than two): the exponent of a power law, −½ for a clean memoriser on Zipf(2).

    >>> round(loglog_slope(np.array([10, 100, 1000]), np.array([1.0, 0.1, 0.01])), 6)
    -1.0
    """
    x, y = np.asarray(sizes, float), np.asarray(values, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


# -- reading a run directory --------------------------------------------------------------------------------------
def final_values(run: RunStore | Path) -> dict[tuple[str, str], tuple[int, np.ndarray]]:
    """{(arm, metric): (last generation, the replicates' values there)} from the metrics table, streamed a batch at
    a time (only the rows of the latest generation seen so far are held)."""
    found: dict[tuple[str, str], tuple[int, list[np.ndarray]]] = {}
    for name, gen, value in pair_rows(metric_batches(run)):
        last = int(gen.max())
        held = found.get(name, (-1, []))
        if last >= held[0]:
            found[name] = (last, (held[1] if last == held[0] else []) + [value[gen == last]])
    return {name: (g, np.concatenate(parts)) for name, (g, parts) in found.items()}


def arm_configs(run: RunStore | Path) -> tuple[dict[str, Any], dict[str, dict]]:
    """(the run's resolved config, {arm: resolved arm config})."""
    config = RunStore.of(run).read_config()
    return config, config.get("arms_resolved") or {config.get("name", "run"): config}


def run_key(config: dict[str, Any], extra: list[str] = ()) -> str | None:
    """The size key of a run: among its own ``grid`` keys and ``extra`` (a sweep's), as :func:`size_key` picks."""
    keys = list(dict.fromkeys([*(config.get("grid") or {}), *extra]))
    return size_key(keys, (config.get("report") or {}).get("size_key"))


# -- the view's data ----------------------------------------------------------------------------------------------
@dataclass
class _Cell:
    label: str
    metric: str
    size: float
    generation: int
    values: np.ndarray
    arm: dict[str, Any]


def _label(arm: str, key: str, run_name: str, lone: bool) -> str:
    """An arm's name without its ``key=value`` part (``clean,loop.samples=1000`` -> ``clean``); "" for the one arm
    of a run without arms, which is named after the run."""
    if lone and arm.startswith(run_name):
        return ""
    return ",".join(p for p in arm.split(",") if not p.startswith(f"{key}="))


def _cells(
    run: RunStore | Path, key: str, values: dict[str, Any] | None = None, name: str | None = None
) -> list[_Cell]:
    """Every (arm, metric) of one run as a cell of the view; ``values``: a sweep point's grid values (the other keys'
    join the label, the size key's is the fallback T); ``name``: the label of a lone arm (default the run's name)."""
    store = RunStore.of(run)
    config, arms = arm_configs(store)
    name = name or str(config.get("name", "run"))
    values = values or {}
    prefix = ",".join(f"{k}={v}" for k, v in values.items() if k != key)
    cells = []
    for (arm, metric), (g, x) in final_values(store).items():
        if arm not in arms or is_bookkeeping(metric):
            continue
        size = dotted(arms[arm], key)
        size = values.get(key) if size is None else size
        if not isinstance(size, (int, float)) or isinstance(size, bool):
            continue
        label = ",".join(p for p in (prefix, _label(arm, key, str(config.get("name")), len(arms) == 1)) if p)
        cells.append(_Cell(label or name, metric, float(size), g, x, arms[arm]))
    return cells


def _closed_form(metric: str, arm: dict[str, Any], generation: int) -> tuple[float, str | None, str | None]:
    found = reference(metric, arm, np.array([generation]))
    return (float("nan"), None, None) if found is None else (float(found[0][0]), found[1], found[2])


def _midpoint(metric: str, key: str, arm: dict[str, Any], generation: int, size: float) -> float:
    """The closed form at ``size`` for ``arm`` with its size key set there (NaN where the key is not in the resolved
    arm config, so it cannot be moved)."""
    from ..config import set_dotted

    if dotted(arm, key) is None:
        return float("nan")
    return _closed_form(metric, set_dotted(arm, key, int(round(size))), generation)[0]


def curves_from_cells(cells: list[_Cell], key: str) -> dict[str, list[ScalingCurve]]:
    """{metric: [ScalingCurve per label]} of cells with at least two sizes."""
    groups: dict[tuple[str, str], list[_Cell]] = {}
    for c in cells:
        groups.setdefault((c.metric, c.label), []).append(c)
    out: dict[str, list[ScalingCurve]] = {}
    for (metric, label), group in groups.items():
        group = sorted(group, key=lambda c: c.size)
        if len({c.size for c in group}) < 2:
            continue
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q = np.array([np.nanquantile(c.values, [0.25, 0.5, 0.75]) for c in group])
            mean = np.array([np.nanmean(c.values) for c in group])
            n = np.array([np.isfinite(c.values).sum() for c in group])
            sem = np.array([np.nanstd(c.values, ddof=1) if k > 1 else np.nan for c, k in zip(group, n)]) / np.sqrt(n)
        refs = [_closed_form(metric, c.arm, c.generation) for c in group]
        sizes = np.array([c.size for c in group])
        ref_sizes, ref_values = [sizes[0]], [refs[0][0]]
        for a, b, at_b in zip(group[:-1], group[1:], refs[1:]):
            mid = float(np.sqrt(a.size * b.size))
            ref_sizes += [mid, b.size]
            ref_values += [
                _midpoint(metric, key, a.arm, a.generation, mid) if np.isfinite(at_b[0]) else np.nan,
                at_b[0],
            ]
        first = next((r for r in refs if r[1] is not None), (None, None, None))
        out.setdefault(metric, []).append(
            ScalingCurve(
                label,
                sizes,
                np.array([c.generation for c in group]),
                q[:, 1],
                q[:, 0],
                q[:, 2],
                mean,
                sem,
                n,
                np.array(ref_sizes),
                np.array(ref_values, float),
                first[1],
                first[2],
            )
        )
    return out


def run_scaling(
    run: RunStore | Path, config: dict[str, Any] | None = None
) -> tuple[str | None, dict[str, list[ScalingCurve]]]:
    """(size key, {metric: curves}) of a loop run (``config``: its config.yaml, when already read); (None, {}) when
    its grid varies no size key."""
    store = RunStore.of(run)
    key = run_key(config if config is not None else store.read_config())
    return (key, curves_from_cells(_cells(store, key), key)) if key else (None, {})


def sweep_scaling(out: RunStore | Path) -> tuple[str | None, dict[str, list[ScalingCurve]]]:
    """(size key, {metric: curves}) of a sweep: over its complete points, the size key among the sweep's grid keys
    and the points' own grids; (None, {}) when there is none."""
    store = RunStore.of(out)
    out, manifest = store.root, store.read_manifest()
    done = [p for p in manifest.get("points", []) if p.get("status") == "complete"]
    if not done:
        return None, {}
    key = run_key(arm_configs(Path(out) / done[0]["dir"])[0], list(manifest.get("grid") or {}))
    if key is None:
        return None, {}
    cells = [
        c for p in done for c in _cells(Path(out) / p["dir"], key, p["values"], str(manifest.get("name", "sweep")))
    ]
    return key, curves_from_cells(cells, key)


# -- the report's section -----------------------------------------------------------------------------------------
def section(root: Path, key: str | None, data: dict[str, list[ScalingCurve]]) -> dict | None:
    """What ``section_scaling.html.j2`` shows: the size ``key``, ``figures`` (one per metric, written to
    ``root/figures/scaling-METRIC.png``) and ``rows`` (each curve's log-log slope beside its closed form's); None
    without data."""
    if not data:
        return None
    paths, rows = [], []
    for metric, curves in data.items():
        path = Path(root) / "figures" / f"scaling-{metric}.png"
        slopes = [(loglog_slope(c.sizes, c.median), loglog_slope(c.sizes, c.ref_values[::2])) for c in curves]
        scaling_figure(metric, key, curves, [f"{c.label} (slope {s:.2f})" for c, (s, _) in zip(curves, slopes)], path)
        paths.append(Picture.of(path))
        for c, (ours, closed) in zip(curves, slopes):  # ref_values[::2]: the closed form at the sizes run
            rows.append(
                [
                    c.label,
                    metric,
                    ", ".join(f"{s:g}" for s in c.sizes),
                    f"{ours:.3f}",
                    "" if c.ref_label is None else f"{closed:.3f}",
                ]
            )
    return {"key": key, "figures": paths, "rows": rows}


def scaling_figure(metric: str, key: str, curves: list, legend: list[str], path: Path):
    """The scaling view of one metric: per curve (an ``analysis.scaling.ScalingCurve``, legend entry ``legend[i]``)
    the median against the training-set size, markers at the sizes run, the interquartile band, and its closed form
    dashed in the same colour. Log-log where every quartile is positive (else log x only). Returns the (closed)
    Figure."""
    fig, ax = plots.pyplot().subplots(figsize=(6.4, 4.2), dpi=110)
    for i, (c, label) in enumerate(zip(curves, legend)):
        color = f"C{i % 10}"
        ax.plot(c.sizes, c.median, color=color, lw=1.6, marker="o", ms=4, label=label)
        ax.fill_between(c.sizes, c.q25, c.q75, color=color, alpha=0.2, lw=0)
        ok = np.isfinite(c.ref_values)
        if c.ref_label is not None and ok.any():
            ax.plot(c.ref_sizes[ok], c.ref_values[ok], color=color, lw=1.0, ls="--")
    if any(c.ref_label is not None for c in curves):
        ax.plot([], [], color="k", lw=1.0, ls="--", label="closed form (E)")
    ax.set_xscale("log")
    if all(np.nanmin(c.q25) > 0 for c in curves if np.isfinite(c.q25).any()):
        ax.set_yscale("log")
    ax.set_xlabel(f"training-set size T ({key})")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against training-set size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    plots.save_figure(fig, path)
    return fig
