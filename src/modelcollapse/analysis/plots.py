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

from ..rundir.atomic import atomic_write


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend, imported on first use (``import modelcollapse`` stays light)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, **savefig) -> None:
    """Write ``fig`` as a PNG to ``path`` atomically (like every file of a run directory), then close it (a closed
    Figure still holds its axes and lines: every ``*_figure`` function below returns it, for tests to inspect)."""
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
    ax.xaxis.get_major_locator().set_params(integer=True)  # generations are whole numbers: no 2.5 ticks
    ax.set_ylabel(metric)
    ax.set_title(metric)
    ax.grid(alpha=0.3)
    if len(ax.get_legend_handles_labels()[1]) > 1:  # a lone median needs no legend: the caption says what the line is
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path)
    return fig


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
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path)
    return fig


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
    return fig


def scaling_figure(metric: str, key: str, curves: list, legend: list[str], path: Path) -> None:
    """The scaling view of one metric: per curve (an ``analysis.scaling.ScalingCurve``, legend entry ``legend[i]``)
    the median against the training-set size, markers at the sizes run, the interquartile band, and its closed form
    dashed in the same colour. Log-log where every quartile is positive (else log x only)."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for i, (c, label) in enumerate(zip(curves, legend)):
        color = f"C{i % 10}"
        ax.plot(c.sizes, c.median, color=color, lw=1.6, marker="o", ms=4, label=label)
        ax.fill_between(c.sizes, c.q25, c.q75, color=color, alpha=0.2, lw=0)
        ok = np.isfinite(c.ref_values)
        if c.ref_label is not None and ok.any():
            ax.plot(c.ref_sizes[ok], c.ref_values[ok], color=color, lw=1.0, ls="--")
    if any(c.ref_label is not None for c in curves):
        ax.plot([], [], color="k", lw=1.0, ls="--", label="closed form (E)")
    ax.set_xscale("log")
    if all(np.nanmin(c.q25) > 0 for c in curves if np.isfinite(c.q25).any()):
        ax.set_yscale("log")
    ax.set_xlabel(f"training-set size T ({key})")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against training-set size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def survival_figure(panels: dict, path: Path) -> None:
    """The survival view: one panel per arm (``panels[arm]`` = (generations, bins), ``bins[g]`` = (mean count
    ``(B,)``, survival ``(B,)``, its standard error ``(B,)``, closed form at the bins ``(B,)``, smooth closed form
    (counts ``(m,)``, values ``(m,)``) or None)): the share of categories still present at generation g against their
    generation-0 count (log x), ±2 s.e. bars, one colour per generation, the closed form dashed."""
    plt = pyplot()

    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.8), dpi=110, squeeze=False, sharey=True)
    for ax, (arm, (gens, bins)) in zip(axes[0], panels.items()):
        for i, g in enumerate(gens):
            color = plt.cm.viridis(i / max(len(gens) - 1, 1))
            count, share, se, _, smooth = bins[g]
            ax.errorbar(count, share, yerr=2 * se, color=color, marker="o", ms=3, lw=0, elinewidth=1, label=f"generation {g}")
            if smooth is not None:
                ax.plot(*smooth, color=color, lw=1.0, ls="--")
        ax.plot([], [], color="k", lw=1.0, ls="--", label="1 − exp(−c g_g)")
        ax.set_xscale("log")
        ax.set_xlabel("generation-0 count c")
        ax.set_title(arm, fontsize=9)
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel("P(still present)")
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)
    return fig


# -- pictures of the distributions themselves ----------------------------------------------------------------------
def _kind(arrays: dict) -> str | None:
    """Which picture fits what a generation kept: ``categorical``, ``1d``, ``2d`` or None (none drawn here)."""
    x = arrays.get("records")
    if "probs_" in arrays or (x is not None and x.ndim == 2 and np.issubdtype(x.dtype, np.integer)):
        return "categorical"
    if x is not None and x.ndim == 3 and np.issubdtype(x.dtype, np.floating):
        if x.shape[-1] > 2 and "weights_" in arrays and "means_" not in arrays:
            return "labels"  # regression records (inputs, label): the labels' distribution
        return "1d" if x.shape[-1] == 1 else "2d"  # d > 2: the first two coordinates
    if x is None and "mean_" in arrays and np.asarray(arrays["mean_"]).shape[-1] == 1:
        return "1d"
    return None


def _ellipse(ax, mean: np.ndarray, cov: np.ndarray, color) -> None:
    """The 2-standard-deviation ellipse of N(mean, cov) in 2-D."""
    vals, vecs = np.linalg.eigh(cov)
    t = np.linspace(0, 2 * np.pi, 100)
    pts = mean + 2 * (vecs @ (np.sqrt(np.clip(vals, 0, None))[:, None] * np.stack([np.cos(t), np.sin(t)]))).T
    ax.plot(pts[:, 0], pts[:, 1], color=color, lw=1.2)


def distribution_figure(by_gen: dict, arm: str, path: Path) -> bool:
    """The distribution at selected generations (``by_gen[g]``: replicate 0's kept ``records`` ``(1, m, ...)`` and
    fitted arrays such as ``probs_``, ``mean_``/``cov_``, ``means_``/``covariances_``/``weights_``). 1-D: densities
    overlaid (Fig. 1b style); 2-D (or the first two coordinates of d-D): one scatter per generation with the fitted
    components' 2σ ellipses (Supplementary Fig. 6 style); regression records: the labels' density; categorical:
    rank-frequency on log axes. Returns the (closed) Figure, or None when nothing fits."""
    kinds = {_kind(a) for a in by_gen.values()}
    if len(kinds) != 1 or None in kinds:
        return None
    kind, gens = kinds.pop(), list(by_gen)
    plt = pyplot()
    colors = [plt.cm.viridis(i / max(len(gens) - 1, 1)) for i in range(len(gens))]
    if kind == "2d":
        fig, axes = plt.subplots(1, len(gens), figsize=(2.4 * len(gens), 2.6), dpi=110, squeeze=False, sharex=True, sharey=True)
        for ax, g, color in zip(axes[0], gens, colors):
            a = by_gen[g]
            x = np.asarray(a["records"][0], float)
            ax.scatter(x[:, 0], x[:, 1], s=2, color=color, alpha=0.5)
            if "means_" in a:
                for mean, cov, w in zip(a["means_"][0], a["covariances_"][0], a.get("weights_", np.ones((1, 99)))[0]):
                    if w > 1e-3:
                        _ellipse(ax, mean[:2], cov[:2, :2], "k")
            elif "mean_" in a and "cov_" in a:  # a Gaussian fit: its marginal on the first two coordinates
                _ellipse(ax, a["mean_"][0][:2], a["cov_"][0][:2, :2], "k")
            ax.set_title(f"generation {g}", fontsize=8)
            ax.set_aspect("equal", adjustable="box")
        first_two = " (first two coordinates)" if np.asarray(by_gen[gens[0]]["records"]).shape[-1] > 2 else ""
        fig.suptitle(f"samples and fitted components{first_two}: {arm}", fontsize=9)
    else:
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
        for g, color in zip(gens, colors):
            a = by_gen[g]
            if kind == "categorical":
                p = np.asarray(a["probs_"][0], float) if "probs_" in a else np.bincount(a["records"][0]) / a["records"].shape[1]
                p = np.sort(p[p > 0])[::-1]
                ax.loglog(np.arange(1, len(p) + 1), p, marker=".", ms=3, color=color, label=f"generation {g}")
            else:
                if "records" in a:
                    column = -1 if kind == "labels" else 0
                    ax.hist(np.asarray(a["records"][0, :, column], float), bins=40, density=True, histtype="step",
                            color=color, label=f"generation {g}")
                if "mean_" in a and "cov_" in a:
                    mu, sd = float(a["mean_"][0, 0]), float(np.sqrt(max(a["cov_"][0, 0, 0], 1e-300)))
                    t = np.linspace(mu - 4 * sd, mu + 4 * sd, 200)
                    ax.plot(t, np.exp(-0.5 * ((t - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)), color=color, lw=1,
                            ls="--" if "records" in a else "-", label=None if "records" in a else f"generation {g}")
        ax.set_xlabel({"categorical": "rank", "labels": "label y of the training records"}.get(kind, "x"))
        ax.set_ylabel("probability" if kind == "categorical" else "density")
        ax.set_title(("rank-frequency of the fitted distribution: " if kind == "categorical" else "samples by generation: ") + arm,
                     fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


# -- galleries: what the models generate ----------------------------------------------------------------------------
def image_grid_figure(by_gen: dict, arm: str, path: Path) -> None:
    """Rows are generations, columns the first 12 images of replicate 0 (``by_gen[g]``: ``(R, m, h, w)`` in [0, 1])."""
    plt = pyplot()
    gens = list(by_gen)
    cols = min(12, min(by_gen[g].shape[1] for g in gens))
    fig, axes = plt.subplots(len(gens), cols, figsize=(cols * 0.7, len(gens) * 0.8), squeeze=False)
    for row, g in enumerate(gens):
        for col in range(cols):
            ax = axes[row, col]
            ax.imshow(np.asarray(by_gen[g][0, col], float), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(f"gen {g}", fontsize=7)
    fig.suptitle(f"samples by generation: {arm}", fontsize=9)
    save_figure(fig, path, dpi=90, bbox_inches="tight")
    return fig


def perplexity_figure(by_gen: dict, arm: str, path: Path) -> None:
    """Density of log₁₀ per-sequence perplexity, one line per generation (``by_gen[g]``: perplexities, any shape)."""
    plt = pyplot()
    gens = list(by_gen)
    values = {g: np.log10(np.clip(np.asarray(by_gen[g], float).ravel(), 1, None)) for g in gens}
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()])
    bins = np.linspace(finite.min(), finite.max(), 40) if finite.size else 10
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    for i, g in enumerate(gens):
        ax.hist(values[g][np.isfinite(values[g])], bins=bins, density=True, histtype="step",
                color=plt.cm.viridis(i / max(len(gens) - 1, 1)), label=f"generation {g}")
    ax.set_xlabel("log10 perplexity under the generation-0 model (per sequence)")
    ax.set_ylabel("density")
    ax.set_title(f"training data by generation: {arm}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


# -- zero-shot detectors: ROC curves and score histograms ----------------------------------------------------------
_TARGET_MARKERS = "osD^v"


def roc_figure(panels: dict, path: Path) -> None:
    """One panel per text length, one ROC curve per detector (``panels[length]``: a list of ``{"detector", "fpr",
    "tpr", "auc", "points"}``, ``points`` a list of ``{"target_fpr", "measured_fpr", "tpr"}``, one per calibrated
    threshold). Each threshold's operating point is a filled marker at (measured FPR, TPR) joined to a hollow one at
    (target FPR, TPR); a dotted vertical line marks each target."""
    plt = pyplot()
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
            ax.plot([], [], marker=_TARGET_MARKERS[j % len(_TARGET_MARKERS)], color="k", ls="none",
                    label=f"target FPR {target:g}: hollow target, filled measured")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.set_xlabel("false-positive rate (real text flagged)")
        ax.set_ylabel("true-positive rate (machine text flagged)")
        ax.set_title(f"{length} tokens", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def score_histogram_figure(panels: dict, path: Path) -> None:
    """Rows are detectors, columns text lengths (``panels[(length, detector)]``: ``{"real", "machine", "thresholds"}``,
    the two score arrays and a list of ``(target_fpr, threshold)``): both score histograms on shared bins, each
    calibrated threshold a vertical line (flagged: scores to its right)."""
    plt = pyplot()
    lengths = list(dict.fromkeys(k[0] for k in panels))
    detectors = list(dict.fromkeys(k[1] for k in panels))
    fig, axes = plt.subplots(len(detectors), len(lengths), figsize=(3.6 * len(lengths), 2.3 * len(detectors)),
                             dpi=110, squeeze=False)
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
    save_figure(fig, path)
    return fig


# -- telephone chains: drift curves and attractor plots -------------------------------------------------------------
def png_bytes(fig) -> bytes:
    """``fig`` as PNG bytes (closed by the caller)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def chain_series(table: dict[str, np.ndarray], arm: str, metric: str) -> np.ndarray:
    """Values of one (task, metric) as ``(chains, generations + 1)``."""
    keep = (table["arm"] == arm) & (table["metric"] == metric)
    chains, gens, values = table["chain"][keep], table["generation"][keep], table["value"][keep]
    ids = np.unique(chains)
    out = np.full((ids.size, gens.max() + 1), np.nan)
    out[np.searchsorted(ids, chains), gens] = values
    return out


def drift_figure(table: dict[str, np.ndarray], metrics: list[str]):
    """One panel per metric: per task, the median across chains and the 10–90 % band, against generation."""
    plt = pyplot()

    cols = 3
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for arm in sorted(set(table["arm"])):
            y = chain_series(table, arm, metric)
            with np.errstate(all="ignore"), SilenceNanWarnings():
                med, lo, hi = (np.nanpercentile(y, q, axis=0) for q in (50, 10, 90))
            x = np.arange(y.shape[1])
            ax.plot(x, med, marker="o", ms=3, label=arm)
            ax.fill_between(x, lo, hi, alpha=0.2)
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("generation")
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def attractor_figure(table: dict[str, np.ndarray], attractors: list[dict]):
    """One panel per property: final against initial value per chain, the fitted line, the identity line."""
    plt = pyplot()

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
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    if metrics:
        axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


class SilenceNanWarnings:
    """Silence numpy's all-NaN-slice warnings inside a ``with`` block (a metric undefined for a whole generation)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
th{{background:#f3f3f3}}.figs img{{max-width:48%;margin:4px}}.meta{{color:#666;font-size:13px}}
pre{{background:#f7f7f7;padding:1em;font-size:12px}}
.headline{{font-size:15px;line-height:1.5}}.ok{{color:#060;font-weight:600}}.no{{color:#a00;font-weight:600}}
.overview{{display:grid;grid-template-columns:repeat(3,1fr);gap:8px}}.overview img{{width:100%}}
figure{{margin:0}}figcaption{{font-size:13px;text-align:center}}details{{margin:1em 0}}summary{{cursor:pointer}}</style></head><body><h1>{title}</h1>{body}</body></html>"""
