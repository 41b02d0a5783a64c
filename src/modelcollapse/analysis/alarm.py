"""Early warning: the first generation where a run's diversity falls, or its likelihood of real data worsens.

Pure functions over the tidy metrics table (columns ``arm``, ``generation``, ``metric``, ``value``; one row per
replicate). Each metric is summarised per generation by its median across replicates, then compared with generation 0:

- a **diversity** alarm (``distinct_2``, ``recall``, ``support_size``, ``tail_mass`` by default) fires at the first
  generation whose median is below ``(1 − diversity_drop) ×`` generation 0's (a relative fall, default 50%);
- a **likelihood** alarm (``nll_real``, ``test_perplexity``) fires at the first generation whose median exceeds
  generation 0's by more than ``likelihood_rise`` (nats for ``nll_real``; for a metric named ``*perplexity`` the rise
  is taken on log perplexity, i.e. nats per token).

Thresholds come from the config key ``alarm: {diversity_drop: 0.5, likelihood_rise: 1.0}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..rundir.table import text_column

DIVERSITY = ("distinct_2", "recall", "support_size", "tail_mass")
LIKELIHOOD = ("nll_real", "test_perplexity")


@dataclass(frozen=True)
class Alarm:
    """One alarm: ``kind`` 'diversity' or 'likelihood', the ``metric``, the first ``generation`` it fired (None:
    never), generation 0's median ``start`` and the median ``value`` when it fired."""

    arm: str
    kind: str
    metric: str
    generation: int | None
    start: float
    value: float | None


def median(values: np.ndarray) -> float:
    """The median of ``values`` ignoring NaNs (NaN if none), exact with infinities: a lost category makes
    ``nll_real`` +inf, and interpolating quantiles would turn inf − inf into NaN."""
    s = np.sort(values[~np.isnan(values)])
    return 0.5 * (s[(len(s) - 1) // 2] + s[len(s) // 2]) if len(s) else np.nan


def medians(generation: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted generations ``(G,)`` and the median value of each ``(G,)``."""
    gens = np.unique(generation)
    return gens, np.array([median(value[generation == g]) for g in gens])


def first_crossing(
    gens: np.ndarray, med: np.ndarray, kind: str, threshold: float, metric: str
) -> tuple[int | None, float | None]:
    """The first generation after the first whose median crosses the alarm line, and that median."""
    base = med[0]
    if kind == "diversity":
        crossed = med < (1 - threshold) * base
    else:
        series = np.log(med) - np.log(base) if metric.endswith("perplexity") else med - base
        crossed = series > threshold
    hits = np.flatnonzero(crossed[1:] & ~np.isnan(med[1:])) + 1  # +inf counts: an infinite NLL is a rise
    return (int(gens[hits[0]]), float(med[hits[0]])) if len(hits) else (None, None)


def alarms(
    table: dict[str, np.ndarray],
    diversity_drop: float = 0.5,
    likelihood_rise: float = 1.0,
    diversity_metrics=DIVERSITY,
    likelihood_metrics=LIKELIHOOD,
) -> list[Alarm]:
    """Every (arm, watched metric) present in ``table`` (columns as numpy arrays) with its first alarm generation."""
    arm, metric = np.asarray(table["arm"], object), np.asarray(table["metric"], object)
    gen, value = np.asarray(table["generation"]), np.asarray(table["value"], float)
    out = []
    for a in dict.fromkeys(arm):
        for kind, names, threshold in (
            ("diversity", diversity_metrics, diversity_drop),
            ("likelihood", likelihood_metrics, likelihood_rise),
        ):
            for m in names:
                sel = (arm == a) & (metric == m)
                if not sel.any():
                    continue
                gens, med = medians(gen[sel], value[sel])
                g, v = first_crossing(gens, med, kind, threshold, m)
                out.append(Alarm(str(a), kind, m, g, float(med[0]), v))
    return out


def lead(found: list[Alarm], arm: str) -> int | None:
    """Generations by which the earliest diversity alarm of ``arm`` precedes its earliest likelihood alarm (positive:
    diversity warns first); None unless both fired."""
    first = {}
    for a in found:
        if a.arm == arm and a.generation is not None:
            first[a.kind] = min(first.get(a.kind, a.generation), a.generation)
    return first["likelihood"] - first["diversity"] if len(first) == 2 else None


def table_columns(table) -> dict[str, np.ndarray]:
    """A pyarrow metrics table as the numpy columns :func:`alarms` reads."""
    return {
        "arm": text_column(table, "arm"),
        "metric": text_column(table, "metric"),
        "generation": table["generation"].to_numpy(),
        "value": table["value"].to_numpy(),
    }


def run_alarms(run) -> list[Alarm]:
    """The alarms of a run (a :class:`~modelcollapse.rundir.store.RunStore` or its directory), with the thresholds of
    its resolved config."""
    from ..rundir.store import RunStore

    store = RunStore.of(run)
    settings = store.read_config().get("alarm") or {}
    watched = [*settings.get("diversity_metrics", DIVERSITY), *settings.get("likelihood_metrics", LIKELIHOOD)]
    return alarms(table_columns(store.read_metrics(metrics=watched)), **settings)


def describe(found: list[Alarm]) -> list[str]:
    """One line per alarm that fired, and per arm the diversity lead over the likelihood alarm."""
    lines = []
    for a in found:
        if a.generation is not None:
            lines.append(
                f"{a.arm}: {a.kind} alarm at generation {a.generation}: {a.metric} {a.start:.4g} -> {a.value:.4g}"
            )
    for arm in dict.fromkeys(a.arm for a in found):
        n = lead(found, arm)
        if n is not None:
            lines.append(f"{arm}: diversity alarm leads the likelihood alarm by {n} generation(s)")
    for arm in dict.fromkeys(a.arm for a in found):
        silent = [a.metric for a in found if a.arm == arm and a.generation is None]
        if silent:
            lines.append(f"{arm}: no alarm from {', '.join(silent)}")
    return lines
