"""The collapse story at a glance: one headline sentence per arm, a reproduced / not-reproduced mark wherever a
closed form or published curve exists, and pictures of the distributions themselves at selected generations.

Everything is read from the run directory: the per-generation curves (``report.curves``), the resolved arm configs,
and the records and small fitted arrays the loop keeps for pictures (``arrays/*.npz`` keys ``picture.*``; config
``report: {generations, records}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import plots
from .gallery import figure_path, kept_by_arm, pick_generations
from .theory import published_points, reference

TAILS = "tail_mass"


def headline_metrics() -> list[str]:
    """The metrics a headline is told with, most telling first: those registered with a ``headline`` rank (a metric a
    run lacks is skipped)."""
    from ..plugins.metrics import METRICS

    ranked = sorted((METRICS.trait(m, "headline"), m) for m in METRICS if METRICS.trait(m, "headline") is not None)
    return [m for _, m in ranked]


def is_bookkeeping(metric: str) -> bool:
    """Counts the loop records about itself (training-set provenance, filter counts), not science: the rows the
    regimes' provenance and the filters declare as bookkeeping (a name, or a prefix ending in ``_``)."""
    from ..plugins.filters import bookkeeping_rows
    from ..plugins.regimes import PROVENANCE_ROWS

    rows = PROVENANCE_ROWS + bookkeeping_rows()
    return any(metric == row or (row.endswith("_") and metric.startswith(row)) for row in rows)


def _first_below(curve, share: float) -> int | None:
    """The first generation whose median is below ``share`` × generation 0's median, or None."""
    start = curve.median[0]
    if not np.isfinite(start) or start <= 0:
        return None
    below = np.flatnonzero(curve.median < share * start)
    return int(curve.generations[below[0]]) if below.size else None


def headline(arm: str, data: dict) -> str | None:
    """One sentence on ``arm``: how its headline metric moved from generation 0 to the last, and when its tails went.

    >>> from types import SimpleNamespace as C
    >>> v = C(generations=np.arange(4), median=np.array([1.0, 0.5, 0.2, 0.05]))
    >>> t = C(generations=np.arange(4), median=np.array([0.002, 0.001, 0.0001, 0.0]))
    >>> headline("replace", {("replace", "variance"): v, ("replace", "tail_mass"): t})
    'replace: variance fell to 0.05 of its start by generation 3; tails gone (below 10% of the start) by generation 2.'
    """
    metric = next((m for m in headline_metrics() if (arm, m) in data), None)
    if metric is None:
        return None
    c = data[arm, metric]
    first, last, g = c.median[0], c.median[-1], int(c.generations[-1])
    if not (np.isfinite(first) and np.isfinite(last)):
        return f"{arm}: {metric} is undefined by generation {g}."
    if first > 0 and last > 0:
        ratio = last / first
        moved = f"fell to {ratio:.3g}" if ratio < 1 else f"rose to {ratio:.3g}×"
        text = (
            f"{arm}: {metric} {moved} of its start by generation {g}"
            if ratio < 1
            else f"{arm}: {metric} {moved} its start by generation {g}"
        )
    else:
        text = f"{arm}: {metric} went from {first:.3g} to {last:.3g} by generation {g}"
    if (arm, TAILS) in data:
        gone = _first_below(data[arm, TAILS], 0.1)
        text += f"; tails gone (below 10% of the start) by generation {gone}" if gone is not None else "; tails kept"
    return text + "."


@dataclass
class Mark:
    """Ours against a closed form or published figure at the last generation: ``ours`` (the statistic the reference
    predicts), ``expected``, the tolerance used, and whether it is reproduced."""

    arm: str
    metric: str
    generation: int
    statistic: str
    ours: float
    expected: float
    tolerance: float
    label: str

    @property
    def reproduced(self) -> bool:
        return bool(abs(self.ours - self.expected) <= self.tolerance)


def marks(data: dict, arms: dict[str, dict], replicates: dict[str, int]) -> list[Mark]:
    """A :class:`Mark` for every (arm, metric) with a reference at its last generation, and for every published
    single-generation figure the run reaches (:data:`~.theory.PUBLISHED_POINTS`: their stated tolerance, or 4 of our
    standard errors if larger). Tolerance at the last generation: 4 standard errors of our statistic
    (the IQR/1.349 as the spread; a median's s.e. is 1.253× a mean's), and at least 5% of the expected value, since
    closed forms are often large-sample approximations."""
    out = []
    for (arm, metric), c in data.items():
        if arm not in arms:
            continue
        ref = reference(metric, arms[arm], c.generations)
        if ref is None or not np.isfinite(ref[0][-1]):
            continue
        values, label, stat = ref
        ours = c.mean[-1] if stat == "mean" else c.median[-1]
        spread = (c.q75[-1] - c.q25[-1]) / 1.349
        se = spread / np.sqrt(max(replicates.get(arm, 1), 1)) * (1.253 if stat == "median" else 1.0)
        tolerance = max(4 * se, 0.05 * abs(values[-1]))
        out.append(
            Mark(arm, metric, int(c.generations[-1]), stat, float(ours), float(values[-1]), float(tolerance), label)
        )
    for (arm, metric), c in data.items():  # published figures at single generations the run reaches
        for g, expected, tolerance, label in published_points(metric, arms.get(arm, {})) if arm in arms else []:
            at = np.flatnonzero(c.generations == g)
            if at.size:
                i = at[0]
                se = (c.q75[i] - c.q25[i]) / 1.349 / np.sqrt(max(replicates.get(arm, 1), 1))
                out.append(
                    Mark(arm, metric, g, "mean", float(c.mean[i]), expected, float(max(tolerance, 4 * se)), label)
                )
    return out


def kept_pictures(run) -> dict[str, dict[int, dict[str, np.ndarray]]]:
    """{arm: {generation: {name: array}}} of what the loop kept for pictures (``picture.*``, replicate 0)."""
    out: dict[str, dict[int, dict[str, np.ndarray]]] = {}
    for arm, generation, arrays in kept_by_arm(run):  # run: a RunStore or its directory
        picture = {k.removeprefix("picture."): v for k, v in arrays.items() if k.startswith("picture.")}
        if picture:
            out.setdefault(arm, {})[generation] = picture
    return out


def distribution_pictures(run, most: int = 6) -> list[Path]:
    """One figure per arm of the distributions at up to ``most`` kept generations (1-D densities, 2-D scatters with
    the fitted components' ellipses, categorical rank-frequency), written to ``figures/``."""
    paths = []
    for arm, by_gen in kept_pictures(run).items():  # run: a RunStore or its directory
        path = figure_path(run, "distribution", arm)
        if distribution_figure({g: by_gen[g] for g in pick_generations(sorted(by_gen), most)}, arm, path):
            paths.append(path)
    return paths


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


def distribution_figure(by_gen: dict, arm: str, path: Path):
    """The distribution at selected generations (``by_gen[g]``: replicate 0's kept ``records`` ``(1, m, ...)`` and
    fitted arrays such as ``probs_``, ``mean_``/``cov_``, ``means_``/``covariances_``/``weights_``). 1-D: densities
    overlaid (Fig. 1b style); 2-D (or the first two coordinates of d-D): one scatter per generation with the fitted
    components' 2σ ellipses (Supplementary Fig. 6 style); regression records: the labels' density; categorical:
    rank-frequency on log axes. Returns the (closed) Figure, or None when nothing fits."""
    kinds = {_kind(a) for a in by_gen.values()}
    if len(kinds) != 1 or None in kinds:
        return None
    kind, gens = kinds.pop(), list(by_gen)
    plt = plots.pyplot()
    colors = [plots.generation_color(i, len(gens)) for i in range(len(gens))]
    if kind == "2d":
        fig, axes = plt.subplots(
            1, len(gens), figsize=(2.4 * len(gens), 2.6), dpi=110, squeeze=False, sharex=True, sharey=True
        )
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
                if "probs_" in a:
                    p = np.asarray(a["probs_"][0], float)
                else:
                    p = np.bincount(a["records"][0]) / a["records"].shape[1]
                p = np.sort(p[p > 0])[::-1]
                ax.loglog(np.arange(1, len(p) + 1), p, marker=".", ms=3, color=color, label=f"generation {g}")
            else:
                if "records" in a:
                    column = -1 if kind == "labels" else 0
                    ax.hist(
                        np.asarray(a["records"][0, :, column], float),
                        bins=40,
                        density=True,
                        histtype="step",
                        color=color,
                        label=f"generation {g}",
                    )
                if "mean_" in a and "cov_" in a:
                    mu, sd = float(a["mean_"][0, 0]), float(np.sqrt(max(a["cov_"][0, 0, 0], 1e-300)))
                    t = np.linspace(mu - 4 * sd, mu + 4 * sd, 200)
                    ax.plot(
                        t,
                        np.exp(-0.5 * ((t - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)),
                        color=color,
                        lw=1,
                        ls="--" if "records" in a else "-",
                        label=None if "records" in a else f"generation {g}",
                    )
        ax.set_xlabel({"categorical": "rank", "labels": "label y of the training records"}.get(kind, "x"))
        ax.set_ylabel("probability" if kind == "categorical" else "density")
        what = "rank-frequency of the fitted distribution" if kind == "categorical" else "samples by generation"
        ax.set_title(f"{what}: {arm}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    plots.save_figure(fig, path)
    return fig
