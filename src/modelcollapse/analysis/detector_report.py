"""The zero-shot detectors' page: ROC curves per text length, score histograms of real against machine text, and the
calibration table (AUC; threshold, target and measured FPR, TPR), built from a directory of saved scores alone.

A directory holds ``scores.npz``, one ``(n,)`` float array per text length, detector and set, named
``"{length}/{detector}/{set}"`` with set ``calibration`` (real text the thresholds are set on), ``test`` (other real
text, where the FPR is measured) or ``machine``, and ``settings.json`` (the target FPRs, a note on how the scores were
made). :func:`build_detector_report` adds ``detectors.json`` (one row per length and detector),
``figures/roc.png``, ``figures/histograms.png`` and ``report.html``. ``benchmarks/bench_detectors.py --out DIR``
writes such a directory from real Wikipedia blocks and SmolLM2 continuations, each set's blocks chosen by
:func:`pick_rows`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..rundir.atomic import atomic_save, atomic_write
from ..errors import ConfigError
from ..plugins.detectors import DETECTORS, calibrate, roc_auc, roc_curve
from .plots import PAGE, img, roc_figure, score_histogram_figure

SETS = ("calibration", "test", "machine")
PICKS = ("first", "random")


def pick_rows(total: int, n: int, pick: str = "random", *, rng: np.random.Generator) -> np.ndarray:
    """``(min(n, total),)`` int64 indices of the rows of a split of ``total`` consecutive blocks to use as a set.

    ``pick="random"``: the first n of a uniform random permutation of all ``total`` rows drawn from ``rng``, so the set
    is spread over the whole split, a set of n is the first n of the set of a larger n from the same seed, and
    a calibration set and a test set so drawn from two splits of one corpus are exchangeable. ``"first"``: rows 0 to
    n - 1, consecutive blocks of one or two documents, so two such sets differ by document, not only by chance
    (``rng`` unused).

    >>> pick_rows(5, 3, "first", rng=np.random.default_rng(0)).tolist()
    [0, 1, 2]
    >>> sorted(pick_rows(5, 9, "random", rng=np.random.default_rng(0)).tolist())
    [0, 1, 2, 3, 4]
    """
    if pick not in PICKS:
        raise ConfigError(f"pick must be one of {', '.join(map(repr, PICKS))}; got {pick!r}.")
    m = min(int(n), int(total))
    return np.arange(m, dtype=np.int64) if pick == "first" else rng.permutation(int(total))[:m].astype(np.int64)


def detector_scores(sets: dict, *, model, reference=None, lengths: Sequence[int], detectors: Sequence[str] = (),
                    batch_size: int = 32) -> Iterator[tuple[tuple[int, str], dict]]:
    """Yield ``((length, detector), {set: (n,) scores})`` for each length and detector (default: every registered
    one, sorted): each of ``sets`` (``{set: (n, L) token ids}``, L ≥ max(lengths)) cut to its first ``length`` tokens
    and scored by ``model`` (``reference``: binoculars' second model)."""
    for length in lengths:
        for name in detectors or sorted(DETECTORS.names()):
            fn = DETECTORS.get(name)
            yield (length, name), {k: fn(np.asarray(v)[:, :length], model=model, reference=reference,
                                         batch_size=batch_size) for k, v in sets.items()}


def evaluate(scores: dict, fprs: Sequence[float]) -> list[dict]:
    """One row per ``(length, detector)`` of ``scores`` (``{(length, detector): {set: (n,) scores}}``): ``tokens``,
    ``detector``, ``auc`` (test real against machine) and ``thresholds``, one :func:`calibrate` result per target
    FPR (set on ``calibration``, measured on ``test``) with its ``tpr`` (share of ``machine`` above the threshold)."""
    rows = []
    for (length, name), s in scores.items():
        cals = [calibrate(s["calibration"], f, heldout=s["test"]) for f in fprs]
        rows.append({"tokens": int(length), "detector": name, "auc": roc_auc(s["test"], s["machine"]),
                     "n": {k: int(len(v)) for k, v in s.items()},
                     "thresholds": [{**c, "tpr": float((s["machine"] > c["threshold"]).mean())} for c in cals]})
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The rows of :func:`evaluate` as the README's table: AUC, then measured FPR and TPR per target FPR."""
    targets = [t["target_fpr"] for t in rows[0]["thresholds"]] if rows else []
    lines = ["| tokens | detector | AUC | " + " | ".join(f"target FPR {f:g}: measured FPR, TPR" for f in targets) + " |",
             "|" + " --- |" * (3 + len(targets))]
    for r in rows:
        cells = " | ".join(f"{t['measured_fpr']:.2f}, {t['tpr']:.2f}" for t in r["thresholds"])
        lines.append(f"| {r['tokens']} | {r['detector']} | {r['auc']:.3f} | {cells} |")
    return "\n".join(lines)


def write_scores(out: Path, scores: dict, fprs: Sequence[float], note: str = "") -> None:
    """Save ``scores`` (``{(length, detector): {set: (n,) scores}}``) and the settings into ``out``."""
    out = Path(out)
    arrays = {f"{length}/{name}/{k}": np.asarray(v, float) for (length, name), s in scores.items() for k, v in s.items()}
    atomic_save(out / "scores.npz", lambda tmp: np.savez(tmp, **arrays))
    atomic_write(out / "settings.json", json.dumps({"fprs": [float(f) for f in fprs], "note": note}, indent=2))


def read_scores(out: Path) -> dict:
    """The scores :func:`write_scores` saved, as ``{(length, detector): {set: (n,) scores}}`` in saved order."""
    scores: dict = {}
    with np.load(Path(out) / "scores.npz", allow_pickle=False) as data:
        for key in data.files:
            length, name, k = key.split("/")
            scores.setdefault((int(length), name), {})[k] = data[key]
    return scores


def _roc_panels(scores: dict, rows: list[dict]) -> dict:
    panels: dict = {}
    for ((length, name), s), row in zip(scores.items(), rows):
        fpr, tpr, _ = roc_curve(s["test"], s["machine"])
        points = [{k: t[k] for k in ("target_fpr", "measured_fpr", "tpr")} for t in row["thresholds"]]
        panels.setdefault(length, []).append({"detector": name, "fpr": fpr, "tpr": tpr, "auc": row["auc"],
                                              "points": points})
    return panels


def _histogram_panels(scores: dict, rows: list[dict]) -> dict:
    return {key: {"real": s["test"], "machine": s["machine"],
                  "thresholds": [(t["target_fpr"], t["threshold"]) for t in row["thresholds"]]}
            for (key, s), row in zip(scores.items(), rows)}


def _table_html(rows: list[dict]) -> str:
    targets = [t["target_fpr"] for t in rows[0]["thresholds"]] if rows else []
    head = "".join(f"<th>FPR {f:g}: threshold</th><th>measured FPR</th><th>TPR</th>" for f in targets)
    body = "".join(
        f"<tr><td>{r['tokens']}</td><td>{html.escape(r['detector'])}</td><td>{r['auc']:.3f}</td>"
        + "".join(f"<td>{t['threshold']:.4g}</td><td>{t['measured_fpr']:.3f}</td><td>{t['tpr']:.3f}</td>"
                  for t in r["thresholds"]) + "</tr>"
        for r in rows)
    return f"<table><tr><th>tokens</th><th>detector</th><th>AUC</th>{head}</tr>{body}</table>"


def build_detector_report(out: Path) -> Path:
    """Write ``detectors.json``, ``figures/roc.png``, ``figures/histograms.png`` and ``report.html`` from the
    ``scores.npz`` and ``settings.json`` in ``out``; return the page's path."""
    out = Path(out)
    settings = json.loads((out / "settings.json").read_text())
    scores = read_scores(out)
    rows = evaluate(scores, settings["fprs"])
    atomic_write(out / "detectors.json", json.dumps(rows, indent=2))
    roc_figure(_roc_panels(scores, rows), out / "figures" / "roc.png")
    score_histogram_figure(_histogram_panels(scores, rows), out / "figures" / "histograms.png")
    sizes = ", ".join(f"{k} {v}" for k, v in rows[0]["n"].items()) if rows else "none"
    body = f"""
<p>{html.escape(settings.get("note", ""))}</p>
<p class="meta">texts a set: {sizes} · each threshold is set for its target false-positive rate on the calibration
real texts and applied to the test real texts (measured FPR) and the machine texts (TPR); a detector flags a score
above its threshold.</p>
<h2>ROC curves</h2><p class="meta">Test real against machine text, one panel per length. Markers: each calibrated
threshold's operating point, hollow at the target FPR, filled at the FPR measured on the test real texts.</p>
<div>{img(out / "figures" / "roc.png")}</div>
<h2>Calibration</h2>{_table_html(rows)}
<h2>Score histograms</h2><p class="meta">Test real (blue) and machine (red) scores; lines: the calibrated
thresholds.</p>
<div>{img(out / "figures" / "histograms.png")}</div>"""
    path = out / "report.html"
    atomic_write(path, PAGE.format(title="modelcollapse: zero-shot detectors, real against machine text", body=body))
    return path
