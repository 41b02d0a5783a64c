"""What an audit writes: the one-screen summary, ``audit.json`` (the issue's schema), ``audit.parquet`` (tidy) and
``report.html`` (verdict table, reference-vs-candidate histograms and quantile plots, rank-frequency plots for text,
a PCA projection of the features), every file written atomically, figures drawn through ``analysis/plots.py``."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from ..version import __version__
from ..analysis.plots import pyplot, png_bytes
from ..rundir.atomic import atomic_save, atomic_write
from .calibrate import overall
from .indicators import words_of


def _num(v: float):
    return None if v is None or not np.isfinite(v) else float(v)


def synthetic_share(rows) -> dict | None:
    """``{"value", "ci", "signal", "identified", "reason"}`` of the ``synthetic_share`` indicator, clipped to [0, 1]
    (the raw estimate, in the indicator row, can fall below 0 on real data); value and interval null with
    ``identified`` false and the ``reason`` where the scores do not fit the mixture (``provenance.identification``);
    None where no provenance signal applies (no LM, no watermark key, or not text)."""
    row = next((r for r in rows if r.name == "synthetic_share"), None)
    if row is None:
        return None
    clip = lambda v: _num(min(max(v, 0.0), 1.0)) if np.isfinite(v) else None  # noqa: E731
    signal = "watermark_z" if any(r.name == "watermark_z" for r in rows) else "machine_score+log_ppl"
    return {"value": clip(row.value), "ci": [clip(v) for v in row.ci], "signal": signal,
            "identified": row.note is None, "reason": row.note}


def as_json(result) -> dict:
    """The ``audit.json`` document (issue 16's schema, plus ``read``, ``options``, ``seconds`` and each indicator's
    ``z``); ``synthetic_share`` per :func:`synthetic_share`."""
    ref = result.reference
    return {
        "version": __version__,
        "kind": result.kind,
        "reference": {"path": ref.path, "n": ref.n, "read": ref.seen},
        "options": result.options,
        "seconds": round(result.seconds, 3),
        "candidates": [
            {"name": c.name, "path": c.path, "n": c.n, "read": c.seen, "verdict": overall(rows),
             "indicators": [{"name": r.name, "group": r.group, "value": _num(r.value), "ci": [_num(v) for v in r.ci],
                             "null": [_num(v) for v in r.null], "z": _num(r.z), "verdict": r.verdict,
                             **({"note": r.note} if r.note else {})} for r in rows],
             "synthetic_share": synthetic_share(rows)}
            for c, rows in zip(result.candidates, result.rows)
        ],
    }


def tidy(result) -> list[dict]:
    out = []
    for c, rows in zip(result.candidates, result.rows):
        for r in rows:
            out.append({"candidate": c.name, "n": c.n, "indicator": r.name, "group": r.group, "value": r.value,
                        "ci_low": r.ci[0], "ci_high": r.ci[1], "null_low": r.null[0], "null_high": r.null[1],
                        "null_mean": r.null_mean, "z": r.z, "verdict": r.verdict, "note": r.note})
    return out


def summary(result) -> str:
    """One line per indicator and candidate (value, 95% interval, null band, verdict), then each overall verdict."""
    ref = result.reference
    lines = [f"audit ({result.kind}): reference {ref.path}: {ref.n} records used of {ref.seen} read"]
    for c, rows in zip(result.candidates, result.rows):
        lines.append(f"candidate {c.name}: {c.n} records used of {c.seen} read")
        for r in rows:
            lines.append(f"  {r.group:<10} {r.name:<18} {r.value:>10.4g}  ci [{r.ci[0]:.4g}, {r.ci[1]:.4g}]"
                         f"  null [{r.null[0]:.4g}, {r.null[1]:.4g}]  {r.verdict}")
        share = synthetic_share(rows)
        if share is not None and not share["identified"]:
            lines.append(f"  synthetic share: {share['reason']}")
        elif share is not None and share["value"] is not None:
            lo, hi = (f"{v:.3g}" if v is not None else "nan" for v in share["ci"])
            lines.append(f"  synthetic share: {share['value']:.3g}  ci [{lo}, {hi}]  (from {share['signal']})")
        lines.append(f"  overall: {overall(rows)}")
    run = result.options.get("lm_run") or {}
    if run:
        lines.append(f"LM {run['lm']} on {run['device']}: {run['records_scored']} records, {run['tokens']} tokens in "
                     f"{run['seconds']:.1f} s ({run['tokens_per_s']} tokens/s)")
    lines.append(f"verdict: {result.verdict}  ({result.seconds:.1f} s)")
    return "\n".join(lines)


def write(result, out: Path) -> Path:
    """Write ``audit.json``, ``audit.parquet``, ``report.html`` and ``scores.parquet`` (``scores.py``) into ``out``;
    returns the report's path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    rows = tidy(result)
    table = pa.Table.from_pylist(rows) if rows else pa.table({})
    atomic_save(out / "audit.parquet", lambda tmp: pq.write_table(table, tmp))
    atomic_write(out / "audit.json", json.dumps(as_json(result), indent=2))
    atomic_write(out / "report.html", page(result))
    if getattr(result, "pools", None):
        from .scores import write as write_scores

        write_scores(result, out)
    return out / "report.html"


# -- the page --------------------------------------------------------------------------------------------------------
def _img(fig) -> str:
    import base64

    data = png_bytes(fig)
    pyplot().close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _values(d, kind: str) -> np.ndarray:
    """A 1-D view of a dataset for histograms: the first column of a table (named on the axes by
    :func:`axis_label`), record lengths in words for text, mean pixel intensity for images."""
    if kind == "text":
        return np.array([len(words_of(t)) for t in d.records], float)
    x = np.asarray(d.records, float)
    return x[:, 0] if kind == "table" else x.reshape(len(x), -1).mean(1)


def axis_label(result) -> str:
    """What :func:`_values` shows: a table's first column by its name (``feature 0`` for an array)."""
    if result.kind == "table":
        columns = result.reference.columns
        return columns[0] if columns else "feature 0"
    return {"text": "words per record", "images": "mean pixel intensity"}[result.kind]


def figures(result) -> list[tuple[str, str]]:
    plt = pyplot()
    sets = [("reference", result.reference), *[(c.name, c) for c in result.candidates]]
    label = axis_label(result)
    out = []
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    vals = {name: _values(d, result.kind) for name, d in sets}
    bins = np.histogram_bin_edges(np.concatenate(list(vals.values())), 40)
    q = np.linspace(0.005, 0.995, 199)
    for name, v in vals.items():
        a.hist(v, bins=bins, density=True, histtype="step", label=name[-40:])
        if name != "reference":
            b.plot(np.quantile(vals["reference"], q), np.quantile(v, q), label=name[-40:])
    lim = [bins[0], bins[-1]]
    b.plot(lim, lim, "k:", lw=1)
    a.set_xlabel(label), a.set_ylabel("density"), a.legend(fontsize=7)
    b.set_xlabel(f"reference quantiles ({label})"), b.set_ylabel("candidate quantiles")
    fig.tight_layout()
    out.append(("Histograms and quantile plot", _img(fig)))
    if result.kind == "text":
        from collections import Counter

        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for name, d in sets:
            counts = np.sort(np.array(list(Counter(w for t in d.records for w in words_of(t)).values())))[::-1]
            ax.loglog(np.arange(1, len(counts) + 1), counts / counts.sum(), label=name[-40:])
        ax.set_xlabel("rank"), ax.set_ylabel("word frequency"), ax.legend(fontsize=7)
        fig.tight_layout()
        out.append(("Rank-frequency", _img(fig)))
    return out


def pca_figure(result, pools) -> tuple[str, str]:
    plt = pyplot()
    ref = pools[0].features
    mu = ref.mean(0)
    _, _, vt = np.linalg.svd(ref - mu, full_matrices=False)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    names = ["reference", *[c.name for c in result.candidates]]
    for name, p in zip(names, pools):
        z = (p.features[:1000] - mu) @ vt[:2].T
        ax.scatter(z[:, 0], z[:, 1], s=4, alpha=0.5, label=name[-40:])
    ax.set_xlabel("PC 1 of the reference features"), ax.set_ylabel("PC 2"), ax.legend(fontsize=7, markerscale=3)
    fig.tight_layout()
    return "PCA projection of the features", _img(fig)


def perplexity_figure(result, pools) -> tuple[str, str]:
    """Histograms of the per-sequence log perplexity under the reference LM (scored records of each input)."""
    plt = pyplot()
    names = ["reference", *[c.name for c in result.candidates]]
    values = [p.extra["log_ppl"][np.isfinite(p.extra["log_ppl"])] for p in pools]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    bins = np.histogram_bin_edges(np.concatenate(values), 40)
    for name, v in zip(names, values):
        ax.hist(v, bins=bins, density=True, histtype="step", label=name[-40:])
    ax.axvline(np.percentile(values[0], 5), color="k", ls=":", lw=1, label="reference 5th percentile")
    ax.set_xlabel(f"log perplexity under {result.options.get('lm')} (nats a token)"), ax.set_ylabel("density")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return "Perplexity under the reference LM", _img(fig)


def page(result) -> str:
    rows = []
    for c, rs in zip(result.candidates, result.rows):
        for r in rs:
            rows.append(f"<tr class={r.verdict}><td>{html.escape(c.name)}</td><td>{r.group}</td><td>{r.name}</td>"
                        f"<td>{r.value:.4g}</td><td>[{r.ci[0]:.4g}, {r.ci[1]:.4g}]</td>"
                        f"<td>[{r.null[0]:.4g}, {r.null[1]:.4g}]</td><td>{r.z:.2f}</td><td>{r.verdict}</td></tr>")
    figs = figures(result)
    if getattr(result, "pools", None):
        figs.append(pca_figure(result, result.pools))
        if "log_ppl" in result.pools[0].extra and np.isfinite(result.pools[0].extra["log_ppl"]).any():
            figs.append(perplexity_figure(result, result.pools))
    ref = result.reference
    head = (f"<p>kind {result.kind}; reference {html.escape(ref.path)}: {ref.n} records used of {ref.seen} read; "
            + "; ".join(f"{html.escape(c.name)}: {c.n} of {c.seen}, <b>{v}</b>" for c, v in zip(result.candidates, result.verdicts))
            + f"</p><p>overall verdict: <b>{result.verdict}</b></p>")
    return ("<!doctype html><meta charset=utf-8><title>modelcollapse audit</title><style>body{font-family:sans-serif;"
            "max-width:1100px;margin:auto}td,th{padding:2px 8px;font-size:13px}.watch{background:#fff3c4}"
            ".collapsed{background:#ffd0d0}</style><h1>Collapse audit</h1>" + head
            + "<table><tr><th>candidate</th><th>group</th><th>indicator</th><th>value</th><th>95% interval</th>"
            "<th>null band</th><th>z</th><th>verdict</th></tr>" + "".join(rows) + "</table>"
            + "".join(f"<h2>{t}</h2>{im}" for t, im in figs))


__all__ = ["as_json", "summary", "tidy", "write"]
