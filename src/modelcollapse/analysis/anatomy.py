"""The anatomy of collapse: how much of the divergence from the truth each error source causes.

Shumailov et al. (Nature 2024) name three compounding errors: statistical approximation (finite samples), functional
expressivity (the family cannot represent the truth) and functional approximation (an imperfect learner). A run with
the ``anatomy`` config key switches each on or off across its arms, in a full 2^k factorial, and this module splits
the per-generation divergence (any metric, e.g. ``kl_real``) into main effects and interactions. Everything here is a
pure function of the tidy metrics table; only :func:`report_section` and its figure touch files (and matplotlib).

The config::

    anatomy:
      metric: kl_real                       # the divergence to attribute
      factors:                              # factor: [reference level (no error), error level]
        sampling: [exact, finite]
        family: [matched, mismatched]
        learner: [exact, approximate]
    arms:                                   # one arm per cell, named factor=level joined by commas
      sampling=exact,family=matched,learner=exact: {loop.fit_to: population, ...}
      ...

Two standard decompositions of the cell means y (mean over replicates, per generation), for a subset S of factors:

- ``anchored`` (treatment coding, from the all-reference cell): term_S = Σ_{T⊆S} (−1)^{|S|−|T|} y(T on). The
  baseline is y(no error source on); term_{A} is what A adds alone, term_{A×B} what A and B add together beyond the
  sum of their parts. Every cell is the sum of the baseline and the terms of the factors it switches on, so the
  all-errors arm minus the baseline is exactly the sum of all the non-baseline terms: an attribution.
- ``effects`` (Yates, ±1 coding): effect_S = 2^{1−k} Σ_cells y · Π_{f∈S} sign_f, sign +1 at the error level, −1 at
  the reference. A main effect is the change from switching a source on, averaged over the other factors' levels;
  y_cell = mean + ½ Σ_S effect_S Π sign.

Arms are independent (own random streams), so a term's standard error is √(Σ c² se²) over the cells it combines,
with se the standard error of each cell mean and c its coefficient.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import STATISTICS, check_design, parse_arm  # noqa: F401  (parse_arm: part of this module's API)
from ..errors import ConfigError
from ..rundir.table import text_column
from . import plots

CODINGS = ("anchored", "effects")


@dataclass
class Anatomy:
    """A factorial decomposition per generation.

    ``generations`` ``(G,)``; ``cells``: {levels (0 = reference, 1 = error, in factor order): mean ``(G,)``};
    ``terms``: {name: ``(G,)``}, first the constant (``baseline`` or ``mean``), then every non-empty subset of the
    factors by size (``sampling``, ..., ``sampling×family``, ...); ``stderr``: the same keys, standard errors.
    """

    factors: dict[str, list[str]]
    coding: str
    generations: np.ndarray
    cells: dict[tuple[int, ...], np.ndarray]
    terms: dict[str, np.ndarray]
    stderr: dict[str, np.ndarray]


def _column(table, name: str) -> np.ndarray:
    col = table[name]
    if not hasattr(col, "to_pylist"):
        return np.asarray(col)
    return text_column(table, name) if name in ("arm", "metric") else col.to_numpy()


def subsets(factors: list[str]) -> list[tuple[str, ...]]:
    """Non-empty subsets of ``factors``, by size then factor order."""
    return [s for r in range(1, len(factors) + 1) for s in itertools.combinations(factors, r)]


def decompose(
    table, factors: dict[str, list[str]], metric: str, coding: str = "anchored", statistic: str = "mean"
) -> Anatomy:
    """Factorial decomposition of ``metric`` per generation over the arms of ``table``.

    ``table``: the tidy metrics table (a pyarrow Table or any mapping of columns ``arm``, ``generation``, ``metric``,
    ``value``); arms are named ``factor=level,...`` (see :func:`check_design`). ``coding``: ``"anchored"`` or
    ``"effects"`` (module docstring). ``statistic``: each cell's value per generation is the ``"mean"`` over replicates
    (standard error sd/√n) or the ``"median"`` (robust to the rare replicate that loses a mode, where KL is huge;
    standard error ≈ 1.2533 · (IQR/1.349)/√n, the normal-theory form with a robust scale). Non-finite values are
    ignored.

    >>> t = {"arm": ["a=off", "a=on"], "generation": [0, 0], "metric": ["kl", "kl"], "value": [1.0, 3.0]}
    >>> decompose(t, {"a": ["off", "on"]}, "kl").terms
    {'baseline': array([1.]), 'a': array([2.])}
    """
    if statistic not in STATISTICS:
        raise ConfigError(f"statistic must be one of {', '.join(map(repr, STATISTICS))}; got {statistic!r}.")
    if coding not in CODINGS:
        raise ConfigError(f"coding must be one of {', '.join(map(repr, CODINGS))}; got {coding!r}.")
    arm, gen, name, value = (_column(table, c) for c in ("arm", "generation", "metric", "value"))
    sel = name == metric
    if not sel.any():
        raise ConfigError(
            f"anatomy.metric {metric!r} is not in the metrics table; measured: {sorted(set(name.tolist()))}."
        )
    arm, gen, value = arm[sel], gen[sel].astype(int), value[sel].astype(float)
    cell_of = check_design({"factors": factors}, list(dict.fromkeys(arm.tolist())))
    generations = np.unique(gen)
    cells, se = {}, {}
    for a, levels in cell_of.items():
        rows = arm == a
        per_gen = [value[rows & (gen == g)] for g in generations]
        per_gen = [v[np.isfinite(v)] for v in per_gen]
        if statistic == "mean":
            cells[levels] = np.array([v.mean() if v.size else np.nan for v in per_gen])
            se[levels] = np.array([v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else np.nan for v in per_gen])
        else:
            cells[levels] = np.array([np.median(v) if v.size else np.nan for v in per_gen])
            iqr = np.array([np.subtract(*np.quantile(v, [0.75, 0.25])) if v.size > 1 else np.nan for v in per_gen])
            se[levels] = 1.2533 * iqr / 1.349 / np.sqrt([max(v.size, 1) for v in per_gen])
    names = list(factors)
    k = len(names)
    terms: dict[str, np.ndarray] = {}
    errs: dict[str, np.ndarray] = {}
    if coding == "anchored":
        base = (0,) * k
        terms["baseline"], errs["baseline"] = cells[base], se[base]
        for s in subsets(names):
            total, var = 0.0, 0.0
            for r in range(len(s) + 1):
                for t in itertools.combinations(s, r):
                    c = tuple(int(f in t) for f in names)
                    total = total + (-1) ** (len(s) - r) * cells[c]
                    var = var + se[c] ** 2
            terms["×".join(s)], errs["×".join(s)] = total, np.sqrt(var)
    else:
        all_cells = list(cells)
        terms["mean"] = sum(cells[c] for c in all_cells) / 2**k
        errs["mean"] = np.sqrt(sum(se[c] ** 2 for c in all_cells)) / 2**k
        for s in subsets(names):
            idx = [names.index(f) for f in s]
            signs = {c: np.prod([2 * c[i] - 1 for i in idx]) for c in all_cells}
            terms["×".join(s)] = sum(signs[c] * cells[c] for c in all_cells) / 2 ** (k - 1)
            errs["×".join(s)] = np.sqrt(sum(se[c] ** 2 for c in all_cells)) / 2 ** (k - 1)
    return Anatomy(dict(factors), coding, generations, cells, terms, errs)


def cell_label(factors: dict[str, list[str]], levels: tuple[int, ...]) -> str:
    """``"finite/matched/exact"``: a cell's levels, in factor order."""
    return "/".join(v[i] for v, i in zip(factors.values(), levels))


def report_section(run, config: dict[str, Any]) -> dict | None:
    """What ``section_anatomy.html.j2`` shows of a run whose config has an ``anatomy`` key (else None): the figure
    ``figures/anatomy.png`` and every term at the first and last generation, in both codings."""
    from ..rundir.store import RunStore
    from .pages import Picture

    spec = config.get("anatomy")
    if not spec:
        return None
    metric, statistic = spec.get("metric", "kl_real"), spec.get("statistic", "mean")
    store = RunStore.of(run)  # a RunStore or its directory
    table = store.read_metrics()
    anchored = decompose(table, spec["factors"], metric, "anchored", statistic)
    effects = decompose(table, spec["factors"], metric, "effects", statistic)
    path = store.root / "figures" / "anatomy.png"
    labels = {levels: cell_label(anchored.factors, levels) for levels in anchored.cells}
    anatomy_figure(anchored, labels, f"{statistic} {metric}", path)
    first, last = 0, len(anchored.generations) - 1
    fmt = lambda a, t, i: f"{a.terms[t][i]:.4g} ± {a.stderr[t][i]:.2g}"  # noqa: E731
    rows = [
        [
            t if t == e else f"{t} / {e}",
            fmt(anchored, t, first),
            fmt(anchored, t, last),
            fmt(effects, e, first),
            fmt(effects, e, last),
        ]
        for t, e in zip(anchored.terms, effects.terms)
    ]
    return {
        "metric": metric,
        "statistic": statistic,
        "figure": Picture.of(path),
        "rows": rows,
        "factors": [(f, v[0], v[1]) for f, v in spec["factors"].items()],
        "generations": (anchored.generations[first], anchored.generations[last]),
    }


def anatomy_figure(anatomy, labels: dict, metric: str, path: Path):
    """Two panels: the divergence of every cell per generation (``labels``: {levels: arm label}), and the factorial
    terms per generation with ±2 s.e. bands (``anatomy``: an :class:`Anatomy`). Returns the (closed) Figure."""
    fig, (left, right) = plots.pyplot().subplots(1, 2, figsize=(12, 4.2), dpi=110)
    g = anatomy.generations
    for i, (levels, y) in enumerate(sorted(anatomy.cells.items(), key=lambda kv: (sum(kv[0]), kv[0]))):
        left.plot(g, y, color=f"C{i % 10}", lw=1.6, ls="-" if levels[0] else "--", label=labels[levels])
    left.set_title(f"{metric} per arm ({'/'.join(anatomy.factors)})")
    for i, (term, y) in enumerate(anatomy.terms.items()):
        right.plot(
            g,
            y,
            color="k" if i == 0 else f"C{(i - 1) % 10}",
            lw=2.2 if "×" not in term else 1.2,
            ls=":" if i == 0 else ("-" if "×" not in term else "--"),
            label=term,
        )
        e = anatomy.stderr[term]
        right.fill_between(g, y - 2 * e, y + 2 * e, color="k" if i == 0 else f"C{(i - 1) % 10}", alpha=0.12, lw=0)
    right.axhline(0, color="grey", lw=0.6)
    right.set_title(f"{metric}: {anatomy.coding} factorial terms (band: ±2 s.e.)")
    for ax in (left, right):
        plots.generation_axis(ax)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    plots.save_figure(fig, path)
    return fig
