"""Reports built from a run directory alone: figures, a final-values table, and one self-contained HTML file."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ..errors import RunError
from ..rundir.store import RunStore
from . import plots
from .pages import Picture, write_page
from .rows import metric_batches, pair_rows, parquet_batches
from .theory import reference


@dataclass
class Curve:
    """Across-replicate statistics of one metric of one arm, per generation."""

    generations: np.ndarray
    median: np.ndarray
    q25: np.ndarray
    q75: np.ndarray
    mean: np.ndarray


def curves(run: RunStore | Path) -> dict[tuple[str, str], Curve]:
    """{(arm, metric): Curve} from the run's metrics table, streamed a batch at a time (runs can hold 10⁸ rows: only
    the generation and value columns are held whole, about 12 bytes a row).

    A finished run's table is read once per process (``run`` builds the report, then prints the summary from it);
    the cache key is the file's identity, so a rewritten ``metrics.parquet`` is read again."""
    store = RunStore.of(run)
    path = store.table_path
    if path.exists():
        stat = path.stat()
        return _finished_curves(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    return _curves(metric_batches(store), store.root)


@functools.lru_cache(maxsize=4)
def _finished_curves(path: str, mtime_ns: int, size: int) -> dict[tuple[str, str], Curve]:
    return _curves(parquet_batches(Path(path)), Path(path).parent)


def _curves(batches, run_dir: Path) -> dict[tuple[str, str], Curve]:
    """Split each batch of metric rows by (arm, metric), then reduce each pair's rows to a Curve."""
    parts: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    for name, gen, value in pair_rows(batches):
        parts.setdefault(name, []).append((gen.astype(np.int32), value))
    if not parts:
        raise RunError(f"{run_dir} has no completed generation yet: nothing to report.")
    return {name: _curve(pieces) for name, pieces in parts.items()}


def _curve(pieces: list[tuple[np.ndarray, np.ndarray]]) -> Curve:
    """Quartiles and mean per generation of one (arm, metric)'s rows, given as (generation, value) pieces."""
    g = np.concatenate([p[0] for p in pieces])
    v = np.concatenate([p[1] for p in pieces])
    pieces.clear()  # the caller's copies go as soon as they are joined
    order = np.argsort(g, kind="stable")
    g, v = g[order], v[order]
    gens, starts, counts = np.unique(g, return_index=True, return_counts=True)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if np.all(counts == counts[0]):  # the usual case: one value per replicate and generation
            grid = v.reshape(len(gens), counts[0])
            q, means = np.nanquantile(grid, [0.25, 0.5, 0.75], axis=1).T, np.nanmean(grid, axis=1)
        else:
            groups = np.split(v, starts[1:])
            q = np.array([np.nanquantile(x, [0.25, 0.5, 0.75]) for x in groups])
            means = np.array([np.nanmean(x) for x in groups])
    return Curve(gens.astype(np.int64), q[:, 1], q[:, 0], q[:, 2], means)


def arm_configs(run: RunStore | Path) -> dict[str, dict]:
    config = RunStore.of(run).read_config()
    return config.get("arms_resolved") or {config.get("name", "run"): config}


def final_rows(run: RunStore | Path, data: dict[tuple[str, str], Curve] | None = None) -> list[dict]:
    """One row per (arm, metric): last generation's median, IQR, mean, and the reference (closed form or published
    figure) if there is one."""
    store = RunStore.of(run)
    data = data if data is not None else curves(store)
    arms = arm_configs(store)
    rows = []
    for (arm, metric), c in data.items():
        ref = reference(metric, arms[arm], c.generations[-1:]) if arm in arms else None
        rows.append(
            {
                "arm": arm,
                "metric": metric,
                "generation": int(c.generations[-1]),
                "median": c.median[-1],
                "q25": c.q25[-1],
                "q75": c.q75[-1],
                "mean": c.mean[-1],
                "reference": None if ref is None else float(ref[0][-1]),
                "reference_stat": None if ref is None else ref[2],
            }
        )
    return rows


def alarm_lines(run: RunStore | Path) -> list[str]:
    """The early-warning lines of a run (see ``alarm``)."""
    from .alarm import describe, run_alarms

    return describe(run_alarms(run))


def summary_table(run: RunStore | Path) -> str:
    """A plain-text table of final values (for a suite, one block per member)."""
    store = RunStore.of(run)
    names = store.members()
    if names is not None:
        return "\n\n".join(
            f"== {n} ==\n{summary_table(store.root / n)}" for n in names if RunStore(store.root / n).kind == "loop"
        )
    rows = [r for r in final_rows(store) if not r["metric"].startswith("train_")]
    w = max([3] + [len(r["arm"]) for r in rows])
    head = f"{'arm':{w}s} {'metric':16s} {'gen':>5s} {'median':>11s} {'IQR':>25s} {'mean':>11s} {'reference':>13s}"
    lines = [head, "-" * len(head)]
    for r in rows:
        ref = "" if r["reference"] is None else f"{r['reference']:.4g} ({r['reference_stat']})"
        iqr = f"[{r['q25']:.4g}, {r['q75']:.4g}]"
        lines.append(
            f"{r['arm']:{w}s} {r['metric'][:16]:16s} {r['generation']:5d} {r['median']:11.4g} {iqr:>25s} "
            f"{r['mean']:11.4g} {ref:>13s}"
        )
    return "\n".join(lines)


def story(store: RunStore, data: dict, arms: dict[str, dict], config: dict) -> dict:
    """The top of a report: ``headlines`` (a sentence per arm), ``marks`` (reproduced or not, see
    :func:`.story.marks`) and ``pictures`` (the distribution figures, also the suite overview's)."""
    from .story import distribution_pictures, headline, marks

    replicates = {arm: a.get("replicates", config.get("replicates", 1)) for arm, a in arms.items()}
    return {
        "headlines": [h for h in (headline(arm, data) for arm in arms) if h],
        "marks": marks(data, arms, replicates),
        "pictures": [Picture.of(p) for p in distribution_pictures(store)],
    }


def section(store: RunStore) -> dict:
    """What ``run.html.j2`` shows of one run (every field is text or a :class:`~.pages.Picture`); writes the figures
    to ``figures/``. ``headline_figure`` is the suite overview's picture of the run (None: it has none)."""
    from .anatomy import report_section as anatomy_section  # None unless the config has an ``anatomy`` key
    from .curation import section as curation_section  # None unless an arm curates (a ``curate`` filter)
    from .divergence import section as divergence_section  # None unless metrics kept grid densities
    from .gallery import gallery_section  # None unless metrics kept sample arrays
    from .mad_pattern import section as pattern_section  # None unless the run has MAD's four arms
    from .scaling import run_scaling  # None unless the grid varies a training-set size
    from .scaling import section as scaling_section
    from .survival import section as survival_section  # None unless the survival metric kept its tables

    config, manifest = store.read_config(), store.read_manifest()
    data = curves(store)
    arms = arm_configs(store)
    figures, bookkeeping = metric_figures(store, data, arms)
    top = story(store, data, arms, config)
    scaling = scaling_section(store.root, *run_scaling(store, config))
    survival = survival_section(store, arms)
    headline = [
        *(scaling["figures"] if scaling else []),
        *([survival["figure"]] if survival else []),
        *top["pictures"],
        *figures,
    ]
    return {
        "name": str(config.get("name", store.root.name)),
        "description": str(config.get("description", "")),
        "status": f"{manifest.get('status', 'unknown')} {manifest.get('reason', '')}",
        "seed": config.get("seed"),
        "replicates": config.get("replicates"),
        "generations": config.get("loop", {}).get("generations"),
        "version": str(config.get("version")),
        "story": top,
        "scaling": scaling,
        "survival": survival,
        "divergence": divergence_section(store),
        "curation": curation_section(store, data, arms),
        "gallery": gallery_section(store),
        "pattern": pattern_section(data),
        "figures": figures,
        "bookkeeping": bookkeeping,
        "alarms": "\n".join(alarm_lines(store)) or "no watched metric in this run",
        "finals": [final_cells(r) for r in final_rows(store, data)],
        "anatomy": anatomy_section(store, config),
        "config": yaml.safe_dump(config, sort_keys=False),
        "headline_figure": headline[0] if headline else None,
    }


def final_cells(row: dict) -> list[str]:
    """One row of the final-values table, formatted: arm, metric, generation, median, IQR, mean, reference."""
    ref = "" if row["reference"] is None else f"{row['reference']:.4g} ({row['reference_stat']})"
    return [
        row["arm"],
        row["metric"],
        str(row["generation"]),
        f"{row['median']:.4g}",
        f"[{row['q25']:.4g}, {row['q75']:.4g}]",
        f"{row['mean']:.4g}",
        ref,
    ]


def metric_figures(
    store: RunStore, data: dict[tuple[str, str], Curve], arms: dict[str, dict]
) -> tuple[list[Picture], list[Picture]]:
    """One figure per metric (every arm's curve in it), written to ``figures/METRIC.png``: the science
    figures and of the bookkeeping ones (training-set provenance, filter counts). A metric constant in every arm
    gets none (e.g. train_real under replace: the table says it all)."""
    from .story import is_bookkeeping

    by_metric: dict[str, dict[str, Curve]] = {}
    for (arm, metric), c in data.items():
        by_metric.setdefault(metric, {})[arm] = c
    figures, bookkeeping = [], []
    for metric, per_arm in by_metric.items():
        if all(np.nanmin(c.q25) == np.nanmax(c.q75) for c in per_arm.values()):
            continue
        path = store.root / "figures" / f"{metric}.png"
        refs = {arm: reference(metric, arms[arm], c.generations) for arm, c in per_arm.items() if arm in arms}
        metric_figure(metric, per_arm, refs, path)
        (bookkeeping if is_bookkeeping(metric) else figures).append(Picture.of(path))
    return figures, bookkeeping


def metric_figure(metric: str, data: dict, refs: dict, path: Path):
    """Median and interquartile band per arm against generation (``data``: {arm: Curve}), with each arm's reference
    ``refs[arm]`` = (values, label, statistic), a closed form or published curve, dashed. Returns the (closed)
    Figure."""
    fig, ax = plots.pyplot().subplots(figsize=(6.4, 3.8), dpi=110)
    positive = all(np.nanmin(c.q25) > 0 for c in data.values() if np.isfinite(c.q25).any())
    spread = max(
        (np.nanmax(c.q75) / max(np.nanmin(c.q25), 1e-300) for c in data.values() if np.isfinite(c.q75).any()), default=1
    )
    for i, (arm, c) in enumerate(data.items()):
        color = f"C{i % 10}"
        ax.plot(c.generations, c.median, color=color, lw=1.6, label=f"{arm} (median)" if len(data) > 1 else "median")
        ax.fill_between(c.generations, c.q25, c.q75, color=color, alpha=0.2, lw=0)
        ref = refs.get(arm)
        if ref is not None:
            values, label, stat = ref
            if stat == "mean":
                ax.plot(
                    c.generations,
                    c.mean,
                    color=color,
                    lw=0.8,
                    ls=":",
                    label="replicate mean" if len(data) == 1 else None,
                )
            ax.plot(c.generations, values, color="k", lw=1.0, ls="--", label=label if i == 0 else None)
    if positive and spread > 100:
        ax.set_yscale("log")
    plots.generation_axis(ax)
    ax.set_ylabel(metric)
    ax.set_title(metric)
    ax.grid(alpha=0.3)
    if len(ax.get_legend_handles_labels()[1]) > 1:  # a lone median needs no legend: the caption says what the line is
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    plots.save_figure(fig, path)
    return fig


def build_report(run: RunStore | Path) -> Path:
    """Write ``report.html`` in the run directory (one self-contained file, figures embedded) and return its path. A
    suite's page opens with an index and an overview grid of each member's headline picture, then every member's
    section; each member's directory gets its own one-section page too."""
    store = RunStore.of(run)
    names = store.members()
    if names is None:
        title = f"modelcollapse: {store.read_config().get('name', store.root.name)}"
        return write_page(store.root / "report.html", "run.html.j2", title=title, runs=[section(store)], suite=False)
    sections = [(n, section(RunStore(store.root / n))) for n in names if RunStore(store.root / n).kind == "loop"]
    for n, s in sections:
        write_page(store.root / n / "report.html", "run.html.j2", title=f"modelcollapse: {n}", runs=[s], suite=False)
    return write_page(
        store.root / "report.html",
        "run.html.j2",
        title=f"modelcollapse suite: {store.root.name}",
        runs=[s for _, s in sections],
        suite=True,
    )


def build_any(run_dir: str | Path) -> Path:
    """Write the report of whatever run ``run_dir`` holds (:attr:`RunStore.kind`) and return its path: a chain run's
    (:func:`chain_report.build_report`), a sweep's (:func:`sweep_report.build_sweep_report`, default metric) or a loop
    run's or suite's (:func:`build_report`). The run is opened once; every part of the report reads that store."""
    store = RunStore(run_dir)
    kind = store.kind
    if kind == "telephone":
        from .chain_report import build_report as build_chain_report

        return build_chain_report(store)
    if kind == "sweep":
        from .sweep_report import build_sweep_report

        return build_sweep_report(store)
    return build_report(store)
