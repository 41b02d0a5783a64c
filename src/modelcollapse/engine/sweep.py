"""Sweeps and phase diagrams: one run directory per grid point, run on an executor, combined into one table.

``modelcollapse sweep CONFIG|PRESET --grid loop.real_fraction=0,0.1,0.2 --grid loop.samples=20,100 [--workers 2]
[--executor local|ray] [--address auto|ray://HOST:10001]``
writes, under ``--out`` (default ``sweeps/NAME``)::

    points/NNN/         a full run directory per grid point (``runner.execute``)
    sweep.parquet       every point's metric rows (arm, replicate, generation, metric, value) plus ``point`` and one
                        column per grid key, named as the key (``loop.real_fraction``)
    manifest.json       the grid, and per point its values, directory and status (complete / failed, with the error)
    report.html         a heatmap of one metric's final-generation median over the first two grid keys
    figures/heatmap.png

Points are tasks of :func:`modelcollapse.engine.executors.map_tasks` (in process, a process pool, or Ray; see
``docs/scale.md``). Without ``--grid`` the config's ``sweep.grid`` is used. A failed point is marked failed and the others finish (exit 1 at
the end). ``--resume`` skips complete points and resumes partial ones from their checkpoints.
"""

from __future__ import annotations

import html
import itertools
import json
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..errors import ConfigError, RunError
from .executors import ExecutorSpec, map_tasks
from .store import RunStore, atomic_save, atomic_write, refuse_existing, text_column

DEFAULT_METRICS = ("recall", "w2_sq", "frechet", "tv", "test_mse", "nll_real")


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["a.b=1,2", "c=x,y"]`` -> ``{"a.b": [1, 2], "c": ["x", "y"]}`` (values parsed as YAML scalars)."""
    from ..config import parse_value

    grid = {}
    for item in items:
        key, eq, values = item.partition("=")
        if not eq or not key.strip() or not values.strip():
            raise ConfigError(f"--grid needs key=v1,v2,...; got {item!r}.")
        grid[key.strip()] = [parse_value(v.strip()) for v in values.split(",")]
    return grid


def points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in order (the last key varies fastest)."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def point_config(raw: dict[str, Any], values: dict[str, Any]):
    """The validated config of one grid point (``sweep`` section removed, name suffixed with the point's values)."""
    from ..config import set_dotted, validate

    tree = {k: v for k, v in raw.items() if k != "sweep"}
    for key, value in values.items():
        tree = set_dotted(tree, key, value)
    tree["name"] = f"{raw.get('name', 'sweep')}[{','.join(f'{k}={v}' for k, v in values.items())}]"
    return validate(tree)


def run_point(raw: dict[str, Any], values: dict[str, Any], out: str, resume: bool) -> dict[str, Any]:
    """Run (or resume) one point into ``out``; returns its status (never raises: a failure is a result)."""
    from .runner import execute

    try:
        manifest = execute(point_config(raw, values), Path(out), resume=resume, quiet=True)
        return {"status": manifest.get("status", "complete"), "reason": manifest.get("reason")}
    except Exception as err:  # noqa: BLE001  (recorded per point; the sweep goes on)
        return {"status": "failed", "error": f"{type(err).__name__}: {err}"}


def run_point_job(job: tuple) -> dict[str, Any]:
    """:func:`run_point` on one ``(raw, values, out, resume)`` tuple (a top-level function for pools and Ray)."""
    return run_point(*job)


def run_sweep(source: str, grid_items: list[str], out: Path | None, overrides: list[str], *, workers: int = 1,
              resume: bool = False, quiet: bool = True, executor: ExecutorSpec | None = None) -> tuple[Path, dict[str, Any]]:
    """Run a sweep; returns its directory and manifest. ``executor`` (default: local with ``workers``) runs the
    points, one task each."""
    from ..config import load_raw
    from .runner import apply_overrides

    raw = apply_overrides(load_raw(source), overrides)
    grid = parse_grid(grid_items) if grid_items else dict((raw.get("sweep") or {}).get("grid") or {})
    if not grid:
        raise ConfigError(f"sweep needs --grid key=v1,v2,... or a 'sweep: {{grid: ...}}' section in {source!r}.")
    name = str(raw.get("name", Path(source).stem))
    out = Path(out) if out else Path("sweeps") / name
    if not resume:
        refuse_existing(out)
    todo = points(grid)
    for values in todo:  # validate every point before running any
        point_config(raw, values)
    manifest = {"name": name, "grid": grid, "metric": (raw.get("sweep") or {}).get("metric"), "status": "running",
                "points": [{"values": v, "dir": f"points/{i:03d}", "status": "pending"} for i, v in enumerate(todo)]}
    store = RunStore(out)
    old = store.read_manifest() if resume else {}
    if old and old.get("grid") != json.loads(json.dumps(grid)):
        raise ConfigError(f"--resume: the grid differs from {out}/manifest.json's {old.get('grid')}; resume with the same grid.")
    for p in manifest["points"]:
        if RunStore(out / p["dir"]).read_manifest().get("status") == "complete":
            p["status"] = "complete"
    store.write_manifest(manifest)
    pending = [(i, p) for i, p in enumerate(manifest["points"]) if p["status"] != "complete"]
    started = time.perf_counter()

    def record(i: int, result: dict[str, Any]) -> None:
        manifest["points"][i].update({k: v for k, v in result.items() if v is not None})
        store.write_manifest(manifest)
        if not quiet:
            click.echo(f"point {i:03d} {manifest['points'][i]['values']}: {result['status']}")

    jobs = [(raw, p["values"], str(out / p["dir"]), (out / p["dir"] / "config.yaml").exists()) for _, p in pending]
    spec = executor or ExecutorSpec(workers=workers)
    for outcome in map_tasks(run_point_job, jobs, spec):  # in process, a process pool or Ray (see executors)
        record(pending[outcome.index][0], outcome.value if not outcome.error else {"status": "failed", "error": outcome.error})
    failed = [p for p in manifest["points"] if p["status"] == "failed"]
    manifest["status"] = "failed" if failed else "complete"
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    write_table(out, manifest)
    store.write_manifest(manifest)
    build_sweep_report(out)
    return out, manifest


def write_table(out: Path, manifest: dict[str, Any]) -> None:
    """Combine the completed points' metric rows into ``sweep.parquet`` with one column per grid key."""
    import pyarrow as pa
    import pyarrow.parquet as pq


    tables = []
    for i, p in enumerate(manifest["points"]):
        if p["status"] == "failed" or not (out / p["dir"] / "metrics.parquet").exists():
            continue
        t = RunStore(out / p["dir"]).read_metrics()
        t = t.append_column("point", pa.array(np.full(t.num_rows, i, np.int64)))
        for key in manifest["grid"]:
            value = p["values"][key]
            column = pa.array([value] * t.num_rows) if isinstance(value, (int, float)) and not isinstance(value, bool) else pa.array([str(value)] * t.num_rows)
            t = t.append_column(key, column.cast(pa.float64()) if pa.types.is_integer(column.type) else column)
        tables.append(t)
    if tables:
        atomic_save(out / "sweep.parquet", lambda tmp: pq.write_table(pa.concat_tables(tables, promote_options="default"), tmp))


def final_grid(out: Path, metric: str | None = None) -> tuple[str, list[str], list[list[Any]], np.ndarray]:
    """The heatmap data: (metric, the two axis keys, their values, medians ``(len(v0), len(v1))`` of ``metric`` at
    each point's last generation, pooled over arms and replicates; a third grid key and beyond are averaged)."""
    import pyarrow.parquet as pq


    manifest = RunStore(out).read_manifest()
    table = pq.read_table(out / "sweep.parquet")
    metrics = text_column(table, "metric")
    names = set(metrics)
    metric = metric or manifest.get("metric") or next((m for m in DEFAULT_METRICS if m in names), sorted(names)[0])
    if metric not in names:
        raise ConfigError(f"--metric must be one of {', '.join(sorted(names))}; got {metric!r}.")
    keys = list(manifest["grid"])[:2]
    axes = [list(dict.fromkeys(manifest["grid"][k])) for k in keys] + ([[None]] if len(keys) == 1 else [])
    point = table["point"].to_numpy()
    sel = metrics == metric
    gen, value = table["generation"].to_numpy(), table["value"].to_numpy()
    cells: dict[tuple[int, int], list[float]] = {}
    for i, p in enumerate(manifest["points"]):
        here = sel & (point == i)
        if not here.any():
            continue
        last = value[here & (gen == gen[here].max())]
        ij = tuple(axes[a].index(p["values"][k]) for a, k in enumerate(keys)) + ((0,) if len(keys) == 1 else ())
        cells.setdefault(ij, []).append(float(np.nanmedian(last)))
    grid = np.full((len(axes[0]), len(axes[1])), np.nan)
    for (i, j), v in cells.items():
        grid[i, j] = np.mean(v)
    return metric, keys, axes, grid


def plot_heatmap(metric: str, keys: list[str], axes: list[list[Any]], grid: np.ndarray, path: Path) -> None:
    from ..analysis.report import pyplot, save_figure

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(1.2 + 1.0 * grid.shape[1], 1.0 + 0.6 * grid.shape[0]), dpi=110)
    im = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, "failed" if np.isnan(v) else f"{v:.3g}", ha="center", va="center", color="w", fontsize=8)
    ax.set_yticks(range(len(axes[0])), [str(v) for v in axes[0]])
    ax.set_ylabel(keys[0])
    ax.set_xticks(range(len(axes[1])), [str(v) for v in axes[1]])
    ax.set_xlabel(keys[1] if len(keys) > 1 else "")
    ax.set_title(f"{metric}: median at the final generation")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save_figure(fig, path)


def build_sweep_report(out: Path, metric: str | None = None) -> Path:
    """Write ``report.html`` (the heatmap and the per-point status table) from the sweep directory alone."""
    from ..analysis.report import PAGE, _img

    manifest = RunStore(out).read_manifest()
    rows = "".join(f"<tr><td>{p['dir']}</td><td>{html.escape(str(p['values']))}</td><td>{p['status']}</td>"
                   f"<td>{html.escape(p.get('error', ''))}</td></tr>" for p in manifest["points"])
    figure = "<p>no completed point</p>"
    if (out / "sweep.parquet").exists():
        m, keys, axes, grid = final_grid(out, metric)
        plot_heatmap(m, keys, axes, grid, out / "figures" / "heatmap.png")
        figure = _img(out / "figures" / "heatmap.png")
    body = (f"<p>grid: {html.escape(json.dumps(manifest['grid']))} · status {manifest['status']}</p>{figure}"
            f"<table><tr><th>point</th><th>values</th><th>status</th><th>error</th></tr>{rows}</table>")
    path = out / "report.html"
    atomic_write(path, PAGE.format(title=html.escape(f"modelcollapse sweep: {manifest['name']}"), body=body))
    return path


@click.command()
@click.argument("config")
@click.option("--grid", "grid_items", multiple=True, metavar="KEY=V1,V2,...", help="A grid axis (repeatable).")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True, help="Worker processes (local) or Ray CPUs.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Where points run.")
@click.option("--address", help="Ray cluster to join: 'auto' or ray://HOST:10001.")
@click.option("--out", type=click.Path(path_type=Path), help="Sweep directory (default sweeps/NAME).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key for every point.")
@click.option("--metric", help="Metric of the heatmap (default: the config's sweep.metric, else recall, w2_sq, ...).")
@click.option("--resume", is_flag=True, help="Skip complete points and resume partial ones in --out.")
@click.option("--quiet", is_flag=True, help="No per-point lines.")
def sweep(config, grid_items, workers, executor, address, out, overrides, metric, resume, quiet):
    """Run CONFIG (YAML or preset) at every point of a grid, in parallel, into one sweep directory."""
    from ..cli import friendly

    @friendly
    def go():
        spec = ExecutorSpec(kind=executor, address=address, workers=workers, retries=0)  # a point records its own failure
        path, manifest = run_sweep(config, list(grid_items), out, list(overrides), workers=workers, resume=resume, quiet=quiet,
                                   executor=spec)
        if metric:
            build_sweep_report(path, metric)
        failed = [p for p in manifest["points"] if p["status"] == "failed"]
        if not quiet:
            click.echo(f"{len(manifest['points']) - len(failed)} of {len(manifest['points'])} points complete; report: {path / 'report.html'}")
        if failed:
            raise RunError(f"{len(failed)} point(s) failed, first: {failed[0]['dir']}: {failed[0].get('error')}")

    go()
