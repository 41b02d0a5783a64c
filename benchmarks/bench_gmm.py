"""Batched GMM loop vs a per-replicate scikit-learn loop, at equal statistics (same N, k, full covariances).

    PYTHONPATH=src python benchmarks/bench_gmm.py                       # engine at full gmm-paper scale (100 x 2050)
    PYTHONPATH=src python benchmarks/bench_gmm.py --generations 200     # engine at a smaller scale

Ours: the real engine path (``runner.execute`` on the gmm-paper preset: fit, sample, every preset metric, the run
directory written each generation), plus the family alone (fit + sample per generation). The plain approach:
for each replicate, for each generation, ``GaussianMixture(2, covariance_type="full").fit`` then ``sample(1000)``
with a fresh random_state; timed on a subset (sklearn at full scale would take about an hour). Both are reported as
replicate-generations per second. The CPU seconds of this process are printed too: on a shared machine the wall
clock also counts time spent waiting for a core.

Noise: every path is timed ``--repeats`` times (default 3), the paths interleaved (sklearn, family, engine, sklearn,
...) so that a change in the machine's state touches all of them alike; the ratios are given best-vs-best and
median-vs-median. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def engine(replicates: int, generations: int) -> tuple[float, dict]:
    from modelcollapse.config import apply_overrides, load_raw
    from modelcollapse.engine.plan import validate
    from modelcollapse.engine.runner import execute

    raw = apply_overrides(
        load_raw("gmm-paper"),
        [f"replicates={replicates}", f"shard_size={replicates}", f"loop.generations={generations}"],
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        execute(validate(raw), Path(tmp) / "run", quiet=True)
        seconds = time.perf_counter() - start
        from modelcollapse.rundir.store import RunStore

        t = RunStore(Path(tmp) / "run").read_metrics()
        metric, gen, value = (np.array(t[c].to_pylist()) for c in ("metric", "generation", "value"))
        sel = metric == "component_std"
        std = {g: float(value[sel & (gen == g)].mean()) for g in (0, generations - 1)}
    return seconds, std


def family(replicates: int, generations: int, n: int = 1000) -> float:
    from modelcollapse.plugins.models.gmm import GMM

    rng = np.random.default_rng(0)
    x, model = rng.standard_normal((replicates, n, 2)), GMM()
    start = time.perf_counter()
    for _ in range(generations):
        x = model.fit(x, rng=rng).sample(n, rng=rng)
    return time.perf_counter() - start


def sklearn_loop(replicates: int, generations: int, n: int = 1000) -> float:
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(replicates):
        x = rng.standard_normal((n, 2))
        for _ in range(generations):
            gm = GaussianMixture(2, covariance_type="full", random_state=int(rng.integers(2**31 - 1))).fit(x)
            gm.random_state = int(rng.integers(2**31 - 1))
            x = gm.sample(n)[0]
    return time.perf_counter() - start


def rates(seconds: list[float], work: int) -> tuple[float, float]:
    """Best and median replicate-generations per second of repeated timings of ``work`` replicate-generations."""
    return work / min(seconds), work / statistics.median(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=100)
    ap.add_argument("--generations", type=int, default=2050)
    ap.add_argument("--sk-replicates", type=int, default=10)
    ap.add_argument("--sk-generations", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each path, interleaved")
    args = ap.parse_args()

    fam_gens = min(args.generations, 200)
    load = os.getloadavg()[0]
    sk, fam, eng, cpu = [], [], [], []
    for _ in range(args.repeats):
        sk.append(sklearn_loop(args.sk_replicates, args.sk_generations))
        fam.append(family(args.replicates, fam_gens))
        start = time.process_time()
        seconds, std = engine(args.replicates, args.generations)
        eng.append(seconds)
        cpu.append(time.process_time() - start)
    sk_rate = rates(sk, args.sk_replicates * args.sk_generations)
    fam_rate = rates(fam, args.replicates * fam_gens)
    rate = rates(eng, args.replicates * args.generations)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, python {platform.python_version()}; "
        f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after; {args.repeats} interleaved repeats"
    )
    print(f"sklearn loop: {args.sk_replicates} x {args.sk_generations} in {', '.join(f'{t:.2f}' for t in sk)} s")
    print(f"GMM family fit+sample: {args.replicates} x {fam_gens} in {', '.join(f'{t:.2f}' for t in fam)} s")
    print(
        f"engine (gmm-paper, all preset metrics, run directory): {args.replicates} x {args.generations} in "
        f"{', '.join(f'{t:.1f}' for t in eng)} s ({', '.join(f'{t:.1f}' for t in cpu)} CPU s); "
        f"component_std gen 0 = {std[0]:.3f}, gen {args.generations - 1} = {std[args.generations - 1]:.4f}"
    )
    print()
    print(
        "| path | scale (replicates x generations) | best s | median s | rep-gen/s best / median "
        "| vs sklearn, best / median |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    rows = [
        ("sklearn GaussianMixture, per-replicate loop", f"{args.sk_replicates} x {args.sk_generations}", sk, sk_rate),
        ("GMM family, fit + sample", f"{args.replicates} x {fam_gens}", fam, fam_rate),
        ("engine, gmm-paper preset", f"{args.replicates} x {args.generations}", eng, rate),
    ]
    for name, scale, times, (best, median) in rows:
        print(
            f"| {name} | {scale} | {min(times):.2f} | {statistics.median(times):.2f} | {best:,.0f} / {median:,.0f} | "
            f"{best / sk_rate[0]:.1f}x / {median / sk_rate[1]:.1f}x |"
        )


if __name__ == "__main__":
    main()
