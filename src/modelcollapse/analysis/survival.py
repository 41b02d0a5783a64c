"""The survival view (Suresh et al.'s forgetting, per category): the share of categories still present at generation
g against their generation-0 count c, at a few generations, beside the closed form 1 − exp(−c g_g).

Read from the tables the ``survival`` metric keeps in ``arrays/`` (``survival_count``, ``survival_total``,
``survival_alive``: pooled over a shard's replicates, one file per generation), summed over shards.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..rundir.store import RunStore
from .gallery import NAME, pick_generations
from .plots import survival_figure
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
        with np.load(path, allow_pickle=False) as f:
            if KEYS[0] in f.files:
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


def section(run: RunStore | Path, arms: dict[str, dict], img) -> tuple[str, list[Path]]:
    """The view's HTML (one figure, a panel per arm, and a table of the count that survives with even odds) and the
    figure's path (``figures/survival.png``); ("", []) when no arm kept survival tables."""
    store = RunStore.of(run)
    tables = survival_tables(store)
    if not tables:
        return "", []
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
            rows.append(f"<tr><td>{html.escape(arm)}</td><td>{g}</td><td>{int(n.sum())}</td>"
                        f"<td>{'&lt; 1' if ours == 0 else f'{ours:.3g}'}</td><td>{f'{half:.3g}' if law else ''}</td>"
                        f"<td>{f'{within.sum()} of {len(n)}' if law else ''}</td></tr>")
        panels[arm] = (gens, bins)
    path = store.root / "figures" / "survival.png"
    survival_figure(panels, path)
    body = ("<h3>Survival of categories (forgetting)</h3><p class='meta'>Per arm, the share of (replicate, category) "
            "pairs still present at generation g against the category's count c in generation 0's training data "
            "(bins; bars ±2 binomial s.e.), dashed the closed form 1 − exp(−c g_g) of Suresh et al. (Poisson limit, "
            "replace; g_1 = 1, g_(j+1) = 1 − exp(−g_j) ≈ 2/j). A category needs c½ = ln 2 / g_g ≈ g·ln 2 / 2 "
            f"generation-0 draws to survive g refits with even odds.</p><div class='figs'>{img(path)}</div>"
            "<table><tr><th>arm</th><th>generation</th><th>pairs</th><th>c½ (ours)</th><th>c½ = ln 2 / g_g</th>"
            "<th>bins within ±2 s.e. of the closed form</th></tr>"
            f"{''.join(rows)}</table>")
    return body, [path]
