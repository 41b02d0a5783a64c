"""The report of a sweep directory: a heatmap of one metric's final-generation median over the first two grid keys,
the scaling view (``scaling.py``) where the grid varies a training-set size, and the per-point status table, built
from the sweep directory alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..rundir.store import RunStore
from ..rundir.table import text_column
from . import plots
from .pages import Picture, write_page

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
    from .scaling import section as scaling_section
    from .scaling import sweep_scaling

    store = RunStore.of(out)
    out, manifest = store.root, store.read_manifest()
    heatmap = scaling = None
    if (out / "sweep.parquet").exists():
        heatmap_figure(*final_grid(store, metric), out / "figures" / "heatmap.png")
        heatmap = Picture.of(out / "figures" / "heatmap.png")
        scaling = scaling_section(out, *sweep_scaling(store))
    points = [[p["dir"], str(p["values"]), p["status"], p.get("error", "")] for p in manifest["points"]]
    return write_page(
        out / "report.html",
        "sweep.html.j2",
        title=f"modelcollapse sweep: {manifest['name']}",
        grid=json.dumps(manifest["grid"]),
        status=manifest["status"],
        heatmap=heatmap,
        scaling=scaling,
        points=points,
    )


def heatmap_figure(metric: str, keys: list, axes: list, grid: np.ndarray, path: Path):
    """A sweep's heatmap: ``grid`` ``(len(axes[0]), len(axes[1]))`` of final-generation medians, NaN cells "failed".
    Returns the (closed) Figure."""
    fig, ax = plots.pyplot().subplots(figsize=(1.2 + 1.0 * grid.shape[1], 1.0 + 0.6 * grid.shape[0]), dpi=110)
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
    plots.save_figure(fig, path)
    return fig
