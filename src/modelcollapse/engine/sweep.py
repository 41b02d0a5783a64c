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
``docs/scale.md``). Without ``--grid`` the config's ``sweep.grid`` is used. A failed point is marked failed and the
others finish (exit 1 at the end). ``--resume`` skips complete points and resumes partial ones from their checkpoints.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CLI, ConfigError, RunError, Spelling
from ..rundir.atomic import atomic_save
from ..rundir.lock import refuse_existing
from ..rundir.store import RunStore, prepare_out
from .executors import ExecutorSpec, map_tasks


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


def check_grid(grid: Any, where: str) -> dict[str, list[Any]]:
    """``grid`` as a ``{key: [values]}`` dict, each list non-empty (an empty axis would make a sweep of no point, which
    would "complete" having run nothing); ``where`` names it in errors (``sweep.grid`` or ``grid``)."""
    if not isinstance(grid, dict):
        raise ConfigError(f"{where} must be a mapping of config keys to lists of values; got {grid!r}.")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}[{key!r}] must be a non-empty list of values; got {values!r}.")
    return dict(grid)


def points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in order (the last key varies fastest)."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def point_config(raw: dict[str, Any], values: dict[str, Any], trust_code: bool = False):
    """The validated config of one grid point (``sweep`` section removed, name suffixed with the point's values)."""
    from ..config import set_dotted
    from .plan import validate

    tree = {k: v for k, v in raw.items() if k != "sweep"}
    for key, value in values.items():
        tree = set_dotted(tree, key, value)
    tree["name"] = f"{raw.get('name', 'sweep')}[{','.join(f'{k}={v}' for k, v in values.items())}]"
    return validate(tree, trust_code=trust_code)


def run_point(
    raw: dict[str, Any],
    values: dict[str, Any],
    out: str,
    resume: bool,
    trust_code: bool = False,
    spelling: Spelling = CLI,
) -> dict[str, Any]:
    """Run (or resume) one point into ``out``; returns its status (never raises: a failure is a result)."""
    from .runner import execute

    try:
        manifest = execute(
            point_config(raw, values, trust_code), Path(out), resume=resume, quiet=True, spelling=spelling
        )
        return {"status": manifest.get("status", "complete"), "reason": manifest.get("reason")}
    except Exception as err:  # noqa: BLE001  (recorded per point; the sweep goes on)
        return {"status": "failed", "error": f"{type(err).__name__}: {err}"}


def run_point_job(job: tuple) -> dict[str, Any]:
    """:func:`run_point` on one ``(raw, values, out, resume, trust_code, spelling)`` tuple (a top-level function for
    pools and Ray)."""
    return run_point(*job)


def run_sweep(
    source: str | dict[str, Any],
    grid_items: list[str] | dict[str, list[Any]] | None,
    out: Path | None,
    overrides: list[str],
    *,
    workers: int = 1,
    resume: bool = False,
    quiet: bool = True,
    executor: ExecutorSpec | None = None,
    spelling: Spelling = CLI,
    plugins: list[str] | tuple[str, ...] = (),
    trust_code: bool = False,
    overwrite: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Run a sweep (the one code path of ``modelcollapse sweep`` and ``mc.sweep``); returns its directory and
    manifest. ``source``: a YAML path or preset, or a raw config dict; ``grid_items``: ``--grid`` strings or a
    ``{key: [values]}`` dict. ``executor`` (default: local with ``workers``) runs the points, one task each.
    ``trust_code``, ``overwrite``, ``spelling``: as for :func:`~modelcollapse.engine.runner.run_config`."""
    from ..config import apply_overrides, load_raw
    from .runner import check_out, with_plugins

    raw = with_plugins(
        apply_overrides(load_raw(source) if isinstance(source, str) else dict(source), overrides), plugins
    )
    if isinstance(grid_items, dict):
        grid = check_grid(grid_items, "grid")
    elif grid_items:
        grid = parse_grid(grid_items)
    else:
        section = raw.get("sweep") or {}
        grid = check_grid((section.get("grid") if isinstance(section, dict) else section) or {}, "sweep.grid")
    if not grid:
        where = "grid={key: [values]}" if spelling is not CLI else "--grid key=v1,v2,..."
        raise ConfigError(f"sweep needs {where} or a 'sweep: {{grid: ...}}' section in the config.")
    name = str(raw.get("name", Path(source).stem if isinstance(source, str) else "sweep"))
    out = Path(out) if out else Path("sweeps") / name
    check_out(out, spelling)
    prepare_out(out, overwrite=overwrite, resume=resume, spelling=spelling)
    if not resume:
        refuse_existing(out, spelling)
    todo = points(grid)
    for values in todo:  # validate every point before running any
        point_config(raw, values, trust_code)
    with RunStore(out).lock():  # one sweep per directory; each point's run also holds its own directory's lock
        return out, _run_points(
            raw, name, grid, todo, out, resume, quiet, executor or ExecutorSpec(workers=workers), spelling, trust_code
        )


def _run_points(
    raw: dict[str, Any],
    name: str,
    grid: dict[str, list[Any]],
    todo: list[dict[str, Any]],
    out: Path,
    resume: bool,
    quiet: bool,
    spec: ExecutorSpec,
    spelling: Spelling = CLI,
    trust_code: bool = False,
) -> dict[str, Any]:
    """The body of :func:`run_sweep`, under the sweep directory's lock; returns the sweep manifest."""
    manifest = {
        "name": name,
        "grid": grid,
        "metric": (raw.get("sweep") or {}).get("metric"),
        "status": "running",
        "points": [{"values": v, "dir": f"points/{i:03d}", "status": "pending"} for i, v in enumerate(todo)],
    }
    store = RunStore(out)
    old = store.read_manifest() if resume else {}
    if old and old.get("grid") != json.loads(json.dumps(grid)):
        raise ConfigError(
            f"{spelling.flag('resume')}: the grid differs from {out}/manifest.json's {old.get('grid')}; "
            "resume with the same grid."
        )
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
            print(f"point {i:03d} {manifest['points'][i]['values']}: {result['status']}", flush=True)

    jobs = [
        (raw, p["values"], str(out / p["dir"]), (out / p["dir"] / "config.yaml").exists(), trust_code, spelling)
        for _, p in pending
    ]
    for outcome in map_tasks(run_point_job, jobs, spec):  # in process, a process pool or Ray (see executors)
        record(
            pending[outcome.index][0],
            outcome.value if not outcome.error else {"status": "failed", "error": outcome.error},
        )
    failed = [p for p in manifest["points"] if p["status"] == "failed"]
    manifest["status"] = "failed" if failed else "complete"
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    write_table(out, manifest, spelling)
    store.write_manifest(manifest)
    return manifest


def write_table(out: Path, manifest: dict[str, Any], spelling: Spelling = CLI) -> None:
    """Combine the completed points' metric rows into ``sweep.parquet`` with one column per grid key."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for i, p in enumerate(manifest["points"]):
        if p["status"] == "failed":
            continue
        if not (out / p["dir"] / "metrics.parquet").exists():  # never a sweep table silently short of a point's rows
            raise RunError(
                f"point {p['dir']} is {p['status']} but has no metrics.parquet; "
                f"rerun the sweep with {spelling.flag('resume')}."
            )
        t = RunStore(out / p["dir"]).read_metrics()
        t = t.append_column("point", pa.array(np.full(t.num_rows, i, np.int64)))
        for key in manifest["grid"]:
            value = p["values"][key]
            column = (
                pa.array([value] * t.num_rows)
                if isinstance(value, (int, float)) and not isinstance(value, bool)
                else pa.array([str(value)] * t.num_rows)
            )
            t = t.append_column(key, column.cast(pa.float64()) if pa.types.is_integer(column.type) else column)
        tables.append(t)
    if tables:
        atomic_save(
            out / "sweep.parquet", lambda tmp: pq.write_table(pa.concat_tables(tables, promote_options="default"), tmp)
        )
