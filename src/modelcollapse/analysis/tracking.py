"""Log a finished run directory to MLflow (``modelcollapse run ... --track mlflow [--tracking-uri URI]``).

Logged after the run, from the run directory alone (the source of truth), so tracking never changes or loses
results: any tracking failure is caught and reported as one warning line.

What is logged, in the experiment named after the config's ``name``:

- one parent run per run directory: the resolved config as params (flattened dotted keys, ``loop.samples``), the
  status and run directory as tags, and ``config.yaml``, ``manifest.json``, ``report.html`` and ``figures/`` as
  artifacts;
- one child run per arm (tag ``mlflow.parentRunId``): the arm's resolved config as params, and for every metric its
  across-replicate ``median`` and ``mean`` at each generation (``variance/median``, step = generation).

Why one summary run per arm rather than one run per replicate: a preset has up to thousands of replicates per arm
(gaussian-long: 8,070), and MLflow keeps every run as files or rows with its own params and metric histories; per-replicate runs
would make the UI and its queries unusable and add nothing the run directory's ``metrics.parquet`` does not already
hold exactly. The median is the statistic collapse results are stated in (it is robust to the heavy tails of
collapsing variances, PAPER-NUMBERS row 6); the mean is what closed forms such as E[W₂²] predict (rows 1-3).

Default tracking URI: a local file store at ``RUN_DIR/mlruns`` (``mlflow ui --backend-store-uri RUN_DIR/mlruns``).
The file store works with ``mlflow-skinny`` (the ``track`` extra); MLflow 3 marks it deprecated, so this module
sets ``MLFLOW_ALLOW_FILE_STORE=true`` for ``file:`` URIs. A ``sqlite:`` URI needs the full ``mlflow`` package
(SQLAlchemy and Alembic); an ``http(s)://`` tracking server works with skinny.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.store import RunStore, text_column

BATCH = 1000  # MLflow accepts at most 1,000 metrics (and 100 params) per log_batch call
PARAM_LIMIT = 6000  # characters of one param value


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping to ``{"a.b.c": "value"}``, values as strings (lists as their YAML-ish repr), truncated.

    >>> flatten({"loop": {"samples": 100}, "metrics": ["mean"]})
    {'loop.samples': '100', 'metrics': "['mean']"}
    """
    out = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, name))
        else:
            out[name] = str(value)[:PARAM_LIMIT]
    return out


def summaries(table) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Per arm and metric, (generations ``(G,)``, median ``(G,)``, mean ``(G,)``) across replicates (NaNs ignored).

    ``table``: the tidy metrics table (arm, replicate, generation, metric, value).
    """
    arm, metric = text_column(table, "arm"), text_column(table, "metric")
    gen, value = table["generation"].to_numpy(), table["value"].to_numpy()
    out: dict[str, dict[str, tuple]] = {}
    for a in dict.fromkeys(arm):
        in_arm = arm == a
        for m in dict.fromkeys(metric[in_arm]):
            sel = in_arm & (metric == m)
            g, v = gen[sel], value[sel]
            order = np.argsort(g, kind="stable")
            g, v = g[order], v[order]
            steps, starts = np.unique(g, return_index=True)
            groups = np.split(v, starts[1:])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN generation stays NaN
                median = np.array([np.nanmedian(x) for x in groups])
                mean = np.array([np.nanmean(x) for x in groups])
            out.setdefault(str(a), {})[str(m)] = (steps, median, mean)
    return out


def _metrics(series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], timestamp: int) -> list:
    from mlflow.entities import Metric

    rows = []
    for name, (steps, median, mean) in series.items():
        for stat, values in (("median", median), ("mean", mean)):
            rows += [Metric(f"{name}/{stat}", float(v), timestamp, int(s)) for s, v in zip(steps, values) if math.isfinite(v)]
    return rows


def _params(values: dict[str, str]) -> list:
    from mlflow.entities import Param

    return [Param(k, v) for k, v in values.items()]


def _batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def log_run_dir(run_dir: Path, uri: str | None = None) -> str:
    """Log one run directory; returns the parent MLflow run id. Raises on tracking failures (see :func:`log_runs`)."""
    import time

    run_dir = Path(run_dir).resolve()
    uri = uri or (run_dir / "mlruns").as_uri()
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    # An unreachable server should cost seconds, not MLflow's default of 7 retries with exponential backoff.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    from mlflow.tracking import MlflowClient

    store = RunStore(run_dir)
    config, manifest = store.read_config(), store.read_manifest()
    client = MlflowClient(tracking_uri=uri)
    name = str(config.get("name", run_dir.name))
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    tags = {"modelcollapse.run_dir": str(run_dir), "modelcollapse.status": str(manifest.get("status"))}
    parent = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    top = {k: v for k, v in config.items() if k != "arms_resolved"}
    for chunk in _batches(_params(flatten(top)), 100):
        client.log_batch(parent, params=chunk)
    for artifact in ("config.yaml", "manifest.json", "report.html"):
        if (run_dir / artifact).exists():
            client.log_artifact(parent, str(run_dir / artifact))
    if (run_dir / "figures").is_dir():
        client.log_artifacts(parent, str(run_dir / "figures"), "figures")
    now = int(time.time() * 1000)
    arms = config.get("arms_resolved") or {name: top}
    for arm, series in summaries(store.read_metrics()).items():
        child = client.create_run(experiment_id, run_name=arm, tags={**tags, "mlflow.parentRunId": parent, "modelcollapse.arm": arm})
        run_id = child.info.run_id
        for chunk in _batches(_params(flatten(arms.get(arm, {}))), 100):
            client.log_batch(run_id, params=chunk)
        for chunk in _batches(_metrics(series, now), BATCH):
            client.log_batch(run_id, metrics=chunk)
        client.set_terminated(run_id)
    client.set_terminated(parent, status="FINISHED" if manifest.get("status") in ("complete", "stopped") else "FAILED")
    return parent


def log_runs(out: Path, names: list[str], uri: str | None = None, warn=None) -> list[str]:
    """Log the runs of ``modelcollapse run`` (a suite's members, or one run directory). Never raises: a tracking
    failure is one warning line (``warn(message)``, default :func:`warnings.warn` as a RuntimeWarning), and the run
    directory keeps every result. Returns the parent run ids logged."""
    out = Path(out)
    dirs = [out / n for n in names] if (out / "suite.yaml").exists() else [out]
    ids = []
    for run_dir in dirs:
        try:
            ids.append(log_run_dir(run_dir, uri))
        except Exception as err:  # tracking is a copy; the run directory stays the source of truth
            message = str(err).strip().splitlines()[0] if str(err).strip() else ""
            line = f"MLflow tracking of {run_dir} failed ({type(err).__name__}: {message}); results are in {run_dir}."
            warn(line) if warn else warnings.warn(line, RuntimeWarning, stacklevel=2)
    return ids
