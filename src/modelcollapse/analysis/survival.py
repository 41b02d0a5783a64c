"""The survival view (Suresh et al.'s forgetting, per category): the share of categories still present at generation
g against their generation-0 count c, at a few generations, beside the closed form 1 − exp(−c g_g).

Read from the tables the ``survival`` metric keeps in ``arrays/`` (``survival_count``, ``survival_total``,
``survival_alive``: pooled over a shard's replicates, one file per generation), summed over shards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..rundir.store import RunStore
from . import plots
from .gallery import NAME, pick_generations
from .pages import Picture
from .theory import forgetting_g, survival_by_count, survival_reference

KEYS = ("survival_count", "survival_total", "survival_alive")


@dataclass
class SurvivalTable:
    """One arm's survival counts over all its replicates: ``counts`` ``(C,)`` the distinct generation-0 counts c ≥ 1,
    ``total`` ``(C,)`` the (replicate, category) pairs with each, ``alive`` ``(G, C)`` how many of those are present
    at each of ``generations`` ``(G,)``."""

    generations: np.ndarray
    counts: np.ndarray
    total: np.ndarray
    alive: np.ndarray


def _kept(store: RunStore) -> dict[int, dict[int, dict[int, tuple[np.ndarray, ...]]]]:
    """{arm index: {shard: {generation: (count, total, alive)}}} of every kept survival table."""
    out: dict[int, dict[int, dict[int, tuple[np.ndarray, ...]]]] = {}
    for path in sorted((store.root / "arrays").glob("arm*-shard*-gen*.npz")):
        match = NAME.fullmatch(path.name)
        if not match:
            continue
        f = store.load_extra(int(match[1]), int(match[2]), int(match[3]))  # checked: this unit's, this generation's
        if KEYS[0] in f:
            out.setdefault(int(match[1]), {}).setdefault(int(match[2]), {})[int(match[3])] = tuple(f[k] for k in KEYS)
    return out


def survival_tables(run: RunStore | Path) -> dict[str, SurvivalTable]:
    """{arm name: SurvivalTable} of every arm that kept survival tables (the generations every shard reached)."""
    store = RunStore.of(run)
    arms = store.read_manifest().get("arms", [])
    tables = {}
    for a, shards in _kept(store).items():
        if a >= len(arms):
            continue
        gens = sorted(set.intersection(*(set(s) for s in shards.values())))
        counts = np.unique(np.concatenate([s[g][0] for s in shards.values() for g in gens]))
        total, alive = np.zeros(len(counts), np.int64), np.zeros((len(gens), len(counts)), np.int64)
        for s in shards.values():
            at = np.searchsorted(counts, s[gens[0]][0])
            total[at] += s[gens[0]][1]
            for i, g in enumerate(gens):
                alive[i, np.searchsorted(counts, s[g][0])] += s[g][2]
        tables[arms[a]] = SurvivalTable(np.array(gens), counts, total, alive)
    return tables


def count_bins(highest: int, per_decade: int = 8) -> np.ndarray:
    """Bin edges ``[lo, hi)`` over generation-0 counts 1..``highest``: one bin per count below 10, then ``per_decade``
    geometric bins a decade (integer edges).

    >>> count_bins(30).tolist()
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 18, 24, 32]
    """
    edges, power = list(range(1, 11)), 1.0
    while edges[-1] <= highest:
        power += 1 / per_decade
        edges.append(max(int(np.ceil(10**power)), edges[-1] + 1))
    return np.array(edges)


def survival_bins(table: SurvivalTable, generation: int, least: int = 10) -> tuple[np.ndarray, ...]:
    """At ``generation``, per bin of generation-0 counts (:func:`count_bins`) holding at least ``least`` pairs: the
    mean count, the share still present, its binomial standard error, the closed form averaged over the bin's pairs
    (:func:`~modelcollapse.analysis.theory.survival_by_count`), and the pairs; each ``(B,)``."""
    row = table.alive[list(table.generations).index(generation)]
    edges = count_bins(int(table.counts.max()))
    which = np.searchsorted(edges, table.counts, side="right") - 1
    n = np.bincount(which, table.total, len(edges) - 1)
    keep = n >= least
    n = n[keep]
    alive = np.bincount(which, row, len(edges) - 1)[keep]
    mean = np.bincount(which, table.total * table.counts, len(edges) - 1)[keep] / n
    closed = np.bincount(which, table.total * survival_by_count(table.counts, generation), len(edges) - 1)[keep] / n
    share = alive / n
    return mean, share, np.sqrt(share * (1 - share) / n), closed, n


def shown_generations(generations: np.ndarray, most: int = 5) -> list[int]:
    """The generations drawn: those ≥ 1 on the 1-2-5 series and the last, at most ``most``, evenly picked."""
    steps = {m * 10**e for e in range(7) for m in (1, 2, 5)}
    return pick_generations(sorted({int(g) for g in generations if g in steps} | {int(generations[-1])} - {0}), most)


def half_life_count(mean: np.ndarray, share: np.ndarray) -> float:
    """The generation-0 count at which the share still present first reaches ½, interpolated in log count: 0 when
    the smallest count's share already does, NaN when none does."""
    above = np.flatnonzero(share >= 0.5)
    if not len(above):
        return float("nan")
    if above[0] == 0:
        return 0.0
    i = above[0]
    t = (0.5 - share[i - 1]) / (share[i] - share[i - 1])
    return float(np.exp(np.log(mean[i - 1]) + t * (np.log(mean[i]) - np.log(mean[i - 1]))))


def section(run: RunStore | Path, arms: dict[str, dict]) -> dict | None:
    """What ``section_survival.html.j2`` shows: the ``figure`` (``figures/survival.png``, a panel per arm) and
    ``rows``, the count that survives with even odds per arm and generation; None when no arm kept survival tables."""
    store = RunStore.of(run)
    tables = survival_tables(store)
    if not tables:
        return None
    panels, rows = {}, []
    for arm, table in tables.items():
        law = survival_reference(arms[arm]) if arm in arms else None
        gens, bins = shown_generations(table.generations), {}
        for g in gens:
            mean, share, se, closed, n = survival_bins(table, g)
            c = np.geomspace(1, max(table.counts.max(), 2), 120)
            bins[g] = (mean, share, se, closed, (c, survival_by_count(c, g)) if law else None)
            ours, half = half_life_count(mean, share), np.log(2) / forgetting_g(g)[-1]
            within = np.abs(share - closed) <= 2 * np.sqrt(closed * (1 - closed) / n) + 1e-12
            rows.append(
                [
                    arm,
                    str(g),
                    str(int(n.sum())),
                    "< 1" if ours == 0 else f"{ours:.3g}",
                    f"{half:.3g}" if law else "",
                    f"{within.sum()} of {len(n)}" if law else "",
                ]
            )
        panels[arm] = (gens, bins)
    path = store.root / "figures" / "survival.png"
    survival_figure(panels, path)
    return {"figure": Picture.of(path), "rows": rows}


def survival_figure(panels: dict, path: Path):
    """The survival view: one panel per arm (``panels[arm]`` = (generations, bins), ``bins[g]`` = (mean count
    ``(B,)``, survival ``(B,)``, its standard error ``(B,)``, closed form at the bins ``(B,)``, smooth closed form
    (counts ``(m,)``, values ``(m,)``) or None)): the share of categories still present at generation g against their
    generation-0 count (log x), ±2 s.e. bars, one colour per generation, the closed form dashed. Returns the (closed)
    Figure."""
    fig, axes = plots.pyplot().subplots(
        1, len(panels), figsize=(5.0 * len(panels), 3.8), dpi=110, squeeze=False, sharey=True
    )
    for ax, (arm, (gens, bins)) in zip(axes[0], panels.items()):
        for i, g in enumerate(gens):
            color = plots.generation_color(i, len(gens))
            count, share, se, _, smooth = bins[g]
            ax.errorbar(
                count, share, yerr=2 * se, color=color, marker="o", ms=3, lw=0, elinewidth=1, label=f"generation {g}"
            )
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
    plots.save_figure(fig, path)
    return fig
