"""Run a config: expand its arms, run every unit into the run directory, consolidate, and resume after a kill."""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

from ..config import Config, RenamedKey, apply_overrides, load_raw, renamed, set_dotted
from ..errors import CLI, ConfigError, RunError, Spelling
from ..progress import ProgressBar
from ..rundir.layouts import refuse_earlier_layout
from ..rundir.lock import refuse_existing
from ..rundir.store import RunStore, prepare_out
from .executors import ExecutorSpec, cluster_gpus, exit_if_orphaned, gpus_for, map_tasks
from .loop import Unit, run_unit, units
from .plan import make_plan, validate


def first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            diff = first_difference(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))
            if diff:
                return diff
        return None
    return None if a == b else prefix or "<root>"


@dataclass
class UnitJob:
    """One unit to run into run directory ``root``; ``on_generation`` only when it runs in this process."""

    root: str
    cfg: Config
    unit: Unit
    on_generation: Callable[[int], None] | None = None
    arm: str = ""
    listener: Callable[[GenerationEvent], None] | None = None  # the caller's, called wherever the unit runs

    @property
    def key(self) -> str:
        """The unit's key in the manifest's ``completed`` and ``errors``: ``ARM/shardN``."""
        return f"{self.arm}/shard{self.unit.shard}"


@dataclass(frozen=True)
class GenerationEvent:
    """What ``on_generation(event)`` receives after a generation is persisted: the arm's name, the generation, and
    ``metrics``, every metric of this unit's replicates (name -> ``(R,)`` array, R = the shard's replicates:
    ``replicates`` ``range`` of them, all of them when ``replicates <= shard_size``)."""

    arm: str
    generation: int
    metrics: dict[str, Any]
    shard: int = 0
    replicates: range = range(0)


def run_unit_job(job: UnitJob) -> str:
    """Run one unit into its run directory (a top-level function, so process pools and Ray can ship it). Out of
    process, the unit stops between generations once the process that started its pool has died."""
    from ..registry import import_plugins

    import_plugins(job.cfg.plugins)  # a worker process has only the built-ins until it imports the config's plug-ins
    listener, start = job.listener, job.unit.shard * job.cfg.shard_size
    on_metrics = (
        None
        if listener is None
        else (
            lambda g, values: listener(
                GenerationEvent(job.arm, g, values, job.unit.shard, range(start, start + job.unit.size))
            )
        )
    )
    on_generation = job.on_generation or (lambda g: exit_if_orphaned())
    return run_unit(job.cfg, job.unit, RunStore(job.root), on_generation, on_metrics)


def check_resumable(store: RunStore, resolved: dict[str, Any], spelling: Spelling = CLI) -> None:
    """``--resume`` continues only the run its directory holds: same resolved config (a ``data.kind: file`` input's
    sha256 included), else ConfigError naming the first key that differs."""
    flag = spelling.flag("resume")
    saved = saved_config(store)
    diff = first_difference(
        {k: v for k, v in saved.items() if k != "version"}, {k: v for k, v in resolved.items() if k != "version"}
    )
    if diff and diff.endswith("data.sha256"):
        raise ConfigError(
            f"{flag}: the file data.path changed since the run in {store.root} started (sha256 {diff!r} "
            "differs from config.yaml); restore it, or start a new run."
        )
    if diff:
        raise ConfigError(
            f"{flag}: the config differs from {store.root}/config.yaml at {diff!r}; resume with the same config."
        )


def saved_config(store: RunStore) -> dict[str, Any]:
    """config.yaml as this version spells its keys (:data:`~modelcollapse.config.RENAMED`), so a run started before
    a key was renamed resumes; silent, as the user did not write config.yaml."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RenamedKey)
        saved = renamed(store.read_config())
        arms = {name: renamed(arm) for name, arm in (saved.get("arms_resolved") or {}).items()}
    return {**saved, "arms_resolved": arms} if arms else saved


def execute(
    config: Config,
    out: Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    executor: ExecutorSpec = ExecutorSpec(),
    on_generation: Callable[[GenerationEvent], None] | None = None,
    spelling: Spelling = CLI,
) -> dict[str, Any]:
    """Run ``config`` into ``out`` on ``executor``; returns the manifest. With ``resume``, continue a killed run.

    The whole call holds ``out/.lock``: a second process running or resuming ``out`` meanwhile gets RunError. Units
    that fail (after the executor's retries) mark the run failed while the others finish; then RunError. A new run
    that fails before completing any generation leaves no directory behind (nothing in it is worth resuming, and a
    corrected config could not resume it), so the corrected rerun starts afresh.
    ``on_generation(event)`` (a :class:`GenerationEvent`) is called after each generation of each unit is persisted,
    in the process that runs the unit (so it must be picklable for a process pool or Ray). ``spelling``: how error
    messages name the caller's options (the CLI's ``--resume``, or Python's ``resume=True``).
    """
    plan = make_plan(config)
    out = Path(out)
    check_out(out, spelling)
    if not resume:
        refuse_existing(out, spelling)
    created = not out.exists()
    store = RunStore(out)
    with store.lock():
        try:
            return _execute(
                config,
                store,
                plan,
                resume=resume,
                quiet=quiet,
                executor=executor,
                listener=on_generation,
                spelling=spelling,
            )
        except Exception:
            if not resume and nothing_completed(store, plan):
                discard(out, remove_root=created)
            raise


def nothing_completed(store: RunStore, plan) -> bool:
    """Whether no unit of ``plan`` has a completed generation in ``store``."""
    return all(store.last_generation(u.arm, u.shard) < 0 for u in units([cfg for _, cfg in plan.arms]))


def discard(out: Path, *, remove_root: bool) -> None:
    """Remove what a new run wrote into ``out`` (everything: a new run starts only in an empty directory)."""
    import shutil

    for child in out.iterdir():
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    if remove_root:
        out.rmdir()


def check_out(out: Path, spelling: Spelling = CLI) -> None:
    """``--out`` must be a directory or not exist yet (and so must every parent that exists): a one-line ConfigError."""
    for path in (out, *out.parents):
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                raise ConfigError(
                    f"{spelling.hint('out', str(out))} must be a directory, but {str(path)!r} is a file; "
                    f"choose another {spelling.arg('out')}."
                )
            return


def _execute(
    config: Config,
    store: RunStore,
    plan,
    *,
    resume: bool,
    quiet: bool,
    executor: ExecutorSpec,
    listener=None,
    spelling: Spelling = CLI,
) -> dict[str, Any]:
    """:func:`execute` under the directory's lock: open the manifest, run every unit, consolidate."""
    manifest = start_manifest(store, plan, resume=resume, spelling=spelling)
    if manifest["status"] == "complete":
        return manifest
    names = [name for name, _ in plan.arms]
    todo = units([cfg for _, cfg in plan.arms], plan.stream_keys, names)
    done = [store.last_generation(u.arm, u.shard) + 1 for u in todo]
    started = time.perf_counter()
    with ProgressBar(sum(plan.arms[u.arm][1].loop.generations for u in todo), quiet, config.name) as advance:
        advance(sum(done))
        jobs = [UnitJob(str(store.root), plan.arms[u.arm][1], u, None, names[u.arm], listener) for u in todo]
        if executor.in_process:  # a unit run here notes each generation as it completes
            record = Completed(store, manifest, advance)
            for job in jobs:
                job.on_generation = partial(record, key=job.key, generations=job.cfg.loop.generations)
        statuses, failures, causes = run_jobs(jobs, executor, store, manifest, advance, done)
    manifest["timings"] = {"seconds": round(time.perf_counter() - started, 3)}
    if failures:
        raise_failures(store, plan, manifest, failures, causes, len(todo), resume=resume, spelling=spelling)
    return finish_manifest(store, config.shard_size, names, todo, manifest, statuses)


def start_manifest(store: RunStore, plan, *, resume: bool, spelling: Spelling) -> dict[str, Any]:
    """Check the directory (``resume``: the same config; else still empty, checked again under the lock, as another
    run may have started there meanwhile), write config.yaml, and return the manifest: marked running, or as it is
    when the run is already complete (its table verified)."""
    if resume:
        refuse_earlier_layout(store.root)
        check_resumable(store, plan.resolved, spelling)
    else:
        refuse_existing(store.root, spelling)
    store.write_config(plan.resolved)
    on_disk = store.read_manifest() if resume else None
    manifest = (
        store.resume_manifest() if on_disk else store.new_manifest(plan.config.name, [name for name, _ in plan.arms])
    )
    if manifest.get("status") == "complete":
        if manifest.get("table"):
            store.verify_table(manifest["table"])
        return manifest
    manifest["status"] = "running"
    manifest.pop("error", None)
    manifest.pop("errors", None)
    store.write_manifest(manifest)
    return manifest


class Completed:
    """``record(g, key, generations)`` after generation ``g`` of unit ``key`` is persisted in this process: note it
    in the manifest and advance the bar. The state checkpoint marks a generation complete; the manifest is only a
    summary, so it is rewritten at most once a second, and at the unit's last generation."""

    def __init__(self, store: RunStore, manifest: dict[str, Any], advance: Callable[[int], None]):
        self.store, self.manifest, self.advance, self.written = store, manifest, advance, 0.0

    def __call__(self, g: int, key: str, generations: int) -> None:
        self.manifest["completed"][key] = g + 1
        if time.perf_counter() - self.written > 1.0 or g + 1 == generations:
            self.store.write_manifest(self.manifest)
            self.written = time.perf_counter()
        self.advance(1)


def run_jobs(
    jobs: list[UnitJob],
    executor: ExecutorSpec,
    store: RunStore,
    manifest: dict[str, Any],
    advance: Callable[[int], None],
    done: list[int],
) -> tuple[list[str], dict[str, str], dict[str, BaseException]]:
    """Run every unit on ``executor``: the statuses of the units that finished, and the error line and exception of
    each that failed (by unit key). A unit run elsewhere is noted in the manifest (and the bar) when it finishes;
    ``done``: each unit's generations completed before. An interruption marks the manifest, then propagates."""
    has_gpus = cluster_gpus(executor) if any(str(job.cfg.model.get("device")) == "auto" for job in jobs) else 0.0
    gpus = [gpus_for(job.cfg.model, has_gpus) for job in jobs]
    statuses, failures, causes = [], {}, {}
    try:
        for outcome in map_tasks(run_unit_job, jobs, executor, gpus=gpus):
            job = jobs[outcome.index]
            if outcome.error:
                failures[job.key], causes[job.key] = outcome.error, outcome.exception
            else:
                statuses.append(outcome.value)
            if not executor.in_process:  # a unit finished elsewhere: note and show its generations now
                manifest["completed"][job.key] = now = store.last_generation(job.unit.arm, job.unit.shard) + 1
                advance(now - done[outcome.index])
                store.write_manifest(manifest)
    except BaseException as err:
        manifest["status"] = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
        manifest["error"] = f"{type(err).__name__}: {err}"
        store.write_manifest(manifest)
        raise
    return statuses, failures, causes


def raise_failures(
    store: RunStore,
    plan,
    manifest: dict[str, Any],
    failures: dict[str, str],
    causes: dict[str, BaseException],
    total: int,
    *,
    resume: bool,
    spelling: Spelling,
) -> NoReturn:
    """Mark the run failed and raise, from the first failure (so its traceback, with --debug, and ``__cause__``
    lead into the code that raised, a plug-in's own included). The units' journals stay, unconsolidated: a resume
    reruns only the failed units, then consolidates."""
    key, first = next(iter(failures.items()))
    manifest.update(status="failed", error=f"{key}: {first}", errors=failures)
    store.write_manifest(manifest)
    count = f"{len(failures)} of {total} units failed"
    if not resume and nothing_completed(store, plan):  # execute() discards the directory: no resume advice
        errors = list(failures.values())
        if all(e.startswith("ConfigError: ") for e in errors):
            raise ConfigError(errors[0].removeprefix("ConfigError: ")) from causes[key]
        raise RunError(
            f"{count} before completing a generation; first {key}: {first.rstrip('.')}. Nothing was kept."
        ) from causes[key]
    # the advice must lead somewhere: --resume refuses a changed config, and a plain rerun a folder with files
    saved = "The others are saved" if len(failures) < total else "Completed generations are saved"
    raise RunError(
        f"{count}; first {key}: {first.rstrip('.')}. {saved}: fix a plug-in and rerun with "
        f"{spelling.flag('resume')} (same config), or change the config and rerun with "
        f"{spelling.flag('overwrite')} (starts over)."
    ) from causes[key]


def finish_manifest(
    store: RunStore, shard_size: int, names: list[str], todo: list[Unit], manifest: dict[str, Any], statuses: list[str]
) -> dict[str, Any]:
    """Consolidate the units' journals into metrics.parquet, and mark the run complete (or stopped by policy)."""
    store.finish(names, shard_size, [(u.arm, u.shard) for u in todo], manifest)
    stopped = [s for s in statuses if s != "complete"]
    manifest["status"] = "stopped" if stopped else "complete"
    if stopped:
        manifest["reason"] = stopped[0]
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    store.write_manifest(manifest)
    return manifest


def suite_entries(raw: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A suite config (``suite:`` a list of presets, each optionally with ``set`` overrides) as (name, raw) pairs."""
    entries = []
    for item in raw["suite"]:
        item = {"preset": item} if isinstance(item, str) else dict(item)
        name = item.pop("preset", None)
        overrides = item.pop("set", {}) or {}
        if name is None or item:
            raise ConfigError(
                f"suite entries are a preset name or {{preset: NAME, set: {{key: value}}}}; got {item!r}."
            )
        sub = load_raw(name)
        for key, value in overrides.items():
            sub = set_dotted(sub, key, value)
        entries.append((name, sub))
    return entries


def run_name(raw: dict[str, Any], source: Any) -> str:
    """A run's name: the config's ``name``, else the stem of the YAML file or preset it came from, else ``run``;
    the default run directory is ``runs/NAME``."""
    return str(raw.get("name") or (Path(source).stem if isinstance(source, str | Path) else "run"))


def with_plugins(raw: dict[str, Any], plugins: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``raw`` with ``plugins`` (``--plugin``) appended to its ``plugins`` list, so config.yaml records them and pool
    workers import them too."""
    if not plugins:
        return raw
    return {**raw, "plugins": list(dict.fromkeys([*(raw.get("plugins") or []), *map(str, plugins)]))}


def run_config(
    source: str | dict[str, Any],
    out: Path | None,
    overrides: list[str],
    *,
    resume: bool,
    quiet: bool,
    executor: ExecutorSpec = ExecutorSpec(),
    trust_code: bool = False,
    plugins: list[str] | tuple[str, ...] = (),
    track: Callable[[Path], Any] | None = None,
    overwrite: bool = False,
    spelling: Spelling = CLI,
) -> tuple[Path, list[tuple[str, dict]]]:
    """Load, override, validate and run a config or preset (or a suite of them): the one code path of
    ``modelcollapse run`` and ``mc.run``. Returns the run directory and the (name, manifest) of each run made.
    ``source``: a YAML path or preset name, or a raw config dict. ``trust_code``: allow config keys that name Python
    code to import (``model.estimator``, a verifier filter's ``function``, ``plugins``); refused otherwise, like
    transformers' ``trust_remote_code``. ``plugins``: modules or files to import (``--plugin``), added to the config's
    ``plugins``. ``track(run_dir)``: a context manager around each run, yielding its ``on_generation`` hook
    (``--track``). ``overwrite``: first empty ``out`` if it holds a modelcollapse run
    (:func:`~modelcollapse.rundir.store.prepare_out`). ``spelling``: how errors name the caller's options."""

    def one(cfg: Config, path: Path, again: bool) -> dict:
        with track(path) if track else contextlib.nullcontext() as hook:
            return execute(
                cfg, path, resume=again, quiet=quiet, executor=executor, on_generation=hook, spelling=spelling
            )

    raw = load_raw(str(source)) if isinstance(source, str | Path) else dict(source)
    raw = with_plugins(apply_overrides(raw, overrides), plugins)
    name = run_name(raw, source)
    out = Path(out) if out else Path("runs") / name
    check_out(out, spelling)
    prepare_out(out, overwrite=overwrite, resume=resume, spelling=spelling)
    if "suite" not in raw:
        return out, [(name, one(validate(raw, trust_code=trust_code), out, resume))]
    entries = [
        (n, validate(with_plugins(sub, raw.get("plugins") or []), trust_code=trust_code))
        for n, sub in suite_entries(raw)
    ]  # validate every member before running any
    if not resume:
        refuse_existing(out, spelling)
    out.mkdir(parents=True, exist_ok=True)
    RunStore(out).write_suite(name, [n for n, _ in entries])
    return out, [(n, one(cfg, out / n, resume or (out / n / "config.yaml").exists())) for n, cfg in entries]


__all__ = ["execute", "run_config"]
