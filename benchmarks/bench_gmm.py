"""Batched GMM loop vs a per-replicate scikit-learn loop, at equal statistics (same N, k, full covariances).

    PYTHONPATH=src python benchmarks/bench_gmm.py                       # engine at full gmm-paper scale (100 x 2050)
    PYTHONPATH=src python benchmarks/bench_gmm.py --generations 200     # engine at a smaller scale

Ours: the real engine path (``runner.execute`` on the gmm-paper preset: fit, sample, every preset metric, the run
directory written each generation), plus the family alone (fit + sample per generation). The plain approach:
for each replicate, for each generation, ``GaussianMixture(2, covariance_type="full").fit`` then ``sample(1000)``
with a fresh random_state; timed on a subset (sklearn at full scale would take about an hour). Both are reported as
replicate-generations per second. The CPU seconds of this process are printed too: on a shared machine the wall
clock also counts time spent waiting for a core.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def engine(replicates: int, generations: int) -> tuple[float, dict]:
    from modelcollapse.config import load_raw, validate
    from modelcollapse.runner import apply_overrides, execute

    raw = apply_overrides(load_raw("gmm-paper"), [f"replicates={replicates}", f"shard_size={replicates}", f"loop.generations={generations}"])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        execute(validate(raw), Path(tmp) / "run", quiet=True)
        seconds = time.perf_counter() - start
        from modelcollapse.store import RunStore

        t = RunStore(Path(tmp) / "run").read_metrics()
        metric, gen, value = (np.array(t[c].to_pylist()) for c in ("metric", "generation", "value"))
        sel = metric == "component_std"
        std = {g: float(value[sel & (gen == g)].mean()) for g in (0, generations - 1)}
    return seconds, std


def family(replicates: int, generations: int, n: int = 1000) -> float:
    from modelcollapse.models.gmm import GMM

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=100)
    ap.add_argument("--generations", type=int, default=2050)
    ap.add_argument("--sk-replicates", type=int, default=10)
    ap.add_argument("--sk-generations", type=int, default=20)
    args = ap.parse_args()

    sk = sklearn_loop(args.sk_replicates, args.sk_generations)
    sk_rate = args.sk_replicates * args.sk_generations / sk
    fam_gens = min(args.generations, 200)
    fam = family(args.replicates, fam_gens)
    fam_rate = args.replicates * fam_gens / fam
    cpu = time.process_time()
    seconds, std = engine(args.replicates, args.generations)
    cpu = time.process_time() - cpu
    rate = args.replicates * args.generations / seconds
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, python {platform.python_version()}")
    print(f"sklearn loop: {args.sk_replicates} x {args.sk_generations} in {sk:.1f} s")
    print(f"GMM family fit+sample: {args.replicates} x {fam_gens} in {fam:.1f} s")
    print(f"engine (gmm-paper, all preset metrics, run directory): {args.replicates} x {args.generations} in {seconds:.1f} s; "
          f"({cpu:.1f} CPU s); component_std gen 0 = {std[0]:.3f}, gen {args.generations - 1} = {std[args.generations - 1]:.4f}")
    print()
    print("| path | scale (replicates x generations) | seconds | replicate-generations/s | vs sklearn loop |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| sklearn GaussianMixture, per-replicate loop | {args.sk_replicates} x {args.sk_generations} | {sk:.1f} | {sk_rate:.1f} | 1x |")
    print(f"| GMM family, fit + sample | {args.replicates} x {fam_gens} | {fam:.1f} | {fam_rate:.0f} | {fam_rate / sk_rate:.0f}x |")
    print(f"| engine, gmm-paper preset | {args.replicates} x {args.generations} | {seconds:.1f} | {rate:.0f} | {rate / sk_rate:.0f}x |")


if __name__ == "__main__":
    main()
