"""What an audit writes: the one-screen summary, ``audit.json`` (the issue's schema), ``audit.parquet`` (tidy) and
``report.html`` (verdict table, reference-vs-candidate histograms and quantile plots, rank-frequency plots for text,
a PCA projection of the features), every file written atomically. The figures are drawn here, with the shared helpers
of ``analysis/plots.py``; the page is ``audit.html.j2``, built by ``analysis/pages.py``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..analysis.pages import Picture, render
from ..analysis.plots import png_bytes, pyplot
from ..rundir.atomic import atomic_save, atomic_write
from ..version import __version__
from .calibrate import overall
from .indicators import words_of
from .reading import GLOSSARY, cards, caveat, clip_band, most_moved_features, toward


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
    clip = lambda v: _num(clip_band("synthetic_share", v, v)[0]) if np.isfinite(v) else None  # noqa: E731
    signal = "watermark_z" if any(r.name == "watermark_z" for r in rows) else "machine_score+log_ppl"
    return {
        "value": clip(row.value),
        "ci": [clip(v) for v in row.ci],
        "signal": signal,
        "identified": row.note is None,
        "reason": row.note,
    }


def as_json(result) -> dict:
    """The ``audit.json`` document (issue 16's schema, plus ``read``, ``options``, ``seconds`` and each indicator's
    ``z``); ``synthetic_share`` per :func:`synthetic_share`."""
    ref = result.reference
    return {
        "version": __version__,
        "kind": result.kind,
        "reference": {"path": ref.path, "n": ref.n, "read": ref.seen, **whole_block(result, 0)},
        "options": result.options,
        "seconds": round(result.seconds, 3),
        "candidates": [
            {
                "name": c.name,
                "path": c.path,
                "n": c.n,
                "read": c.seen,
                "verdict": overall(rows),
                "indicators": [
                    {
                        "name": r.name,
                        "group": r.group,
                        "value": _num(r.value),
                        "ci": [_num(v) for v in r.ci],
                        "null": [_num(v) for v in r.null],
                        "z": _num(r.z),
                        "verdict": r.verdict,
                        **({"note": r.note} if r.note else {}),
                    }
                    for r in rows
                ],
                "synthetic_share": synthetic_share(rows),
                **whole_block(result, i + 1),
            }
            for i, (c, rows) in enumerate(zip(result.candidates, result.rows))
        ],
    }


def whole_block(result, i: int) -> dict:
    """``{"whole_corpus": block}`` of input ``i`` (0: the reference) where one was computed (``whole.py``), else {}:
    descriptive numbers over every record, beside the indicators calibrated on the sample."""
    whole = getattr(result, "whole", None) or []
    block = whole[i] if i < len(whole) else None
    return {"whole_corpus": block} if block is not None else {}


def whole_lines(result) -> list[str]:
    """The summary's whole-corpus lines: one per input that has a block."""
    from .whole import LABELS

    lines = []
    for d, block in zip([result.reference, *result.candidates], getattr(result, "whole", None) or []):
        if block is not None:
            cells = ", ".join(f"{k} {block[k]:.4g}" for k in LABELS if k != "records")
            length = block["length"]
            lines.append(
                f"whole corpus {d.name}: {block['records']} records; {cells}; length q50 {length['q50']:.4g} "
                f"q99 {length['q99']:.4g} words"
            )
    return lines


def tidy(result) -> list[dict]:
    out = []
    for c, rows in zip(result.candidates, result.rows):
        for r in rows:
            out.append(
                {
                    "candidate": c.name,
                    "n": c.n,
                    "indicator": r.name,
                    "group": r.group,
                    "value": r.value,
                    "ci_low": r.ci[0],
                    "ci_high": r.ci[1],
                    "null_low": r.null[0],
                    "null_high": r.null[1],
                    "null_mean": r.null_mean,
                    "z": r.z,
                    "verdict": r.verdict,
                    "note": r.note,
                }
            )
    return out


def summary(result) -> str:
    """One line per indicator and candidate (value, 95% interval, null band, verdict), then each overall verdict."""
    ref = result.reference
    lines = [f"audit ({result.kind}): reference {ref.path}: {ref.n} records used of {ref.seen} read"]
    for c, rows in zip(result.candidates, result.rows):
        lines.append(f"candidate {c.name}: {c.n} records used of {c.seen} read")
        for r in rows:
            lines.append(
                f"  {r.group:<10} {r.name:<18} {r.value:>10.4g}  ci [{r.ci[0]:.4g}, {r.ci[1]:.4g}]"
                f"  null [{r.null[0]:.4g}, {r.null[1]:.4g}]  {r.verdict}"
            )
        share = synthetic_share(rows)
        if share is not None and not share["identified"]:
            lines.append(f"  synthetic share: {share['reason']}")
        elif share is not None and share["value"] is not None:
            lo, hi = (f"{v:.3g}" if v is not None else "nan" for v in share["ci"])
            lines.append(f"  synthetic share: {share['value']:.3g}  ci [{lo}, {hi}]  (from {share['signal']})")
        lines.append(f"  overall: {overall(rows)}")
        if caveat(rows):  # an ok that could not have been anything else
            lines.append(f"  {caveat(rows)}")
    run = result.options.get("lm_run") or {}
    if run:
        lines.append(
            f"LM {run['lm']} on {run['device']}: {run['records_scored']} records, {run['tokens']} tokens in "
            f"{run['seconds']:.1f} s ({run['tokens_per_s']} tokens/s)"
        )
    lines.extend(whole_lines(result))
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
def _png(fig) -> bytes:
    """``fig`` as PNG bytes, closed (the page embeds them; an audit writes no figure files)."""
    data = png_bytes(fig)
    pyplot().close(fig)
    return data


def _values(d, kind: str, column: int = 0) -> np.ndarray:
    """A 1-D view of a dataset for histograms: column ``column`` of a table (named on the axes by
    :func:`axis_label`), record lengths in words for text, mean pixel intensity for images."""
    if kind == "text":
        return np.array([len(words_of(t)) for t in d.records], float)
    x = np.asarray(d.records, float)
    return x[:, column] if kind == "table" else x.reshape(len(x), -1).mean(1)


def features_moved(result) -> list:
    """A table's columns, most moved first over every candidate (:func:`reading.most_moved_features`, the largest
    distance any candidate has), as ``(index, name, distance per candidate)``; empty for text and images."""
    if result.kind != "table":
        return []
    ref = result.reference
    per = [{f.index: f for f in most_moved_features(ref.records, c.records, ref.columns)} for c in result.candidates]
    order = sorted(per[0], key=lambda j: -max(p[j].distance for p in per))
    return [(j, per[0][j].name, [p[j].distance for p in per]) for j in order]


def axis_label(result, column: int = 0) -> str:
    """What :func:`_values` shows: a table's column ``column`` by its name (``feature N`` for an array)."""
    if result.kind == "table":
        columns = result.reference.columns
        return columns[column] if columns else f"feature {column}"
    return {"text": "words per record", "images": "mean pixel intensity"}[result.kind]


def distribution_figure(result) -> Picture:
    """Histograms and the quantile plot of every input: for a table its most-moved column, for text the record
    lengths, for images the mean intensity."""
    plt = pyplot()
    moved = features_moved(result)
    column = moved[0][0] if moved else 0
    label = axis_label(result, column)
    sets = [("reference", result.reference), *[(c.name, c) for c in result.candidates]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    vals = {name: _values(d, result.kind, column) for name, d in sets}
    bins = np.histogram_bin_edges(np.concatenate(list(vals.values())), 40)
    q = np.linspace(0.005, 0.995, 199)
    for name, v in vals.items():
        a.hist(v, bins=bins, density=True, histtype="step", label=name[-40:])
        if name != "reference":
            b.plot(np.quantile(vals["reference"], q), np.quantile(v, q), label=name[-40:])
    lim = [bins[0], bins[-1]]
    b.plot(lim, lim, "k:", lw=1, label="no change (y = x)")
    a.set_xlabel(label), a.set_ylabel("density"), a.legend(fontsize=7)
    b.set_xlabel(f"reference quantiles ({label})"), b.set_ylabel("candidate quantiles"), b.legend(fontsize=7)
    fig.tight_layout()
    what = f"the most-moved column, {label}" if moved else label
    return Picture(f"Distributions: {what}", _png(fig))


def rank_frequency_figure(result) -> Picture:
    """Word frequency against rank (log-log) of every input: text."""
    from collections import Counter

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, d in [("reference", result.reference), *[(c.name, c) for c in result.candidates]]:
        counts = np.sort(np.array(list(Counter(w for t in d.records for w in words_of(t)).values())))[::-1]
        ax.loglog(np.arange(1, len(counts) + 1), counts / counts.sum(), label=name[-40:])
    ax.set_xlabel("rank"), ax.set_ylabel("word frequency"), ax.legend(fontsize=7)
    fig.tight_layout()
    return Picture("Rank-frequency", _png(fig))


def band_units(row) -> float:
    """Row ``row``'s departure from real data toward collapse, in null half-widths: 1 at the edge of the null band
    (``watch`` beyond), 2 at ``collapsed``; negative away from collapse."""
    half = (row.null[1] - row.null[0]) / 2
    mid = (row.null[1] + row.null[0]) / 2
    return toward(row.name) * (row.value - mid) / half if half > 0 else float("nan")


GROUP_ORDER = ("tails", "diversity", "fidelity", "lm", "provenance")
GROUP_TITLES = {
    "tails": "Tails",
    "diversity": "Diversity",
    "fidelity": "Fidelity",
    "lm": "Language model",
    "provenance": "Provenance",
}


def group_figure(result, group: str, most: int = 12) -> Picture | None:
    """Every indicator of ``group`` (the ``most`` most moved, for a table's per-column indicators), each candidate's
    departure in null half-widths (:func:`band_units`): the shaded band is what real data varies by, right of it is
    toward collapse. None when the group has no finite indicator."""
    names = [r.name for r in result.rows[0] if r.group == group] if result.rows else []
    by = [{r.name: band_units(r) for r in rows if r.group == group} for rows in result.rows]
    names = [n for n in names if any(np.isfinite(b.get(n, np.nan)) for b in by)]
    if not names:
        return None
    names = sorted(names, key=lambda n: -np.nanmax([abs(b.get(n, np.nan)) for b in by]))[:most][::-1]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, max(2.4, 0.6 + 0.32 * len(names))), dpi=100)
    ax.axvspan(-1, 1, color="0.9", label="null band (real vs real)")
    ax.axvline(2, color="#c33", ls=":", lw=1, label="collapsed beyond")
    y = np.arange(len(names))
    for i, (c, b) in enumerate(zip(result.candidates, by)):
        ax.plot([b.get(n, np.nan) for n in names], y + (i - (len(by) - 1) / 2) * 0.12, "o", ms=5, label=c.name[-40:])
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel("← away from collapse    departure, in null half-widths    toward collapse →")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return Picture(f"{GROUP_TITLES.get(group, group)}: each indicator against real data", _png(fig))


def pca_figure(result, pools) -> Picture:
    """The picture of every input's features (first 1,000) on the reference's first two principal components."""
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
    return Picture("PCA projection of the features", _png(fig))


def perplexity_figure(result, pools) -> Picture:
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
    return Picture("Perplexity under the reference LM", _png(fig))


def _cell(v: float) -> str:
    return f"{v:.4g}" if np.isfinite(v) else "–"


def sections(result) -> list[dict]:
    """The figures, one section a group that has indicators (tails, diversity, fidelity, LM, provenance): the
    group's indicator figure, then the data figure that shows it (distributions under tails, rank-frequency under
    diversity, the PCA projection under fidelity, perplexity under LM)."""
    pools = getattr(result, "pools", None)
    data = {
        "tails": [distribution_figure],
        "diversity": [rank_frequency_figure] if result.kind == "text" else [],
        "fidelity": [lambda r: pca_figure(r, pools)] if pools else [],
        "lm": [lambda r: perplexity_figure(r, pools)]
        if pools and "log_ppl" in pools[0].extra and np.isfinite(pools[0].extra["log_ppl"]).any()
        else [],
    }
    out = []
    for group in GROUP_ORDER:
        pictures = [p for p in [group_figure(result, group), *(f(result) for f in data.get(group, []))] if p]
        if pictures:
            out.append({"id": group, "title": GROUP_TITLES[group], "figures": pictures})
    return out


def page(result) -> str:
    """The audit's ``report.html``: one card per candidate (:mod:`.reading`), then a section a group of indicators
    with its figures, a table's most-moved columns, the full indicator table (collapsed) and the glossary."""
    rows = []
    for c, rs in zip(result.candidates, result.rows):
        for r in rs:
            band = clip_band(r.name, *r.null)
            way = band_units(r)
            rows.append(
                {
                    "verdict": r.verdict,
                    "cells": [
                        c.name,
                        r.group,
                        r.name,
                        _cell(r.value),
                        f"[{_cell(r.ci[0])}, {_cell(r.ci[1])}]",
                        f"[{_cell(band[0])}, {_cell(band[1])}]",
                        _cell(r.z),
                        "toward collapse" if way > 0 else ("away" if way < 0 else "–"),
                        r.verdict,
                    ],
                }
            )
    moved = [(name, [f"{d:.2f}" for d in dist]) for _, name, dist in features_moved(result)[:10]]
    return render(
        "audit.html.j2",
        title="modelcollapse audit",
        result=result,
        candidates=list(zip(result.candidates, result.verdicts)),
        cards=cards(result),
        rows=rows,
        sections=sections(result),
        moved=moved,
        glossary=GLOSSARY,
        whole=whole_table(result),
    )


def whole_table(result) -> dict | None:
    """The page's whole-corpus table: ``{"inputs": names, "rows": [(label, cells)]}``, None without blocks."""
    from .whole import LABELS

    pairs = [
        (d.name, b)
        for d, b in zip([result.reference, *result.candidates], getattr(result, "whole", None) or [])
        if b is not None
    ]
    if not pairs:
        return None
    fmt = lambda v: f"{v:,}" if isinstance(v, int) else f"{v:.4g}"  # noqa: E731
    rows = [(label, [fmt(b[k]) for _, b in pairs]) for k, label in LABELS.items()]
    rows += [(f"length in words, {q}", [fmt(b["length"][q]) for _, b in pairs]) for q in ("q10", "q50", "q90", "q99")]
    return {"inputs": [n for n, _ in pairs], "rows": rows}


__all__ = ["as_json", "summary", "tidy", "write"]
