"""Throughput of the Gaussian replace loop: the ``samples`` path and the ``exact`` path against numpy's raw normal-draw
rate, measured on the same machine in the same process; the per-generation store I/O share; and optional full-scale
runs (``gaussian-long``, peak RSS) and a local-vs-Ray units/s comparison.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_gaussian_paths.py                      # paths at M = 100, 1000, 10000
    PYTHONPATH=src python benchmarks/bench_gaussian_paths.py --long              # gaussian-long, full scale, exact
    PYTHONPATH=src python benchmarks/bench_gaussian_paths.py --long --compare    # ... then in the earlier store layout
    PYTHONPATH=src python benchmarks/bench_gaussian_paths.py --preset gmm-paper  # any preset: seconds and peak RSS
    PYTHONPATH=src python benchmarks/bench_gaussian_paths.py --units             # units/s: local pool vs Ray
    PYTHONPATH=src python benchmarks/bench_gaussian_paths.py --io                # ms per persisted generation
    PYTHONPATH=src python benchmarks/bench_gaussian_paths.py --nll               # nll_real: closed form vs per record

A replicate-generation is one replicate advanced by one generation (fit + sample + measure + persist). The
RNG-bound limit is the rate at which numpy draws the M·d standard normals a replicate-generation of the samples path
needs: ``normals_per_second / (M·d)``; ratio = limit / achieved (1.0 means the engine costs only its random numbers).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from modelcollapse.engine.loop import Unit, run_unit
from modelcollapse.engine.plan import validate
from modelcollapse.rundir.store import RunStore


class TimedStore(RunStore):
    """A RunStore that adds up the seconds spent persisting generations (``save_generation`` + ``save_extra``)."""

    seconds = 0.0

    def save_generation(self, *args, **kwargs):
        start = time.perf_counter()
        super().save_generation(*args, **kwargs)
        self.seconds += time.perf_counter() - start

    def save_extra(self, *args, **kwargs):
        start = time.perf_counter()
        super().save_extra(*args, **kwargs)
        self.seconds += time.perf_counter() - start


def normal_rate(replicates: int, m: int, repeats: int) -> float:
    """Standard normals per second, drawn as the samples path draws them: one ``(R, M, 1)`` array at a time."""
    rng = np.random.default_rng(0)
    rng.standard_normal((replicates, m, 1))  # warm the allocator
    start = time.perf_counter()
    for _ in range(repeats):
        rng.standard_normal((replicates, m, 1))
    return repeats * replicates * m / (time.perf_counter() - start)


def engine_rate(
    sampler: str, replicates: int, m: int, generations: int, workdir: Path, files: bool = False
) -> tuple[float, float]:
    """(replicate-generations per second, share of the time in store I/O) for one unit of the replace loop. ``files``:
    the earlier store layout (a metrics segment file and a state checkpoint renamed into place every generation)
    instead of the append-only journal."""
    cfg = validate(
        {
            "replicates": replicates,
            "shard_size": replicates,
            "data": {"kind": "gaussian"},
            "model": {"kind": "gaussian", "next_fit": "direct" if sampler == "exact" else sampler},
            "loop": {"generations": generations, "samples": m, "heldout": 100},
            "metrics": ["variance", "mean", "w2_sq"],
        }
    )
    root = Path(tempfile.mkdtemp(dir=workdir))
    store = TimedStore(root)
    if files:  # a unit folder holding segments/ goes on in the layout of file per generation
        (store.unit_dir(0, 0) / "segments").mkdir(parents=True)
    # Generation 0 fits the real pool (drawn once per run); time generations 1..G-1 only, as steady state.
    marks = []
    run_unit(cfg, Unit(0, 0, replicates), store, lambda g: marks.append((time.perf_counter(), store.seconds)))
    shutil.rmtree(root)
    (t0, io0), (t1, io1) = marks[0], marks[-1]
    return replicates * (generations - 1) / (t1 - t0), (io1 - io0) / (t1 - t0)


def bench_paths(replicates: int, generations: int, workdir: Path, repeats: int, sizes: list[int]) -> None:
    """Best of ``repeats`` interleaved measurements of each rate (the machine may be shared: best is least
    disturbed)."""
    print(
        f"replace loop, 1-D, R = {replicates} replicates in one unit, metrics variance, mean, w2_sq; best of {repeats}"
    )
    print("path/files: the earlier store (a segment file and a state checkpoint renamed into place per generation)")
    print(f"{'M':>6} {'path':>13} {'rep-gen/s':>12} {'RNG limit':>12} {'limit/ach.':>10} {'store I/O':>10}")
    for m in sizes:
        gens = max(5, min(generations, int(1e8 / (replicates * m))))  # keep each case to a few seconds
        limit, rates = (
            0.0,
            {"samples": (0.0, 0.0), "samples/files": (0.0, 0.0), "exact": (0.0, 0.0), "exact/files": (0.0, 0.0)},
        )
        for _ in range(repeats):
            limit = max(limit, normal_rate(replicates, m, max(3, gens // 4)) / m)
            for case in rates:
                sampler = case.split("/")[0]
                got = engine_rate(
                    sampler, replicates, m, gens if sampler == "samples" else generations, workdir, "/" in case
                )
                rates[case] = max(rates[case], got)
        for sampler, (rate, io) in rates.items():
            print(f"{m:>6} {sampler:>13} {rate:>12,.0f} {limit:>12,.0f} {limit / rate:>10.2f} {io:>9.0%}")


def bench_preset(preset: str, workdir: Path, overrides: list[str], files: bool = False) -> float:
    """Seconds for the whole run (and peak RSS of this process so far). ``files``: every unit in the earlier store
    layout (a metrics segment file and a state checkpoint renamed into place per generation)."""
    from modelcollapse.engine.runner import run_config

    out = Path(tempfile.mkdtemp(dir=workdir)) / preset
    save = RunStore.save_generation
    if files:

        def save_in_files(self, arm, shard, *args, **kwargs):
            (self.unit_dir(arm, shard) / "segments").mkdir(parents=True, exist_ok=True)
            return save(self, arm, shard, *args, **kwargs)

        RunStore.save_generation = save_in_files
    try:
        start = time.perf_counter()
        _, runs = run_config(preset, out, overrides, resume=False, quiet=True)
        seconds = time.perf_counter() - start
    finally:
        RunStore.save_generation = save
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    layout = "file per generation" if files else "journal"
    print(
        f"{preset} {' '.join(overrides)} ({layout}): {seconds:.1f} s, status {runs[0][1]['status']}, "
        f"peak RSS so far {peak:.0f} MiB"
    )
    shutil.rmtree(out.parent)
    return seconds


def bench_io(replicates: int, workdir: Path, generations: int = 200) -> None:
    """Milliseconds per ``save_generation`` call for a 1-D Gaussian unit: the append-only journal (metrics and state
    records appended) against the earlier layout (a metrics segment file and a state checkpoint renamed into place),
    interleaved, best of 3."""
    rng = np.random.default_rng(0)
    metrics = {k: rng.random(replicates) for k in ("variance", "mean", "w2_sq", "train_real", "train_synthetic")}
    state = {
        "mean_": rng.random((replicates, 1)),
        "cov_": rng.random((replicates, 1, 1)),
        "degenerate_": np.zeros(replicates, bool),
    }
    best = {"journal": np.inf, "files": np.inf}
    for _ in range(3):
        for layout in best:
            store = RunStore(Path(tempfile.mkdtemp(dir=workdir)))
            if layout == "files":
                (store.unit_dir(0, 0) / "segments").mkdir(parents=True)
            start = time.perf_counter()
            for g in range(generations):
                store.save_generation(0, 0, g, metrics, state, None)
            best[layout] = min(best[layout], (time.perf_counter() - start) / generations)
            shutil.rmtree(store.root)
    print(
        f"save_generation, R = {replicates}, best of 3 x {generations} generations: "
        f"journal {best['journal'] * 1e3:.3f} ms, file per generation {best['files'] * 1e3:.3f} ms "
        f"per generation per unit ({best['files'] / best['journal']:.1f}x)"
    )


def bench_nll(replicates: int, generations: int, workdir: Path, repeats: int) -> None:
    """The exact path (``model.next_fit: direct``) with and without ``nll_real`` (2,000 held-out records), and
    ``nll_real`` through the family's closed form (``mean_log_prob``: held-out mean and scatter) against the plain
    per-record route (``log_prob(x).mean(1)``), interleaved, best of ``repeats``."""
    from modelcollapse.plugins.models.gaussian import Gaussian

    def seconds(metrics: list[str], plain: bool) -> float:
        cfg = validate(
            {
                "replicates": replicates,
                "shard_size": replicates,
                "data": {"kind": "gaussian"},
                "model": {"kind": "gaussian", "next_fit": "direct"},
                "loop": {"generations": generations, "samples": 100},
                "metrics": metrics,
            }
        )
        root = Path(tempfile.mkdtemp(dir=workdir))
        saved = Gaussian.mean_log_prob
        if plain:
            Gaussian.mean_log_prob = None  # nll_real falls back to log_prob(x).mean(1)
        try:
            start = time.perf_counter()
            run_unit(cfg, Unit(0, 0, replicates), RunStore(root))
            return time.perf_counter() - start
        finally:
            Gaussian.mean_log_prob = saved
            shutil.rmtree(root)

    base = ["variance", "mean", "w2_sq"]
    cases = {
        "without nll_real": (base, False),
        "nll_real, closed form": (base + ["nll_real"], False),
        "nll_real, per record (plain)": (base + ["nll_real"], True),
    }
    best = {name: np.inf for name in cases}
    for _ in range(repeats):
        for name, (metrics, plain) in cases.items():
            best[name] = min(best[name], seconds(metrics, plain))
    print(f"exact path, R = {replicates}, G = {generations}, 2,000 held-out records; best of {repeats}")
    for name, s in best.items():
        print(f"  {name:30s} {s:7.2f} s  ({s / best['without nll_real']:.2f}x the run without nll_real)")
    print(
        "  closed form vs per record: "
        f"{best['nll_real, per record (plain)'] / best['nll_real, closed form']:.1f}x faster"
    )


def bench_units(workdir: Path, workers: int) -> None:
    """Units per second for 16 small units (16 shards of 50 replicates, 20 generations), in process, pool, Ray."""
    from modelcollapse.engine.executors import ExecutorSpec
    from modelcollapse.engine.runner import execute

    raw = {
        "replicates": 800,
        "shard_size": 50,
        "data": {"kind": "gaussian"},
        "model": {"kind": "gaussian"},
        "loop": {"generations": 20, "samples": 200},
        "metrics": ["variance", "w2_sq"],
    }
    for spec in (ExecutorSpec(), ExecutorSpec(workers=workers), ExecutorSpec(kind="ray", workers=workers)):
        out = Path(tempfile.mkdtemp(dir=workdir)) / "u"
        if spec.kind == "ray":  # start Ray outside the timing: a sweep pays it once
            from modelcollapse.engine.executors import connect_ray

            connect_ray(spec)
        start = time.perf_counter()
        execute(validate(raw), out, quiet=True, executor=spec)
        seconds = time.perf_counter() - start
        print(f"{spec.kind:>5} workers={spec.workers or 1}: 16 units in {seconds:.2f} s = {16 / seconds:.2f} units/s")
        shutil.rmtree(out.parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000], help="values of M")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long", action="store_true", help="gaussian-long at full scale (exact where valid)")
    parser.add_argument("--preset", help="run a preset at full scale and print seconds and peak RSS")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--units", action="store_true", help="units/s: in process, process pool, Ray")
    parser.add_argument("--io", action="store_true", help="milliseconds per persisted generation")
    parser.add_argument("--compare", action="store_true", help="--long/--preset: also run the earlier store layout")
    parser.add_argument("--nll", action="store_true", help="exact path: nll_real closed form vs per record")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"numpy {np.__version__}, load average {os.getloadavg()[0]:.1f}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-", dir=args.workdir))
    try:
        if args.long or args.preset:
            name = "gaussian-long" if args.long else args.preset
            journal = bench_preset(name, workdir, args.overrides)
            if args.compare:
                files = bench_preset(name, workdir, args.overrides, files=True)
                print(f"journal vs file per generation: {files / journal:.2f}x faster")
        elif args.nll:
            bench_nll(args.replicates, args.generations, workdir, args.repeats)
        elif args.io:
            bench_io(args.replicates, workdir)
        elif args.units:
            bench_units(workdir, args.workers)
        else:
            bench_paths(args.replicates, args.generations, workdir, args.repeats, args.sizes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
