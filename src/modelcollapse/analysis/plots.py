"""Figures and the page they are embedded in: matplotlib loaded on first use, atomic PNG writes, inline images.

Every report module (runs, sweeps, chains, anatomy, gallery) draws through here, so ``import modelcollapse`` never
imports matplotlib and every figure is written like every other run-directory file (temporary file, then rename).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

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


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
th{{background:#f3f3f3}}.figs img{{max-width:48%;margin:4px}}.meta{{color:#666;font-size:13px}}
pre{{background:#f7f7f7;padding:1em;font-size:12px}}</style></head><body><h1>{title}</h1>{body}</body></html>"""
