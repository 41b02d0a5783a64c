"""Reports built from a run directory alone: figures, a final-values table, and one self-contained HTML file."""

from __future__ import annotations

import functools
import html
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ..errors import RunError
from ..rundir.atomic import atomic_write
from ..rundir.store import RunStore
from .plots import PAGE, img, metric_figure
from .rows import parquet_batches, metric_batches, pair_rows
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
    """One row per (arm, metric): last generation's median, IQR, mean, and the reference (closed form or published figure) if there is one."""
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
        return "\n\n".join(f"== {n} ==\n{summary_table(store.root / n)}" for n in names
                           if RunStore(store.root / n).kind == "loop")
    rows = [r for r in final_rows(store) if not r["metric"].startswith("train_")]
    w = max([3] + [len(r["arm"]) for r in rows])
    head = f"{'arm':{w}s} {'metric':16s} {'gen':>5s} {'median':>11s} {'IQR':>25s} {'mean':>11s} {'reference':>13s}"
    lines = [head, "-" * len(head)]
    for r in rows:
        ref = "" if r["reference"] is None else f"{r['reference']:.4g} ({r['reference_stat']})"
        iqr = f"[{r['q25']:.4g}, {r['q75']:.4g}]"
        lines.append(f"{r['arm']:{w}s} {r['metric'][:16]:16s} {r['generation']:5d} {r['median']:11.4g} {iqr:>25s} {r['mean']:11.4g} {ref:>13s}")
    return "\n".join(lines)


def story(store: RunStore, data: dict, arms: dict[str, dict], config: dict) -> tuple[str, list[Path]]:
    """The top of a report: a headline per arm, the reproduced / not-reproduced marks, the distribution pictures
    (their paths are returned too, for the suite's overview)."""
    from .story import distribution_pictures, headline, marks

    lines = [h for h in (headline(arm, data) for arm in arms) if h]
    replicates = {arm: a.get("replicates", config.get("replicates", 1)) for arm, a in arms.items()}
    found = marks(data, arms, replicates)
    rows = "".join(
        f"<tr><td>{html.escape(m.arm)}</td><td>{html.escape(m.metric)}</td><td>{m.generation}</td><td>{m.statistic}</td>"
        f"<td>{m.ours:.4g}</td><td>{m.expected:.4g}</td><td>±{m.tolerance:.2g}</td><td>{html.escape(m.label)}</td>"
        f"<td class='{'ok' if m.reproduced else 'no'}'>{'✔ reproduced' if m.reproduced else '✘ not reproduced'}</td></tr>"
        for m in found
    )
    table = (f"<table><tr><th>arm</th><th>metric</th><th>generation</th><th>statistic</th><th>ours</th><th>closed form or "
             f"published</th><th>tolerance</th><th>source</th><th>mark</th></tr>{rows}</table>"
             "<p class='meta'>Tolerance: 4 standard errors of our statistic, at least 5% of the expected value.</p>"
             if found else "")
    pictures = distribution_pictures(store)
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    body = (f"<div class='story'><ul class='headline'>{summary}</ul>{table}"
            f"<div class='figs'>{''.join(img(p) for p in pictures)}</div></div>")
    return body, pictures


def section(store: RunStore) -> tuple[str, list[Path]]:
    """The HTML body of one run's report, and the paths of its headline figures; writes figures to ``figures/``."""
    from .story import is_bookkeeping

    run_dir = store.root
    config, manifest = store.read_config(), store.read_manifest()
    data = curves(store)
    arms = arm_configs(store)
    by_metric: dict[str, dict[str, Curve]] = {}
    for (arm, metric), c in data.items():
        by_metric.setdefault(metric, {})[arm] = c
    figures, bookkeeping, paths = [], [], []
    for metric, per_arm in by_metric.items():
        if all(np.nanmin(c.q25) == np.nanmax(c.q75) for c in per_arm.values()):
            continue  # constant in every arm (e.g. train_real under replace): the table says it all
        path = run_dir / "figures" / f"{metric}.png"
        refs = {arm: reference(metric, arms[arm], c.generations) for arm, c in per_arm.items() if arm in arms}
        metric_figure(metric, per_arm, refs, path)
        (bookkeeping if is_bookkeeping(metric) else figures).append(img(path))
        if not is_bookkeeping(metric):
            paths.append(path)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            r["arm"], r["metric"], r["generation"], f"{r['median']:.4g}", f"[{r['q25']:.4g}, {r['q75']:.4g}]",
            f"{r['mean']:.4g}", "" if r["reference"] is None else f"{r['reference']:.4g} ({r['reference_stat']})",
        )) + "</tr>"
        for r in final_rows(store, data)
    )
    from .anatomy import report_section as anatomy_section  # "" unless the config has an ``anatomy`` key
    from .gallery import gallery_section  # "" unless metrics kept sample arrays
    from .scaling import run_scaling, section as scaling_section  # "" unless the grid varies a training-set size
    from .survival import section as survival_section  # "" unless the survival metric kept its tables

    top, pictures = story(store, data, arms, config)
    scaling, scaling_paths = scaling_section(run_dir, *run_scaling(store, config), img)
    survival, survival_paths = survival_section(store, arms, img)
    description = html.escape(str(config.get("description", "")))
    status = html.escape(f"{manifest.get('status', 'unknown')} {manifest.get('reason', '')}")
    name = html.escape(str(config.get("name", run_dir.name)))
    held = f"<details><summary>bookkeeping: training-set provenance, filter counts</summary><div class='figs'>{''.join(bookkeeping)}</div></details>"
    body = f"""
<section id="{name}"><h2>{name}</h2>
<p>{description}</p>
{top}
{scaling}
{survival}
<p class="meta">status: {status} · seed {config.get('seed')} · {config.get('replicates')} replicates ·
{config.get('loop', {}).get('generations')} generations · modelcollapse {html.escape(str(config.get('version')))}</p>
{gallery_section(store, img)}
<h3>Metrics by generation</h3><p class="meta">Line: median across replicates; band: interquartile range; dashed: closed form or published curve.</p>
<div class="figs">{''.join(figures)}</div>
{held if bookkeeping else ''}
<h3>Collapse alarms</h3><pre>{html.escape(chr(10).join(alarm_lines(store)) or "no watched metric in this run")}</pre>
<h3>Final values</h3>
<table><tr><th>arm</th><th>metric</th><th>generation</th><th>median</th><th>IQR</th><th>mean</th><th>reference</th></tr>{rows}</table>
{anatomy_section(store, config)}
<details><summary>resolved config</summary><pre>{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre></details>
</section>"""
    return body, (scaling_paths + survival_paths + pictures or paths)[:1]


def build_report(run: RunStore | Path) -> Path:
    """Write ``report.html`` in the run directory (one self-contained file, figures embedded) and return its path. A
    suite's page opens with an index and an overview grid of each member's headline picture, then every member's
    section."""
    store = RunStore.of(run)
    run_dir = store.root
    names = store.members()
    if names is not None:
        sections = {n: section(RunStore(run_dir / n)) for n in names if RunStore(run_dir / n).kind == "loop"}
        for n, (body, _) in sections.items():
            atomic_write(run_dir / n / "report.html", PAGE.format(title=f"modelcollapse: {n}", body=body))
        index = "".join(f"<li><a href='#{html.escape(n)}'>{html.escape(n)}</a></li>" for n in sections)
        grid = "".join(f"<figure><a href='#{html.escape(n)}'>{img(p[0])}</a><figcaption>{html.escape(n)}</figcaption></figure>"
                       for n, (_, p) in sections.items() if p)
        body = (f"<nav><h2>Contents</h2><ol>{index}</ol></nav><h2>Overview</h2><div class='overview'>{grid}</div>"
                + "".join(body for body, _ in sections.values()))
        title = f"modelcollapse suite: {run_dir.name}"
    else:
        body, title = section(store)[0], f"modelcollapse: {store.read_config().get('name', run_dir.name)}"
    path = run_dir / "report.html"
    atomic_write(path, PAGE.format(title=html.escape(title), body=body))
    return path


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
