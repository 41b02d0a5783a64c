"""Log runs to MLflow live, one generation at a time (``modelcollapse run ... --track mlflow``, ``mc.run(...,
track="mlflow")``).

The run directory stays the source of truth; tracking is a copy that never changes or loses results: a tracking
failure is one warning line, and the run goes on.

Where: the tracking URI, default ``sqlite:///RUN_DIR/mlflow.db`` (MLflow's own default store since MLflow 3, which
put the file store in maintenance mode: its ``MlflowClient`` and ``mlflow ui`` refuse a ``file:`` store unless
``MLFLOW_ALLOW_FILE_STORE=true`` is set). Open it with ``mlflow ui --backend-store-uri sqlite:///RUN_DIR/mlflow.db``
(the UI needs the full ``mlflow`` package; ``mlflow-skinny``, the ``track`` extra, logs and reads). Artifacts of a
``sqlite:`` store go beside the database, in ``mlartifacts/``. An ``http(s)://`` tracking server works as well.

What, in the experiment named after the config's ``name``:

- one parent run per run directory (tag ``modelcollapse.run_dir``): the resolved config as params (flattened dotted
  keys, ``loop.samples``), and at the end ``config.yaml``, ``manifest.json`` (then ``report.html`` and
  ``figures/`` once built: :func:`attach_report`) as artifacts, and the run's status: FINISHED (complete or stopped
  by policy), FAILED, or KILLED (interrupted);
- one child run per arm (tag ``mlflow.parentRunId``): the arm's resolved config as params, and for every metric its
  across-replicate ``median`` and ``mean`` at each generation (``variance/median``, step = generation), logged as
  soon as every replicate of the arm has that generation persisted.

When: through the ``on_generation`` hook, in the process that runs the loop. A unit covers one shard of an arm's
replicates, so a generation is logged when its last shard's event arrives (the other shards' values are read from
their persisted metric segments). With ``workers > 1`` or Ray the hook would run in worker processes, each seeing
one shard; there it does nothing, and the driver logs instead: a thread polls the run directory's segments each
``poll`` seconds and logs every generation all of whose shards are persisted. Only the driver ever writes to the
store, so SQLite never sees concurrent writers. At the end, anything not yet logged (generations persisted before a
``resume``, the last ones before the poll saw them) is logged from ``metrics.parquet``. A resumed run gets a new
MLflow run holding every generation; the earlier one keeps its FAILED or KILLED status.

Why one summary run per arm rather than one run per replicate: a preset has up to thousands of replicates per arm
(gaussian-long: 8,070), and MLflow keeps every run as rows with its own params and metric histories; per-replicate runs
would make the UI and its queries unusable and add nothing the run directory's ``metrics.parquet`` does not already
hold exactly. The median is the statistic collapse results are stated in (it is robust to the heavy tails of
collapsing variances, PAPER-NUMBERS row 6); the mean is what closed forms such as E[W₂²] predict (rows 1-3).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..rundir.store import RunStore
from ..rundir.table import text_column

BATCH = 1000  # MLflow accepts at most 1,000 metrics (and 100 params) per log_batch call
PARAM_LIMIT = 6000  # characters of one param value
STATUS = {"complete": "FINISHED", "stopped": "FINISHED", "interrupted": "KILLED"}  # anything else: FAILED


def default_uri(run_dir: str | Path) -> str:
    """The default tracking URI of a run directory: a SQLite store in it.

    >>> default_uri("/tmp/runs/x")
    'sqlite:////tmp/runs/x/mlflow.db'
    """
    return f"sqlite:///{Path(run_dir).resolve() / 'mlflow.db'}"


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


def summarize(values: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Metric name -> (median, mean) across replicates of one generation, NaNs ignored (an all-NaN metric: NaN).

    >>> summarize({"variance": np.array([1.0, 2.0, 6.0, np.nan])})
    {'variance': (2.0, 3.0)}
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN generation stays NaN
        return {name: (float(np.nanmedian(v)), float(np.nanmean(v))) for name, v in values.items()}


def _metrics(stats: dict[str, tuple[float, float]], step: int, timestamp: int) -> list:
    from mlflow.entities import Metric

    return [
        Metric(f"{name}/{stat}", value, timestamp, step)
        for name, pair in stats.items()
        for stat, value in zip(("median", "mean"), pair)
        if math.isfinite(value)
    ]


def _batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


class Elsewhere:
    """What the tracker becomes when pickled into a worker process: a hook that does nothing (the driver logs)."""

    def __call__(self, event) -> None:
        return None


class Tracker:
    """The ``on_generation`` hook that logs one run directory to MLflow (see the module docstring), and its end.

    Nothing is written before the first generation is persisted (the run directory must be empty for a new run,
    and a run that fails at once leaves no directory). Use it through :func:`tracking`.
    """

    def __init__(self, run_dir: str | Path, uri: str | None = None, *, warn=None):
        self.run_dir = Path(run_dir).resolve()
        self.uri = uri or default_uri(self.run_dir)
        self.warn = warn or (lambda line: warnings.warn(line, RuntimeWarning, stacklevel=3))
        self.pid, self.lock, self.failed = os.getpid(), threading.RLock(), False
        self.client = self.parent = None
        self.children: dict[str, str] = {}
        self.logged: dict[str, set[int]] = {}
        self.store = RunStore(self.run_dir)

    def __reduce__(self):
        return (Elsewhere, ())

    # -- the hook -------------------------------------------------------------------------------------------------
    def __call__(self, event) -> None:
        if os.getpid() != self.pid:
            return
        self._guarded(self._on_event, event)

    def _on_event(self, event) -> None:
        self._start()
        arm, g = str(event.arm), int(event.generation)
        if g in self.logged[arm]:
            return
        index, shards = self.layout[arm]
        parts = {event.shard: event.metrics}
        for shard in range(shards):
            if shard not in parts:
                values = self._segment(index, shard, g)
                if values is None:
                    return  # another shard has yet to reach this generation: its event logs it
                parts[shard] = values
        self._log(
            arm,
            g,
            {m: np.concatenate([np.asarray(parts[s][m], float) for s in range(shards)]) for m in parts[event.shard]},
        )

    def _segment(self, arm: int, shard: int, generation: int) -> dict[str, np.ndarray] | None:
        # persisted once written (a rerun writes the same bits); None before, or after consolidation dropped it
        return self.store.generation_metrics(arm, shard, generation)

    # -- the driver's poll (workers > 1, Ray) ----------------------------------------------------------------------
    def poll_segments(self) -> None:
        """Log every generation all of whose shards have a persisted metric segment and that is not logged yet."""
        if not (self.run_dir / "config.yaml").exists():
            return
        self._start()
        for arm, (index, shards) in self.layout.items():
            for g in range(self.generations[arm]):
                if g in self.logged[arm]:
                    continue
                parts = [self._segment(index, s, g) for s in range(shards)]
                if any(p is None for p in parts):
                    break
                self._log(arm, g, {m: np.concatenate([np.asarray(p[m], float) for p in parts]) for m in parts[0]})

    # -- MLflow ---------------------------------------------------------------------------------------------------
    def _guarded(self, fn, *args) -> None:
        if self.failed:
            return
        with self.lock:
            try:
                fn(*args)
            except Exception as err:  # tracking is a copy; the run directory stays the source of truth
                self.failed = True
                text = str(err).strip()
                message = text.splitlines()[0] if text else ""
                self.warn(
                    f"MLflow tracking of {self.run_dir} failed ({type(err).__name__}: {message}); results are in "
                    f"{self.run_dir}."
                )

    def _start(self) -> None:
        if self.client is not None:
            return
        # An unreachable server should cost seconds, not MLflow's default of 7 retries with exponential backoff.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        config = self.store.read_config()
        arm_names, shard_size = self.store.segment_layout()
        top = {k: v for k, v in config.items() if k != "arms_resolved"}
        arms = config.get("arms_resolved") or {arm_names[0]: top}
        self.layout = {
            a: (i, -(-int(arms[a].get("replicates", top.get("replicates", 1))) // shard_size))
            for i, a in enumerate(arm_names)
        }
        self.generations = {a: int((arms[a].get("loop") or {}).get("generations", 0)) for a in arm_names}
        self.logged = {a: set() for a in arm_names}
        client = MlflowClient(tracking_uri=self.uri)
        name = str(config.get("name", self.run_dir.name))
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            where = {}
            if self.uri.startswith("sqlite:"):  # not MLflow's default, ./mlruns under whatever the working directory is
                where["artifact_location"] = (Path(self.uri.split(":///", 1)[1]).parent / "mlartifacts").as_uri()
            experiment_id = client.create_experiment(name, **where)
        else:
            experiment_id = experiment.experiment_id
        tags = {"modelcollapse.run_dir": str(self.run_dir)}
        parent = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        for chunk in _batches([Param(k, v) for k, v in flatten(top).items()], 100):
            client.log_batch(parent, params=chunk)
        for arm in arm_names:
            child = client.create_run(
                experiment_id, run_name=arm, tags={**tags, "mlflow.parentRunId": parent, "modelcollapse.arm": arm}
            ).info.run_id
            for chunk in _batches([Param(k, v) for k, v in flatten(arms.get(arm, {})).items()], 100):
                client.log_batch(child, params=chunk)
            self.children[arm] = child
        self.client, self.parent = client, parent

    def _log(self, arm: str, generation: int, values: dict[str, np.ndarray]) -> None:
        rows = _metrics(summarize(values), generation, int(time.time() * 1000))
        for chunk in _batches(rows, BATCH):
            self.client.log_batch(self.children[arm], metrics=chunk)
        self.logged[arm].add(generation)

    def _finish(self, status: str | None) -> None:
        if not (self.run_dir / "config.yaml").exists():
            return  # the run failed before its first generation and left nothing (nor anything to log)
        self._start()
        manifest = self.store.read_manifest()
        if self.store.table_path.exists() or self.store.units_on_disk():
            for arm, series in summaries(self.store.read_metrics()).items():
                for g, stats in series.items():
                    if g not in self.logged.get(arm, {g}):
                        rows = _metrics(stats, g, int(time.time() * 1000))
                        for chunk in _batches(rows, BATCH):
                            self.client.log_batch(self.children[arm], metrics=chunk)
                        self.logged[arm].add(g)
        for artifact in ("config.yaml", "manifest.json"):
            self.client.log_artifact(self.parent, str(self.run_dir / artifact))
        final = status or STATUS.get(str(manifest.get("status")), "FAILED")
        self.client.set_tag(self.parent, "modelcollapse.status", str(manifest.get("status")))
        for child in self.children.values():
            self.client.set_terminated(child, status=final)
        self.client.set_terminated(self.parent, status=final)

    def close(self, status: str | None = None) -> str | None:
        """Log what is left and end the MLflow runs (``status`` default: from the manifest). Returns the parent run
        id (None when nothing was logged)."""
        self._guarded(self._finish, status)
        return None if self.failed else self.parent


def summaries(table) -> dict[str, dict[int, dict[str, tuple[float, float]]]]:
    """Per arm and generation, :func:`summarize` of every metric, from the tidy metrics table (arm, replicate,
    generation, metric, value)."""
    arm, metric = text_column(table, "arm"), text_column(table, "metric")
    gen, value = table["generation"].to_numpy(), table["value"].to_numpy()
    out: dict[str, dict[int, dict]] = {}
    for a in dict.fromkeys(arm):
        in_arm = arm == a
        for g in np.unique(gen[in_arm]):
            sel = in_arm & (gen == g)
            names = metric[sel]
            out.setdefault(str(a), {})[int(g)] = summarize(
                {str(m): value[sel][names == m] for m in dict.fromkeys(names)}
            )
    return out


@contextlib.contextmanager
def tracking(run_dir: str | Path, uri: str | None = None, *, poll: float | None = None, warn=None):
    """Track the run made into ``run_dir`` inside the ``with`` body: yields the ``on_generation`` hook to pass to
    ``execute``. ``poll`` (seconds): also poll the run directory from a driver thread, for units that run in other
    processes. The MLflow runs end with the run's status (FAILED or KILLED when the body raises)."""
    tracker = Tracker(run_dir, uri, warn=warn)
    stop = threading.Event()
    thread = None
    if poll:

        def loop():
            while not stop.wait(poll):
                tracker._guarded(tracker.poll_segments)

        thread = threading.Thread(target=loop, name="mlflow-poll", daemon=True)
        thread.start()
    status = None
    try:
        yield tracker
    except BaseException as err:
        status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
        raise
    finally:
        stop.set()
        if thread is not None:
            thread.join()
        tracker.close(status)


def attach_report(run_dir: str | Path, uri: str | None = None, warn=None) -> None:
    """Add ``report.html`` and ``figures/`` of ``run_dir`` to its latest MLflow parent run (after the report is
    built). Never raises: a failure is one warning line."""
    run_dir = Path(run_dir).resolve()
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri or default_uri(run_dir))
        experiments = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(
            experiments,
            f"tags.`modelcollapse.run_dir` = '{run_dir}' and tags.`modelcollapse.status` != ''",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            return
        if (run_dir / "report.html").exists():
            client.log_artifact(runs[0].info.run_id, str(run_dir / "report.html"))
        if (run_dir / "figures").is_dir():
            client.log_artifacts(runs[0].info.run_id, str(run_dir / "figures"), "figures")
    except Exception as err:
        line = f"MLflow tracking of {run_dir}'s report failed ({type(err).__name__}: {str(err).strip()[:200]})."
        warn(line) if warn else warnings.warn(line, RuntimeWarning, stacklevel=2)


def log_run_dir(run_dir: str | Path, uri: str | None = None, warn=None) -> str | None:
    """Log an existing run directory after the fact (every generation from its metrics); returns the parent run id,
    None when tracking failed (one warning line)."""
    tracker = Tracker(run_dir, uri, warn=warn)
    parent = tracker.close()
    if parent is not None:
        attach_report(run_dir, uri, warn)
    return parent


class Hooks:
    """Several ``on_generation`` hooks as one (None entries skipped), called in order; picklable when they are."""

    def __init__(self, *hooks):
        self.hooks = [h for h in hooks if h is not None]

    def __call__(self, event) -> None:
        for hook in self.hooks:
            hook(event)


def log_runs(out: str | Path, names: list[str], uri: str | None = None, warn=None) -> list[str]:
    """Log the runs of ``modelcollapse run`` after the fact (a suite's members, or one run directory) with
    :func:`log_run_dir`. Never raises; returns the parent run ids logged."""
    out = Path(out)
    dirs = [out / n for n in names] if RunStore(out).kind == "suite" else [out]
    return [i for i in (log_run_dir(d, uri, warn) for d in dirs) if i is not None]
