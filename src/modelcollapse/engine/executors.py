"""Executors: where a run's independent units (and a sweep's runs) execute — in process, a process pool, or Ray.

Every unit (arm, shard) draws from its own keyed random streams and writes only its own checkpoint directory
(atomically), so the executor changes where and when a unit runs, never its bits: the same seed gives a
bit-identical ``metrics.parquet`` on every executor.

Choosing one (``modelcollapse run ... --executor local|ray [--address ADDR] [--workers N]``):

- ``local`` (default): ``--workers 1`` runs units one after another in this process (with a per-generation progress
  bar); ``--workers N`` runs them in a pool of N spawned processes.
- ``ray``: each unit is a Ray task (``@ray.remote(max_retries=..., retry_exceptions=True)``). Without ``--address`` a
  local Ray instance is started with ``--workers`` CPUs (all cores if omitted). ``--address auto`` joins a cluster
  started on this machine with ``ray start --head``; ``--address ray://HOST:10001`` goes through Ray Client to a
  remote head node. Workers write into the run directory, so on a multi-node cluster ``--out`` must be on a
  filesystem every node mounts (NFS, Lustre, ...). Units whose model has ``device: cuda`` (or ``auto`` on a cluster
  with GPUs) request one GPU each (``num_gpus=1``).

Pool workers die with the process that started them (``prctl(PR_SET_PDEATHSIG)`` on Linux, and a parent check
between generations), so a killed driver leaves no worker writing into its run directory.

Failures: a failed task is retried ``retries`` times (a retried unit resumes from its last completed generation);
a unit that still fails is reported as a failed :class:`Outcome` while the other units finish.

For other drivers (the ``sweep`` command): call :func:`map_tasks` with any picklable top-level function and a list
of picklable items; it yields an :class:`Outcome` per item, as they complete::

    from modelcollapse.engine.executors import ExecutorSpec, map_tasks

    spec = ExecutorSpec(kind="ray", address=None, workers=2)
    for outcome in map_tasks(run_one, items, spec, gpus=[0] * len(items)):
        if outcome.error: ...
        else: use(outcome.index, outcome.value)

    outcomes = map_units(run_one, items, "ray", address="auto")   # the same, all at once, in item order

``import modelcollapse`` never imports Ray: it loads when ``kind == "ray"``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import CLI, PYTHON, ConfigError, Spelling, choice_error
from ..registry import Registry

EXECUTORS: Registry = Registry("--executor")
"""Executors by name: each is ``fn(task, items, spec, gpus) -> Iterator[Outcome]``, yielding as tasks complete.
A new one (say a Slurm array) is one function plus ``@EXECUTORS.register("slurm")``; ``--executor`` then accepts it."""


@dataclass(frozen=True)
class ExecutorSpec:
    """Where tasks run. ``workers``: processes (local) or CPUs of a Ray instance this call starts (ray, no
    ``address``); ``None`` means 1 for local and every core for Ray. ``retries``: extra attempts per failed task."""

    kind: str = "local"
    address: str | None = None
    workers: int | None = None
    retries: int = 2
    spelling: Spelling = field(default=CLI, compare=False, repr=False)  # errors name --workers or workers=

    def __post_init__(self):
        say = self.spelling
        if self.kind not in EXECUTORS:
            raise choice_error(say.arg("executor"), self.kind, EXECUTORS.names())
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"{say.arg('workers')} must be >= 1; got {self.workers!r}.")
        if self.address and self.kind != "ray":
            raise ConfigError(
                f"{say.hint('address', self.address)} needs {say.hint('executor', 'ray')}; "
                f"got {say.hint('executor', self.kind)}."
            )
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0; got {self.retries!r}.")

    @property
    def in_process(self) -> bool:
        """True when tasks run in this process, one at a time (callbacks and progress per generation work)."""
        return self.kind == "local" and (self.workers or 1) == 1


@dataclass
class Outcome:
    """The result of task ``index``: ``value`` on success, else ``error`` (one line), ``details`` (traceback) and
    ``exception``, what the task raised, for ``raise ... from outcome.exception``: in process it carries its own
    traceback; from a worker process or Ray, its ``__cause__`` holds the worker's traceback as text."""

    index: int
    value: Any = None
    error: str | None = None
    details: str = ""
    exception: BaseException | None = field(default=None, repr=False, compare=False)


def describe(err: BaseException) -> str:
    """One line for the manifest: ``Type: message`` (Ray's wrapper unwrapped to the task's own exception)."""
    cause = getattr(err, "cause", None) or err
    return f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''}".rstrip(": ")


def retried(fn: Callable[[Any], Any], item: Any, retries: int) -> Any:
    """``fn(item)``, tried up to ``1 + retries`` times; config errors are not retried (they fail the same way)."""
    for attempt in range(retries + 1):
        try:
            return fn(item)
        except ConfigError:
            raise
        except Exception:
            if attempt == retries:
                raise


def _call(fn, item, retries):  # top level, so a process pool can pickle it
    return retried(fn, item, retries)


def map_tasks(
    fn: Callable[[Any], Any], items: Sequence[Any], spec: ExecutorSpec, *, gpus: Sequence[float] | None = None
) -> Iterator[Outcome]:
    """Run ``fn(item)`` for every item on ``spec``'s executor; yield an :class:`Outcome` per item as each completes.

    ``fn`` must be a picklable top-level function for anything but in-process runs. ``gpus[i]``: GPUs task ``i``
    requests from Ray (ignored locally). A task that raises is retried ``spec.retries`` times, then yielded with its
    error; the remaining tasks still run. ``KeyboardInterrupt`` is not caught.
    """
    yield from EXECUTORS.get(spec.kind, "--executor")(fn, items, spec, gpus)


@EXECUTORS.register("local")
def _map_local(fn, items, spec: ExecutorSpec, gpus=None) -> Iterator[Outcome]:
    """In this process one task at a time (``--workers 1``), else a pool of spawned processes."""
    blocker = pool_blocker() if not spec.in_process else None
    if blocker:
        import warnings

        warnings.warn(
            f"running {len(items)} task(s) one after another in this process instead of {spec.workers} "
            f"worker processes: {blocker}.",
            RuntimeWarning,
            stacklevel=3,
        )
    elif not spec.in_process:
        yield from _map_pool(fn, items, spec)
        return
    for i, item in enumerate(items):
        try:
            yield Outcome(i, retried(fn, item, spec.retries))
        except Exception as err:
            yield Outcome(i, error=describe(err), details=traceback.format_exc(), exception=err)


def _is_main_guard(node) -> bool:
    """``if __name__ == "__main__":`` (either side of the ``==``)."""
    import ast

    test = getattr(node, "test", None)
    if not (
        isinstance(node, ast.If)
        and isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq)
    ):
        return False
    sides = [test.left, *test.comparators]
    return "__name__" in {getattr(x, "id", None) for x in sides} and any(
        getattr(x, "value", None) == "__main__" for x in sides
    )


def pool_blocker() -> str | None:
    """Why spawned worker processes cannot run here, or None. Spawned workers re-import the main script: one that
    starts the pool from top-level code outside ``if __name__ == "__main__":`` would start it again in every worker
    (Python's multiprocessing then kills them: BrokenProcessPool). A notebook, a REPL or ``python -c`` has no main
    file, so what it defined (plug-ins registered in a cell, say) never reaches a spawned worker."""
    import ast

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None:
        return (
            "the main program is a notebook, a REPL or `python -c`, whose definitions (plug-ins registered there) "
            "worker processes cannot import; to use a pool, run a script whose pool starts under "
            '`if __name__ == "__main__":`'
        )
    frame = sys._getframe()
    while frame is not None and not (
        frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__main__"
    ):
        frame = frame.f_back
    if frame is None:  # not started from the main module's top-level code (a thread, a callback): spawn is fine
        return None
    try:
        tree = ast.parse(open(frame.f_code.co_filename, encoding="utf-8").read())
    except (OSError, SyntaxError, ValueError):
        return None
    line = frame.f_lineno
    if any(_is_main_guard(node) and node.lineno <= line <= node.end_lineno for node in tree.body):
        return None
    return (
        f'{frame.f_code.co_filename} starts the pool at line {line}, outside an `if __name__ == "__main__":` '
        "block, and every spawned worker would re-run it; put the call under that guard to run in parallel"
    )


def map_units(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    executor: str = "local",
    address: str | None = None,
    workers: int | None = None,
    *,
    retries: int = 2,
    gpus: Sequence[float] | None = None,
) -> list[Outcome]:
    """:func:`map_tasks` with the CLI's options as arguments (errors name them: ``workers``, not ``--workers``);
    returns every :class:`Outcome`, in the order of ``items``."""
    spec = ExecutorSpec(kind=executor, address=address, workers=workers, retries=retries, spelling=PYTHON)
    return sorted(map_tasks(fn, items, spec, gpus=gpus), key=lambda o: o.index)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def thread_share(workers: int):
    """While workers are spawned, give each its share of the cores for BLAS and OpenMP threads (variables the user set
    are kept): otherwise every worker starts a thread per core, and 2 workers on 2 cores ran gmm-paper 2.4x slower
    than with one thread each."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    unset = [name for name in THREAD_VARIABLES if name not in os.environ]
    os.environ.update({name: str(max(1, cores // workers)) for name in unset})
    try:
        yield
    finally:
        for name in unset:
            os.environ.pop(name, None)


_parent: int | None = None  # in a pool worker: the pid of the process that started the pool


def die_with_parent(parent: int) -> None:
    """Pool-worker initializer: on Linux, ask the kernel to SIGKILL this worker when its parent dies
    (``prctl(PR_SET_PDEATHSIG)``), so no orphan keeps writing a run directory whose lock died with the parent; and
    remember the parent, for :func:`exit_if_orphaned` elsewhere."""
    global _parent
    _parent = parent
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    exit_if_orphaned()  # the parent may have died before prctl ran


def exit_if_orphaned() -> None:
    """In a pool worker whose parent has died: exit at once (called between generations; a no-op elsewhere)."""
    if _parent is not None and os.getppid() != _parent:
        os._exit(1)


def _map_pool(fn, items, spec: ExecutorSpec) -> Iterator[Outcome]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    workers = min(spec.workers or 1, max(len(items), 1))
    # spawn, not fork: the driver may hold threads (the progress bar), and Ray and Torch dislike forked children.
    context = multiprocessing.get_context("spawn")
    with (
        thread_share(workers),
        ProcessPoolExecutor(workers, mp_context=context, initializer=die_with_parent, initargs=(os.getpid(),)) as pool,
    ):
        futures = {pool.submit(_call, fn, item, spec.retries): i for i, item in enumerate(items)}
        for future in as_completed(futures):
            try:
                yield Outcome(futures[future], future.result())
            except Exception as err:
                yield Outcome(
                    futures[future],
                    error=describe(err),
                    details="".join(traceback.format_exception(err)),
                    exception=err,
                )


def connect_ray(spec: ExecutorSpec):
    """Import Ray and connect: reuse an initialised Ray, join ``spec.address``, or start a local instance."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"{spec.spelling.hint('executor', 'ray')} needs Ray: pip install 'modelcollapse[ray]'."
        ) from None
    if not ray.is_initialized():
        # Local workers import modelcollapse from wherever this process found it.
        env = {
            "env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [_package_root(), os.environ.get("PYTHONPATH")]))}
        }
        if spec.address:
            ray.init(address=spec.address, runtime_env=env if not spec.address.startswith("ray://") else None)
        else:
            ray.init(num_cpus=spec.workers, include_dashboard=False, runtime_env=env)
    return ray


def _package_root() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parent.parent)


@EXECUTORS.register("ray")
def _map_ray(fn, items, spec: ExecutorSpec, gpus) -> Iterator[Outcome]:
    ray = connect_ray(spec)
    task = ray.remote(max_retries=spec.retries, retry_exceptions=True)(fn)
    refs = {}
    for i, item in enumerate(items):
        n_gpus = float(gpus[i]) if gpus else 0.0
        refs[task.options(num_gpus=n_gpus).remote(item)] = i
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            try:
                yield Outcome(refs[ref], ray.get(ref))
            except Exception as err:
                yield Outcome(refs[ref], error=describe(err), details=str(err), exception=err)


def cluster_gpus(spec: ExecutorSpec) -> float:
    """GPUs the executor can offer: Ray's cluster resources, or 0 for local executors."""
    if spec.kind != "ray":
        return 0.0
    return float(connect_ray(spec).cluster_resources().get("GPU", 0.0))


def gpus_for(model_spec: dict[str, Any], cluster_gpus: float) -> float:
    """GPUs one unit requests: 1 when the model's ``device`` is cuda (``cuda``, ``cuda:1``), or ``auto`` on a cluster
    with GPUs; else 0."""
    device = str(model_spec.get("device") or "cpu")
    if device.startswith("cuda"):
        return 1.0
    return 1.0 if device == "auto" and cluster_gpus > 0 else 0.0


__all__ = [
    "ExecutorSpec",
    "Outcome",
    "map_tasks",
    "map_units",
    "gpus_for",
    "cluster_gpus",
    "connect_ray",
    "exit_if_orphaned",
]
