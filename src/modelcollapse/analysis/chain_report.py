"""The self-contained HTML report of a telephone run, built from the run directory alone.

It shows the drift curves (median and 10–90 % band across chains, per task), an attractor plot per property (final
value against initial value, with the fitted line and the identity), the attractor table, and for every chain a
timeline of its texts with a word-level diff against the previous generation. The page is ``chain.html.j2``
(every text escaped there); figures are PNGs embedded as base64 (and also saved under ``figures/``).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..rundir.store import RunStore
from . import plots
from .pages import Picture, macro, write_page


def word_diff(before: str, after: str) -> list[tuple[str, str]]:
    """``after`` as ``(op, words)`` pieces against ``before``: op ``"equal"``, ``"delete"`` (words of ``before``
    removed) or ``"insert"`` (new words). Words are whitespace-separated tokens; the diff is difflib's longest
    matching blocks.

    >>> word_diff("the red car", "the blue car")
    [('equal', 'the'), ('delete', 'red'), ('insert', 'blue'), ('equal', 'car')]
    """
    a, b = before.split(), after.split()
    pieces = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op in ("equal", "delete", "replace"):
            pieces.append(("equal" if op == "equal" else "delete", " ".join(a[i1:i2])))
        if op in ("insert", "replace"):
            pieces.append(("insert", " ".join(b[j1:j2])))
    return pieces


def word_diff_html(before: str, after: str) -> str:
    """``after`` as escaped HTML with the words removed from ``before`` in ``<del>`` and the new ones in ``<ins>``
    (:func:`word_diff`, drawn by the ``diff`` macro of ``diff.html.j2``, as the page draws it).

    >>> word_diff_html("the red <car>", "the blue <car>")
    'the <del>red</del> <ins>blue</ins> &lt;car&gt;'
    """
    return str(macro("diff.html.j2", "diff")(word_diff(before, after)))


def _fmt(value) -> str:
    return "–" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.3g}"


def _timeline(records: list[dict]) -> list[dict]:
    """One chain's generations for the page: ``generation``, ``words``, ``note`` (backend details), ``text`` and
    ``diff`` (against the previous generation; None for the first)."""
    out, previous = [], None
    for r in records:
        meta = r.get("meta") or {}
        note = ", ".join(
            f"{k}: {v}" for k, v in meta.items() if k in ("backend", "model", "finish_reason", "new_tokens")
        )
        out.append(
            {
                "generation": r["generation"],
                "words": len(r["text"].split()),
                "note": note,
                "text": r["text"],
                "diff": None if previous is None else word_diff(previous, r["text"]),
            }
        )
        previous = r["text"]
    return out


def _read_table(root: Path) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    path = root / "metrics.parquet"
    if not path.exists():
        raise ConfigError(f"{root} has no metrics.parquet yet; finish the run with `modelcollapse chain ... --resume`.")
    t = pq.read_table(path)
    return {name: np.asarray(t.column(name).to_pylist()) for name in t.column_names}


def build_report(run: RunStore | str | Path) -> Path:
    """Write ``report.html`` (and ``figures/*.png``) for a telephone run directory; return the report's path."""
    store = RunStore.of(run)
    root = store.root
    config = store.read_config()
    table = _read_table(root)
    attractors = json.loads((root / "attractors.json").read_text()) if (root / "attractors.json").exists() else []
    metrics = sorted(set(table["metric"].tolist()))
    figures = {"drift": drift_figure(table, metrics)}
    if attractors:
        figures["attractors"] = attractor_figure(table, attractors)
    for name, fig in figures.items():
        plots.save_figure(fig, root / "figures" / f"{name}.png", dpi=110, bbox_inches="tight")

    summary = []
    for arm in sorted(set(table["arm"])):
        for metric in metrics:
            y = chain_series(table, arm, metric)
            with plots.SilenceNanWarnings():
                first, last = np.nanmedian(y[:, 0]), np.nanmedian(y[:, -1])
            summary.append([arm, metric, _fmt(first), _fmt(last)])
    attractor_rows = [
        [
            a["arm"],
            a["metric"],
            _fmt(a["slope"]),
            _fmt(a["intercept"]),
            _fmt(a["strength"]),
            _fmt(a["position"]),
            str(a["n"]),
        ]
        for a in attractors
    ]
    by_chain: dict[int, list[dict]] = {}
    for r in sorted(store.read_steps(), key=lambda r: (r["chain"], r["generation"])):
        by_chain.setdefault(r["chain"], []).append(r)
    chains = [
        {
            "id": cid,
            "task": str(rs[0]["task"]),
            "start": rs[0]["start"],
            "seed": rs[0]["seed"],
            "generations": len(rs) - 1,
            "timeline": _timeline(rs),
        }
        for cid, rs in by_chain.items()
    ]
    backend = config.get("backend", {})
    model = (
        backend.get("model")
        if backend.get("kind") == "openai"
        else backend.get("model_dir") or "SmolLM2-135M-Instruct, packaged GGUF"
    )
    return write_page(
        root / "report.html",
        "chain.html.j2",
        title=f"{config.get('name', 'telephone')}: telephone chains",
        config=config,
        backend=f"{backend.get('kind')} ({model})",
        decoding=config.get("decoding", {}),
        drift=Picture.of(root / "figures" / "drift.png"),
        attractors=Picture.of(root / "figures" / "attractors.png") if attractors else None,
        summary=summary,
        attractor_rows=attractor_rows,
        chains=chains,
    )


# -- the figures: drift curves and attractor plots -----------------------------------------------------------------
def chain_series(table: dict[str, np.ndarray], arm: str, metric: str) -> np.ndarray:
    """Values of one (task, metric) as ``(chains, generations + 1)``."""
    keep = (table["arm"] == arm) & (table["metric"] == metric)
    chains, gens, values = table["chain"][keep], table["generation"][keep], table["value"][keep]
    ids = np.unique(chains)
    out = np.full((ids.size, gens.max() + 1), np.nan)
    out[np.searchsorted(ids, chains), gens] = values
    return out


def drift_figure(table: dict[str, np.ndarray], metrics: list[str]):
    """One panel per metric: per task, the median across chains and the 10–90 % band, against generation (the
    Figure, open: :func:`build_report` saves it)."""
    plt = plots.pyplot()

    cols = 3
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for arm in sorted(set(table["arm"])):
            y = chain_series(table, arm, metric)
            with np.errstate(all="ignore"), plots.SilenceNanWarnings():
                med, lo, hi = (np.nanpercentile(y, q, axis=0) for q in (50, 10, 90))
            x = np.arange(y.shape[1])
            ax.plot(x, med, marker="o", ms=3, label=arm)
            ax.fill_between(x, lo, hi, alpha=0.2)
        ax.set_title(metric, fontsize=10)
        plots.generation_axis(ax)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def attractor_figure(table: dict[str, np.ndarray], attractors: list[dict]):
    """One panel per property: final against initial value per chain, the fitted line, the identity line (the
    Figure, open)."""
    plt = plots.pyplot()

    metrics = sorted({a["metric"] for a in attractors})
    cols = 3
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for i, arm in enumerate(sorted(set(table["arm"]))):
            y = chain_series(table, arm, metric)
            x0, x1 = y[:, 0], y[:, -1]
            color = f"C{i}"
            ax.scatter(x0, x1, s=14, color=color, label=arm)
            fit = next((a for a in attractors if a["arm"] == arm and a["metric"] == metric), None)
            if fit and fit["slope"] is not None:
                grid = np.linspace(np.nanmin(x0), np.nanmax(x0), 2)
                ax.plot(grid, fit["intercept"] + fit["slope"] * grid, color=color, lw=1)
        lims = [np.nanmin([ax.get_xlim()[0], ax.get_ylim()[0]]), np.nanmax([ax.get_xlim()[1], ax.get_ylim()[1]])]
        ax.plot(lims, lims, color="#999", lw=0.8, ls="--")
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("initial (generation 0)")
        ax.set_ylabel("final")
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    if metrics:
        axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
