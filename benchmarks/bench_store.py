"""Whole-command ratios of the toy paths (issue 22, item 7: "the store at the speed of its disk").

- **samples path**: ``modelcollapse run`` of a 1-D Gaussian, replace, M = 100, 1,000 replicates x 1,000 generations
  in one unit (default metrics, ``model.next_fit: samples``), against numpy's own normal draws of the same numbers (a
  ``python`` process drawing 1,000 ``(1000, 100, 1)`` arrays of standard normals): target within 2x;
- **exact path**: the same run with ``model.next_fit: direct`` and its default metrics, against the same with
  ``metrics: [variance]`` alone: target within 1.3x.

Each case is a whole command in a fresh process (interpreter start, imports, the run, its consolidation into
metrics.parquet; no report), pinned to one core, one BLAS thread. The cases run interleaved ``--repeats`` times; each
ratio is median against median, of wall seconds and of CPU seconds (user + system of the child: on a shared, loaded
machine the CPU seconds are the steadier measure).

The numpy case is the issue's baseline, kept as it is, though not like for like: it keeps nothing, while the samples
path also fits, measures, and writes its 9 M numbers twice (journal, then metrics.parquet), each with a sha256.

Usage (from the repository root)::

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_store.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

NUMPY = (
    "import numpy as np\nrng = np.random.default_rng(0)\nfor _ in range({G}):\n    rng.standard_normal(({R}, {M}, 1))\n"
)


def config(replicates: int, generations: int, m: int, sampler: str, metrics: list[str] | None) -> dict:
    raw = {
        "name": "bench",
        "seed": 0,
        "replicates": replicates,
        "shard_size": replicates,
        "data": {"kind": "gaussian", "mean": 0.0, "std": 1.0, "dim": 1},
        "model": {"kind": "gaussian", "variance": "unbiased", "next_fit": sampler},
        "loop": {"generations": generations, "samples": m, "regime": "replace"},
    }
    return {**raw, "metrics": metrics} if metrics else raw


def timed(command: list[str], cpu: int | None, src: str | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of ``command`` run to completion (exit 0 required), with ``src``
    first on ``PYTHONPATH`` when given."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, preexec_fn=pin, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--generations", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=100, help="M")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cpu", type=int, default=0, help="the core to pin each command to (-1: none)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument(
        "--compare",
        metavar="SRC",
        help="also run the modelcollapse cases with SRC (another checkout's "
        "src/) first on PYTHONPATH, interleaved, as 'SRC: case'",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.workdir))
    R, G, M = args.replicates, args.generations, args.samples
    cases = {
        "numpy draws": None,
        "samples path": config(R, G, M, "samples", None),
        "exact, default metrics": config(R, G, M, "direct", None),
        "exact, variance only": config(R, G, M, "direct", ["variance"]),
    }
    commands = {}
    for name, raw in cases.items():
        if raw is None:
            commands[name] = [sys.executable, "-c", NUMPY.format(R=R, M=M, G=G)]
        else:
            path = work / f"{name.split(',')[0].replace(' ', '-')}-{len(commands)}.yaml"
            path.write_text(yaml.safe_dump(raw))
            commands[name] = [
                sys.executable,
                "-m",
                "modelcollapse.cli",
                "run",
                str(path),
                "--out",
                str(work / "out"),
                "--quiet",
                "--no-report",
            ]
    cpu = None if args.cpu < 0 else args.cpu
    sources = {name: None for name in commands}
    if args.compare:
        for name in list(cases)[1:]:
            commands[f"{args.compare}: {name}"], sources[f"{args.compare}: {name}"] = commands[name], args.compare
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    print(
        f"R = {R}, G = {G}, M = {M}; {args.repeats} interleaved repeats, pinned to core {cpu}; "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    try:
        for _ in range(args.repeats):
            for name, command in commands.items():
                shutil.rmtree(work / "out", ignore_errors=True)
                times[name].append(timed(command, cpu, sources[name]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for name, t in times.items()}
    for name, (wall, cpu_s) in med.items():
        print(f"  {name:24s} median wall {wall:7.2f} s   median CPU {cpu_s:7.2f} s")
    for prefix in ("", f"{args.compare}: ") if args.compare else ("",):
        for label, a, b in (
            ("samples path / numpy draws", "samples path", "numpy draws"),
            ("exact default / variance only", "exact, default metrics", "exact, variance only"),
        ):
            a, b = prefix + a, (b if b == "numpy draws" else prefix + b)
            print(f"  {prefix}{label:32s} wall {med[a][0] / med[b][0]:.2f}x   CPU {med[a][1] / med[b][1]:.2f}x")
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
