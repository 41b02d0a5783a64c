"""What every report's figures share: matplotlib loaded on first use, atomic PNG writes, PNG bytes for pages, and the
common axes and colours. Each report draws its own figures in its own module (a run's metric curves in
``report.py``, a sweep's heatmap in ``sweep_report.py``, the chains' drift in ``chain_report.py``, ...); pages embed
them through the one page builder, ``pages.py``.

``import modelcollapse`` never imports matplotlib, and every figure is written like every other run-directory file
(temporary file, then rename).
"""

from __future__ import annotations

import io
from pathlib import Path

from ..rundir.atomic import atomic_write


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend, imported on first use (``import modelcollapse`` stays
    light)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, **savefig) -> None:
    """Write ``fig`` as a PNG to ``path`` atomically (like every file of a run directory), then close it (a closed
    Figure still holds its axes and lines: every ``*_figure`` function returns it, for tests to inspect).

    Report modules call it as ``plots.save_figure`` so that one replacement of it sees every figure a report saves."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", **savefig)
    pyplot().close(fig)
    atomic_write(path, buffer.getvalue())


def png_bytes(fig) -> bytes:
    """``fig`` as PNG bytes, tightly cropped at 110 dpi (closed by the caller)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def generation_axis(ax) -> None:
    """Label ``ax``'s x axis "generation", with whole-number ticks (generations are whole numbers: no 2.5 ticks)."""
    ax.set_xlabel("generation")
    ax.xaxis.get_major_locator().set_params(integer=True)


def generation_color(i: int, n: int):
    """The colour of the ``i``-th of ``n`` generations drawn: viridis from the first (dark) to the last (yellow)."""
    return pyplot().cm.viridis(i / max(n - 1, 1))


class SilenceNanWarnings:
    """Silence numpy's all-NaN-slice warnings inside a ``with`` block (a metric undefined for a whole generation)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
