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

from .gallery import figure_path, kept_by_arm, pick_generations
from .plots import distribution_figure
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
        text = f"{arm}: {metric} {moved} of its start by generation {g}" if ratio < 1 else f"{arm}: {metric} {moved} its start by generation {g}"
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
        out.append(Mark(arm, metric, int(c.generations[-1]), stat, float(ours), float(values[-1]), float(tolerance), label))
    for (arm, metric), c in data.items():  # published figures at single generations the run reaches
        for g, expected, tolerance, label in published_points(metric, arms.get(arm, {})) if arm in arms else []:
            at = np.flatnonzero(c.generations == g)
            if at.size:
                i = at[0]
                se = (c.q75[i] - c.q25[i]) / 1.349 / np.sqrt(max(replicates.get(arm, 1), 1))
                out.append(Mark(arm, metric, g, "mean", float(c.mean[i]), expected, float(max(tolerance, 4 * se)), label))
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
