"""The report of a sweep directory: a heatmap of one metric's final-generation median over the first two grid keys,
the scaling view (``scaling.py``) where the grid varies a training-set size, and the per-point status table, built
from the sweep directory alone."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..rundir.atomic import atomic_write
from ..rundir.store import RunStore
from ..rundir.table import text_column
from ..errors import ConfigError
from .plots import PAGE, heatmap_figure, img

DEFAULT_METRICS = ("recall", "w2_sq", "frechet", "tv", "test_mse", "nll_real")


def final_grid(out: RunStore | Path, metric: str | None = None) -> tuple[str, list[str], list[list[Any]], np.ndarray]:
    """The heatmap data: (metric, the two axis keys, their values, medians ``(len(v0), len(v1))`` of ``metric`` at
    each point's last generation, pooled over arms and replicates; a third grid key and beyond are averaged)."""
    import pyarrow.parquet as pq


    store = RunStore.of(out)
    manifest = store.read_manifest()
    table = pq.read_table(store.root / "sweep.parquet")
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


def build_sweep_report(out: RunStore | Path, metric: str | None = None) -> Path:
    """Write ``report.html`` (the heatmap, the scaling view where the grid varies a training-set size, and the
    per-point status table) from the sweep directory alone."""
    from .scaling import section as scaling_section, sweep_scaling

    store = RunStore.of(out)
    out, manifest = store.root, store.read_manifest()
    rows = "".join(f"<tr><td>{p['dir']}</td><td>{html.escape(str(p['values']))}</td><td>{p['status']}</td>"
                   f"<td>{html.escape(p.get('error', ''))}</td></tr>" for p in manifest["points"])
    figure = "<p>no completed point</p>"
    if (out / "sweep.parquet").exists():
        m, keys, axes, grid = final_grid(store, metric)
        heatmap_figure(m, keys, axes, grid, out / "figures" / "heatmap.png")
        figure = img(out / "figures" / "heatmap.png") + scaling_section(out, *sweep_scaling(store), img)[0]
    body = (f"<p>grid: {html.escape(json.dumps(manifest['grid']))} · status {manifest['status']}</p>{figure}"
            f"<table><tr><th>point</th><th>values</th><th>status</th><th>error</th></tr>{rows}</table>")
    path = out / "report.html"
    atomic_write(path, PAGE.format(title=html.escape(f"modelcollapse sweep: {manifest['name']}"), body=body))
    return path
