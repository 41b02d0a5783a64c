"""Figures and the page they are embedded in: matplotlib loaded on first use, atomic PNG writes, inline images.

Every report module (runs, sweeps, chains, anatomy, gallery) draws through here, so ``import modelcollapse`` never
imports matplotlib and every figure is written like every other run-directory file (temporary file, then rename).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from ..engine.store import atomic_write


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend, imported on first use (``import modelcollapse`` stays light)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, **savefig) -> None:
    """Write ``fig`` as a PNG to ``path`` atomically (like every file of a run directory), then close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", **savefig)
    pyplot().close(fig)
    atomic_write(path, buffer.getvalue())


def img(path: Path) -> str:
    """An ``<img>`` tag with the PNG at ``path`` embedded (reports are one self-contained file)."""
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


# -- the figures of every report ---------------------------------------------------------------------------------
def metric_figure(metric: str, data: dict, refs: dict, path: Path) -> None:
    """Median and interquartile band per arm against generation (``data``: {arm: Curve}), with each arm's reference
    ``refs[arm]`` = (values, label, statistic), a closed form or published curve, dashed."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=110)
    positive = all(np.nanmin(c.q25) > 0 for c in data.values() if np.isfinite(c.q25).any())
    spread = max((np.nanmax(c.q75) / max(np.nanmin(c.q25), 1e-300) for c in data.values() if np.isfinite(c.q75).any()), default=1)
    for i, (arm, c) in enumerate(data.items()):
        color = f"C{i % 10}"
        ax.plot(c.generations, c.median, color=color, lw=1.6, label=f"{arm} (median)" if len(data) > 1 else "median")
        ax.fill_between(c.generations, c.q25, c.q75, color=color, alpha=0.2, lw=0)
        ref = refs.get(arm)
        if ref is not None:
            values, label, stat = ref
            if stat == "mean":
                ax.plot(c.generations, c.mean, color=color, lw=0.8, ls=":", label="replicate mean" if len(data) == 1 else None)
            ax.plot(c.generations, values, color="k", lw=1.0, ls="--", label=label if i == 0 else None)
    if positive and spread > 100:
        ax.set_yscale("log")
    ax.set_xlabel("generation")
    ax.set_ylabel(metric)
    ax.set_title(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path)


def anatomy_figure(anatomy, labels: dict, metric: str, path: Path) -> None:
    """Two panels: the divergence of every cell per generation (``labels``: {levels: arm label}), and the factorial
    terms per generation with ±2 s.e. bands (``anatomy``: an ``analysis.anatomy.Anatomy``)."""
    plt = pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), dpi=110)
    g = anatomy.generations
    for i, (levels, y) in enumerate(sorted(anatomy.cells.items(), key=lambda kv: (sum(kv[0]), kv[0]))):
        left.plot(g, y, color=f"C{i % 10}", lw=1.6, ls="-" if levels[0] else "--", label=labels[levels])
    left.set_title(f"{metric} per arm ({'/'.join(anatomy.factors)})")
    for i, (term, y) in enumerate(anatomy.terms.items()):
        right.plot(g, y, color="k" if i == 0 else f"C{(i - 1) % 10}", lw=2.2 if "×" not in term else 1.2,
                   ls=":" if i == 0 else ("-" if "×" not in term else "--"), label=term)
        e = anatomy.stderr[term]
        right.fill_between(g, y - 2 * e, y + 2 * e, color="k" if i == 0 else f"C{(i - 1) % 10}", alpha=0.12, lw=0)
    right.axhline(0, color="grey", lw=0.6)
    right.set_title(f"{metric}: {anatomy.coding} factorial terms (band: ±2 s.e.)")
    for ax in (left, right):
        ax.set_xlabel("generation")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path)


def heatmap_figure(metric: str, keys: list, axes: list, grid: np.ndarray, path: Path) -> None:
    """A sweep's heatmap: ``grid`` ``(len(axes[0]), len(axes[1]))`` of final-generation medians, NaN cells "failed"."""
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


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
th{{background:#f3f3f3}}.figs img{{max-width:48%;margin:4px}}.meta{{color:#666;font-size:13px}}
pre{{background:#f7f7f7;padding:1em;font-size:12px}}</style></head><body><h1>{title}</h1>{body}</body></html>"""
