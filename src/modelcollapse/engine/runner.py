"""Run a config: expand its arms, run every unit into the run directory, consolidate, and resume after a kill."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..config import PRESETS_DIR, Config, apply_overrides, load_raw, set_dotted
from ..errors import CLI, ConfigError, RunError, Spelling
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
    on_metrics = None if listener is None else (lambda g, values: listener(GenerationEvent(
        job.arm, g, values, job.unit.shard, range(start, start + job.unit.size))))
    extra = {"on_metrics": on_metrics} if on_metrics else {}  # only when asked (tests wrap run_unit's 4-argument form)
    return run_unit(job.cfg, job.unit, RunStore(job.root), job.on_generation or (lambda g: exit_if_orphaned()), **extra)


def check_resumable(store: RunStore, resolved: dict[str, Any], spelling: Spelling = CLI) -> None:
    """``--resume`` continues only the run its directory holds: same resolved config (a ``data.kind: file`` input's
    sha256 included), else ConfigError naming the first key that differs."""
    flag = spelling.flag("resume")
    saved = store.read_config()
    diff = first_difference({k: v for k, v in saved.items() if k != "version"}, {k: v for k, v in resolved.items() if k != "version"})
    if diff and diff.endswith("data.sha256"):
        raise ConfigError(f"{flag}: the file data.path changed since the run in {store.root} started (sha256 {diff!r} "
                          "differs from config.yaml); restore it, or start a new run.")
    if diff:
        raise ConfigError(f"{flag}: the config differs from {store.root}/config.yaml at {diff!r}; resume with the same config.")


def execute(
    config: Config, out: Path, *, resume: bool = False, quiet: bool = False, executor: ExecutorSpec = ExecutorSpec(),
    on_generation: Callable[[GenerationEvent], None] | None = None, spelling: Spelling = CLI,
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
            return _execute(config, store, plan, resume=resume, quiet=quiet, executor=executor,
                            listener=on_generation, spelling=spelling)
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
                raise ConfigError(f"{spelling.hint('out', str(out))} must be a directory, but {str(path)!r} is a file; "
                                  f"choose another {spelling.arg('out')}.")
            return


def _execute(config: Config, store: RunStore, plan, *, resume: bool, quiet: bool, executor: ExecutorSpec,
             listener=None, spelling: Spelling = CLI) -> dict[str, Any]:
    out, resolved = store.root, plan.resolved
    if resume:
        check_resumable(store, resolved, spelling)
    else:
        refuse_existing(out, spelling)  # again, under the lock: another run may have started here meanwhile
    arms = plan.arms
    arm_names = [name for name, _ in arms]
    store.write_config(resolved)
    manifest = store.resume_manifest() if resume and store.read_manifest() else store.new_manifest(config.name, arm_names)
    if manifest.get("status") == "complete":
        if manifest.get("table"):
            store.verify_table(manifest["table"])
        return manifest
    manifest["status"] = "running"
    manifest.pop("error", None)
    manifest.pop("errors", None)
    store.write_manifest(manifest)
    todo = units([cfg for _, cfg in arms], plan.stream_keys, arm_names)
    keys = [f"{arm_names[u.arm]}/shard{u.shard}" for u in todo]
    total = sum(arms[u.arm][1].loop.generations for u in todo)
    started = time.perf_counter()
    statuses, failures, causes = [], {}, {}
    with progress_bar(total, quiet, config.name) as advance:
        done = [store.last_generation(u.arm, u.shard) + 1 for u in todo]
        advance(sum(done))

        def on_generation(g: int, key: str, generations: int, last=[0.0]) -> None:
            # The state checkpoint marks a generation complete; the manifest is a summary, refreshed each second.
            manifest["completed"][key] = g + 1
            if time.perf_counter() - last[0] > 1.0 or g + 1 == generations:
                store.write_manifest(manifest)
                last[0] = time.perf_counter()
            advance(1)

        jobs = [
            UnitJob(str(out), arms[u.arm][1], u, partial(on_generation, key=k, generations=arms[u.arm][1].loop.generations)
                    if executor.in_process else None, arm_names[u.arm], listener)
            for u, k in zip(todo, keys)
        ]
        has_gpus = cluster_gpus(executor) if any(str(cfg.model.get("device")) == "auto" for _, cfg in arms) else 0.0
        gpus = [gpus_for(job.cfg.model, has_gpus) for job in jobs]
        try:
            for outcome in map_tasks(run_unit_job, jobs, executor, gpus=gpus):
                u, key = todo[outcome.index], keys[outcome.index]
                if outcome.error:
                    failures[key], causes[key] = outcome.error, outcome.exception
                else:
                    statuses.append(outcome.value)
                if not executor.in_process:  # a unit finished elsewhere: record and show its generations now
                    manifest["completed"][key] = now = store.last_generation(u.arm, u.shard) + 1
                    advance(now - done[outcome.index])
                    store.write_manifest(manifest)
        except BaseException as err:
            manifest["status"] = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
            manifest["error"] = f"{type(err).__name__}: {err}"
            store.write_manifest(manifest)
            raise
    manifest["timings"] = {"seconds": round(time.perf_counter() - started, 3)}
    if failures:  # keep the segments (no consolidation): --resume reruns only the failed units, then consolidates
        key, first = next(iter(failures.items()))
        # each error below is raised from the first failure, so its traceback (--debug, __cause__) leads into the
        # code that raised: a plug-in's own function included
        manifest.update(status="failed", error=f"{key}: {first}", errors=failures)
        store.write_manifest(manifest)
        if not resume and nothing_completed(store, plan):  # execute() discards the directory: no --resume advice
            errors = list(failures.values())
            if all(e.startswith("ConfigError: ") for e in errors):
                raise ConfigError(errors[0].removeprefix("ConfigError: ")) from causes[key]
            raise RunError(f"{len(failures)} of {len(todo)} units failed before completing a generation; first {key}: "
                           f"{first.rstrip('.')}. Nothing was kept.") from causes[key]
        raise RunError(f"{len(failures)} of {len(todo)} units failed; first {key}: {first.rstrip('.')}. The others are saved; "
                       f"fix the cause and rerun with {spelling.flag('resume')}.") from causes[key]
    store.finish(arm_names, config.shard_size, [(u.arm, u.shard) for u in todo], manifest)
    stopped = [s for s in statuses if s != "complete"]
    manifest["status"] = "stopped" if stopped else "complete"
    if stopped:
        manifest["reason"] = stopped[0]
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    store.write_manifest(manifest)
    return manifest


class progress_bar:
    """A rich progress bar of ``total`` steps, described ``LABEL: UNIT`` (generations of a run, steps of a chain; the
    audit's phases reuse it), silent with ``quiet``; the context value advances it. It draws on stderr, so stdout keeps
    only what a command prints as its result: live on a terminal and in a notebook, one final line when stderr is a
    file or a pipe. Every long-running surface (run, chain, audit) shows its progress with this one bar."""

    def __init__(self, total: int, quiet: bool, label: str, unit: str = "generations"):
        self.total, self.quiet, self.label, self.unit = total, quiet, label, unit

    def __enter__(self):
        if self.quiet:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
            transient=False, console=Console(stderr=True),
        )
        self.bar.__enter__()
        task = self.bar.add_task(f"{self.label}: {self.unit}", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc):
        if not self.quiet:
            self.bar.__exit__(*exc)
        return False


def suite_entries(raw: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A suite config (``suite:`` a list of presets, each optionally with ``set`` overrides) as (name, raw) pairs."""
    entries = []
    for item in raw["suite"]:
        item = {"preset": item} if isinstance(item, str) else dict(item)
        name = item.pop("preset", None)
        overrides = item.pop("set", {}) or {}
        if name is None or item:
            raise ConfigError(f"suite entries are a preset name or {{preset: NAME, set: {{key: value}}}}; got {item!r}.")
        sub = load_raw(name)
        for key, value in overrides.items():
            sub = set_dotted(sub, key, value)
        entries.append((name, sub))
    return entries


def with_plugins(raw: dict[str, Any], plugins: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``raw`` with ``plugins`` (``--plugin``) appended to its ``plugins`` list, so config.yaml records them and pool
    workers import them too."""
    if not plugins:
        return raw
    return {**raw, "plugins": list(dict.fromkeys([*(raw.get("plugins") or []), *map(str, plugins)]))}


def run_config(
    source: str | dict[str, Any], out: Path | None, overrides: list[str], *, resume: bool, quiet: bool,
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
        with (track(path) if track else contextlib.nullcontext()) as hook:
            return execute(cfg, path, resume=again, quiet=quiet, executor=executor, on_generation=hook, spelling=spelling)

    raw = load_raw(str(source)) if isinstance(source, str | Path) else dict(source)
    raw = with_plugins(apply_overrides(raw, overrides), plugins)
    name = str(raw.get("name") or (Path(source).stem if isinstance(source, str | Path) else "run"))
    out = Path(out) if out else Path("runs") / name
    check_out(out, spelling)
    prepare_out(out, overwrite=overwrite, resume=resume, spelling=spelling)
    if "suite" not in raw:
        return out, [(name, one(validate(raw, trust_code=trust_code), out, resume))]
    entries = [(n, validate(with_plugins(sub, raw.get("plugins") or []), trust_code=trust_code))
               for n, sub in suite_entries(raw)]  # validate every member before running any
    if not resume:
        refuse_existing(out, spelling)
    out.mkdir(parents=True, exist_ok=True)
    RunStore(out).write_suite(name, [n for n, _ in entries])
    return out, [(n, one(cfg, out / n, resume or (out / n / "config.yaml").exists())) for n, cfg in entries]


__all__ = ["execute", "run_config", "apply_overrides", "PRESETS_DIR"]
