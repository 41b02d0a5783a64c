"""The self-contained HTML report of a telephone run, built from the run directory alone.

It shows the drift curves (median and 10–90 % band across chains, per task), an attractor plot per property (final
value against initial value, with the fitted line and the identity), the attractor table, and for every chain a
timeline of its texts with a word-level diff against the previous generation. Every text is HTML-escaped; figures
are PNGs embedded as base64 (and also saved under ``figures/``).
"""

from __future__ import annotations

import difflib
import html
import json
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..rundir.atomic import atomic_write
from ..rundir.store import RunStore
from .plots import attractor_figure, chain_series as _series, drift_figure, img as _img, SilenceNanWarnings, save_figure

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}img{max-width:100%}
del{background:#fdd;color:#900}ins{background:#dfd;color:#060;text-decoration:none}
.gen{border-left:3px solid #ccc;margin:.6em 0;padding:.2em .8em}.gen p{margin:.3em 0;white-space:pre-wrap}
.meta{color:#777;font-size:85%}details{margin:.5em 0}summary{cursor:pointer;font-weight:600}
"""


def word_diff_html(before: str, after: str) -> str:
    """``after`` as escaped HTML with the words removed from ``before`` in ``<del>`` and the new ones in ``<ins>``.

    Words are whitespace-separated tokens; the diff is difflib's longest matching blocks.

    >>> word_diff_html("the red <car>", "the blue <car>")
    'the <del>red</del> <ins>blue</ins> &lt;car&gt;'
    """
    a, b = before.split(), after.split()
    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(html.escape(" ".join(a[i1:i2])))
            continue
        if op in ("delete", "replace"):
            parts.append(f"<del>{html.escape(' '.join(a[i1:i2]))}</del>")
        if op in ("insert", "replace"):
            parts.append(f"<ins>{html.escape(' '.join(b[j1:j2]))}</ins>")
    return " ".join(parts)


def _fmt(value) -> str:
    return "–" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.3g}"


def _timeline(records: list[dict]) -> str:
    """One chain's texts, each generation diffed against the previous one."""
    parts, previous = [], None
    for r in records:
        meta = r.get("meta") or {}
        note = ", ".join(f"{k}: {v}" for k, v in meta.items() if k in ("backend", "model", "finish_reason", "new_tokens"))
        body = html.escape(r["text"]) if previous is None else word_diff_html(previous, r["text"])
        if not r["text"].strip():
            body = "<em>(empty text)</em>"
        parts.append(f'<div class="gen"><div class="meta">generation {r["generation"]} · '
                     f'{len(r["text"].split())} words · {html.escape(note)}</div><p>{body}</p></div>')
        previous = r["text"]
    return "\n".join(parts)


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
    records = store.read_steps()
    metrics = sorted(set(table["metric"].tolist()))
    figures = {"drift": drift_figure(table, metrics)}
    if attractors:
        figures["attractors"] = attractor_figure(table, attractors)
    for name, fig in figures.items():
        save_figure(fig, root / "figures" / f"{name}.png", dpi=110, bbox_inches="tight")
    img = {k: _img(root / "figures" / f"{k}.png") for k in figures}

    summary_rows = []
    for arm in sorted(set(table["arm"])):
        for metric in metrics:
            y = _series(table, arm, metric)
            with SilenceNanWarnings():
                first, last = np.nanmedian(y[:, 0]), np.nanmedian(y[:, -1])
            summary_rows.append(f'<tr><td class="l">{html.escape(arm)}</td><td class="l">{metric}</td>'
                                f"<td>{_fmt(first)}</td><td>{_fmt(last)}</td></tr>")
    attractor_rows = [
        f'<tr><td class="l">{html.escape(a["arm"])}</td><td class="l">{a["metric"]}</td><td>{_fmt(a["slope"])}</td>'
        f'<td>{_fmt(a["intercept"])}</td><td>{_fmt(a["strength"])}</td><td>{_fmt(a["position"])}</td><td>{a["n"]}</td></tr>'
        for a in attractors
    ]
    by_chain: dict[int, list[dict]] = {}
    for r in sorted(records, key=lambda r: (r["chain"], r["generation"])):
        by_chain.setdefault(r["chain"], []).append(r)
    timelines = [
        f"<details><summary>chain {cid} · task {html.escape(str(rs[0]['task']))} · start text {rs[0]['start']} · "
        f"seed {rs[0]['seed']} · {len(rs) - 1} generations</summary>{_timeline(rs)}</details>"
        for cid, rs in by_chain.items()
    ]
    backend = config.get("backend", {})
    decoding = config.get("decoding", {})
    title = html.escape(f"{config.get('name', 'telephone')}: telephone chains")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>{_CSS}</style></head><body>
<h1>{title}</h1>
<p>{len(by_chain)} chains · tasks {html.escape(', '.join(config.get('task', [])))} · {config.get('generations')} generations ·
backend {html.escape(str(backend.get('kind')))} ({html.escape(str(backend.get('model') if backend.get('kind') == 'openai' else backend.get('model_dir') or 'SmolLM2-135M-Instruct, packaged GGUF'))}) ·
temperature {decoding.get('temperature')} · max {decoding.get('max_new_tokens')} new tokens · start texts {html.escape(str(config.get('start', {}).get('source')))}</p>
<h2>Drift</h2><p>Median across chains (line) and 10–90 % band, per task. Generation 0 is the start text.</p>{img['drift']}
<table><tr><th class="l">task</th><th class="l">metric</th><th>median at generation 0</th><th>median at the last generation</th></tr>
{''.join(summary_rows)}</table>
<h2>Attractors</h2><p>Final value regressed on initial value across chains (Perez et al. 2024): strength = 1 − |slope|
(1: every chain ends at the same value), position = intercept / (1 − slope) (the value chains are pulled towards).
The dashed line is no change.</p>{img.get('attractors', '<p>No attractor analysis in this run.</p>')}
<table><tr><th class="l">task</th><th class="l">property</th><th>slope</th><th>intercept</th><th>strength</th><th>position</th><th>chains</th></tr>
{''.join(attractor_rows)}</table>
<h2>Chains</h2><p>Each generation is shown against the previous one: <del>removed words</del>, <ins>new words</ins>.</p>
{''.join(timelines)}
</body></html>"""
    path = root / "report.html"
    atomic_write(path, page)
    return path
