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

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..plugins.detectors import DETECTORS, calibrate, roc_auc, roc_curve
from ..rundir.atomic import atomic_save, atomic_write
from . import plots
from .pages import Picture, write_page

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


def detector_scores(
    sets: dict, *, model, reference=None, lengths: Sequence[int], detectors: Sequence[str] = (), batch_size: int = 32
) -> Iterator[tuple[tuple[int, str], dict]]:
    """Yield ``((length, detector), {set: (n,) scores})`` for each length and detector (default: every registered
    one, sorted): each of ``sets`` (``{set: (n, L) token ids}``, L ≥ max(lengths)) cut to its first ``length`` tokens
    and scored by ``model`` (``reference``: binoculars' second model)."""
    for length in lengths:
        for name in detectors or sorted(DETECTORS.names()):
            fn = DETECTORS.get(name)
            yield (
                (length, name),
                {
                    k: fn(np.asarray(v)[:, :length], model=model, reference=reference, batch_size=batch_size)
                    for k, v in sets.items()
                },
            )


def evaluate(scores: dict, fprs: Sequence[float]) -> list[dict]:
    """One row per ``(length, detector)`` of ``scores`` (``{(length, detector): {set: (n,) scores}}``): ``tokens``,
    ``detector``, ``auc`` (test real against machine) and ``thresholds``, one :func:`calibrate` result per target
    FPR (set on ``calibration``, measured on ``test``) with its ``tpr`` (share of ``machine`` above the threshold)."""
    rows = []
    for (length, name), s in scores.items():
        cals = [calibrate(s["calibration"], f, heldout=s["test"]) for f in fprs]
        rows.append(
            {
                "tokens": int(length),
                "detector": name,
                "auc": roc_auc(s["test"], s["machine"]),
                "n": {k: int(len(v)) for k, v in s.items()},
                "thresholds": [{**c, "tpr": float((s["machine"] > c["threshold"]).mean())} for c in cals],
            }
        )
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The rows of :func:`evaluate` as the README's table: AUC, then measured FPR and TPR per target FPR."""
    targets = [t["target_fpr"] for t in rows[0]["thresholds"]] if rows else []
    lines = [
        "| tokens | detector | AUC | " + " | ".join(f"target FPR {f:g}: measured FPR, TPR" for f in targets) + " |",
        "|" + " --- |" * (3 + len(targets)),
    ]
    for r in rows:
        cells = " | ".join(f"{t['measured_fpr']:.2f}, {t['tpr']:.2f}" for t in r["thresholds"])
        lines.append(f"| {r['tokens']} | {r['detector']} | {r['auc']:.3f} | {cells} |")
    return "\n".join(lines)


def write_scores(out: Path, scores: dict, fprs: Sequence[float], note: str = "") -> None:
    """Save ``scores`` (``{(length, detector): {set: (n,) scores}}``) and the settings into ``out``."""
    out = Path(out)
    arrays = {
        f"{length}/{name}/{k}": np.asarray(v, float) for (length, name), s in scores.items() for k, v in s.items()
    }
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
        panels.setdefault(length, []).append(
            {"detector": name, "fpr": fpr, "tpr": tpr, "auc": row["auc"], "points": points}
        )
    return panels


def _histogram_panels(scores: dict, rows: list[dict]) -> dict:
    return {
        key: {
            "real": s["test"],
            "machine": s["machine"],
            "thresholds": [(t["target_fpr"], t["threshold"]) for t in row["thresholds"]],
        }
        for (key, s), row in zip(scores.items(), rows)
    }


def _table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The calibration table's header and rows: length, detector, AUC, then per target FPR the threshold, the
    measured FPR and the TPR."""
    targets = [t["target_fpr"] for t in rows[0]["thresholds"]] if rows else []
    head = ["tokens", "detector", "AUC"]
    for f in targets:
        head += [f"FPR {f:g}: threshold", "measured FPR", "TPR"]
    body = []
    for r in rows:
        cells = [str(r["tokens"]), r["detector"], f"{r['auc']:.3f}"]
        for t in r["thresholds"]:
            cells += [f"{t['threshold']:.4g}", f"{t['measured_fpr']:.3f}", f"{t['tpr']:.3f}"]
        body.append(cells)
    return head, body


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
    head, body = _table(rows)
    sizes = ", ".join(f"{k} {v}" for k, v in rows[0]["n"].items()) if rows else "none"
    return write_page(
        out / "report.html",
        "detectors.html.j2",
        title="modelcollapse: zero-shot detectors, real against machine text",
        note=settings.get("note", ""),
        sizes=sizes,
        roc=Picture.of(out / "figures" / "roc.png"),
        histograms=Picture.of(out / "figures" / "histograms.png"),
        head=head,
        rows=body,
    )


# -- the figures: ROC curves and score histograms ------------------------------------------------------------------
_TARGET_MARKERS = "osD^v"


def roc_figure(panels: dict, path: Path):
    """One panel per text length, one ROC curve per detector (``panels[length]``: a list of ``{"detector", "fpr",
    "tpr", "auc", "points"}``, ``points`` a list of ``{"target_fpr", "measured_fpr", "tpr"}``, one per calibrated
    threshold). Each threshold's operating point is a filled marker at (measured FPR, TPR) joined to a hollow one at
    (target FPR, TPR); a dotted vertical line marks each target. Returns the (closed) Figure."""
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.3), dpi=110, squeeze=False)
    for ax, (length, curves) in zip(axes[0], panels.items()):
        ax.plot([0, 1], [0, 1], color="#bbb", lw=0.8, ls="--")
        targets = sorted({p["target_fpr"] for c in curves for p in c["points"]})
        for target in targets:
            ax.axvline(target, color="#888", lw=0.7, ls=":")
        for i, c in enumerate(curves):
            color = f"C{i % 10}"
            ax.plot(c["fpr"], c["tpr"], color=color, lw=1.5, label=f"{c['detector']} (AUC {c['auc']:.3f})")
            for p in c["points"]:
                marker = _TARGET_MARKERS[targets.index(p["target_fpr"]) % len(_TARGET_MARKERS)]
                ax.plot([p["target_fpr"], p["measured_fpr"]], [p["tpr"], p["tpr"]], color=color, lw=0.8)
                ax.plot(p["target_fpr"], p["tpr"], marker=marker, mfc="none", mec=color, ms=6, ls="none")
                ax.plot(p["measured_fpr"], p["tpr"], marker=marker, color=color, ms=6, ls="none")
        for j, target in enumerate(targets):  # legend entries for the markers alone
            ax.plot(
                [],
                [],
                marker=_TARGET_MARKERS[j % len(_TARGET_MARKERS)],
                color="k",
                ls="none",
                label=f"target FPR {target:g}: hollow target, filled measured",
            )
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.set_xlabel("false-positive rate (real text flagged)")
        ax.set_ylabel("true-positive rate (machine text flagged)")
        ax.set_title(f"{length} tokens", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="lower right")
    fig.tight_layout()
    plots.save_figure(fig, path)
    return fig


def score_histogram_figure(panels: dict, path: Path):
    """Rows are detectors, columns text lengths (``panels[(length, detector)]``: ``{"real", "machine", "thresholds"}``,
    the two score arrays and a list of ``(target_fpr, threshold)``): both score histograms on shared bins, each
    calibrated threshold a vertical line (flagged: scores to its right). Returns the (closed) Figure."""
    plt = plots.pyplot()
    lengths = list(dict.fromkeys(k[0] for k in panels))
    detectors = list(dict.fromkeys(k[1] for k in panels))
    fig, axes = plt.subplots(
        len(detectors), len(lengths), figsize=(3.6 * len(lengths), 2.3 * len(detectors)), dpi=110, squeeze=False
    )
    for (length, detector), p in panels.items():
        ax = axes[detectors.index(detector), lengths.index(length)]
        both = np.concatenate([p["real"], p["machine"]])
        bins = np.linspace(both.min(), both.max(), 25) if np.ptp(both) > 0 else 5
        ax.hist(p["real"], bins=bins, color="C0", alpha=0.55, label="real (test)")
        ax.hist(p["machine"], bins=bins, color="C3", alpha=0.55, label="machine")
        for j, (target, threshold) in enumerate(p["thresholds"]):
            ax.axvline(threshold, color="k", lw=1.0, ls=("--", ":", "-.")[j % 3], label=f"threshold, FPR {target:g}")
        ax.set_title(f"{detector}, {length} tokens", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("score (higher: more machine-like)", fontsize=7)
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    plots.save_figure(fig, path)
    return fig
