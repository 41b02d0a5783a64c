"""Engine throughput for the Gaussian and categorical families against the raw speed of numpy's RNG.

    PYTHONPATH=src python benchmarks/bench_throughput.py

For each family, replicate-generations per second through ``runner.execute`` (fit, sample, one metric, the run
directory written every generation), and the time numpy's Generator alone needs to draw the same numbers (normals,
or one multinomial per replicate-generation). The ratio engine / RNG says how close the loop is to the floor.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

CASES = {
    "gaussian (1-D, M=100)": {
        "data": {"kind": "gaussian", "dim": 1},
        "model": {"kind": "gaussian"},
        "metrics": ["variance"],
    },
    "categorical (K=10, N=100)": {
        "data": {"kind": "categorical", "categories": 10},
        "model": {"kind": "categorical"},
        "metrics": ["entropy"],
    },
}


def engine(spec: dict, replicates: int, generations: int, samples: int) -> float:
    from modelcollapse.engine.plan import validate
    from modelcollapse.engine.runner import execute

    raw = {
        "name": "bench",
        "seed": 0,
        "replicates": replicates,
        "shard_size": replicates,
        **spec,
        "loop": {"generations": generations, "samples": samples, "regime": "replace", "heldout": 100},
    }
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        execute(validate(raw), Path(tmp) / "run", quiet=True)
        return time.perf_counter() - start


def raw_rng(name: str, replicates: int, generations: int, samples: int) -> float:
    rng = np.random.default_rng(0)
    p = np.full((replicates, 10), 0.1)
    start = time.perf_counter()
    for _ in range(generations):
        if name.startswith("gaussian"):
            rng.standard_normal((replicates, samples, 1))
        else:
            rng.multinomial(samples, p)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--generations", type=int, default=200)
    ap.add_argument("--samples", type=int, default=100)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, python {platform.python_version()}")
    print(
        "| family | replicates x generations | engine s | engine rep-gen/s | RNG-only s | RNG-only rep-gen/s "
        "| engine / RNG time |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, spec in CASES.items():
        eng = engine(spec, args.replicates, args.generations, args.samples)
        rng = raw_rng(name, args.replicates, args.generations, args.samples)
        work = args.replicates * args.generations
        print(
            f"| {name} | {args.replicates} x {args.generations} | {eng:.2f} | {work / eng:,.0f} | {rng:.3f} "
            f"| {work / rng:,.0f} | {eng / rng:.0f}x |"
        )


if __name__ == "__main__":
    main()
