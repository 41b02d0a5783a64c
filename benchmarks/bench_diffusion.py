"""The diffusion family: R replicates fitted and sampled as one batched program (stacked weights) vs a loop over R
single-replicate models, at equal statistics (the same network, steps, batch and samples per replicate).

    PYTHONPATH=src python benchmarks/bench_diffusion.py                   # mad-diffusion-2d's model, R = 4 and 8
    PYTHONPATH=src python benchmarks/bench_diffusion.py --replicates 16 --train-steps 300

Each path is timed ``--repeats`` times, the two interleaved (loop, batched, loop, ...) so a change in the machine's
load touches both alike; the ratio is loop over batched, best against best, in the same run. One torch thread. The
load average is printed before and after (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from modelcollapse.plugins.data import SOURCES
from modelcollapse.plugins.models import MODELS


def fit_and_sample(cfg: dict, x: np.ndarray, samples: int) -> float:
    """Seconds to fit ``cfg`` on ``x`` ``(R, n, 2)`` and draw ``samples`` per replicate."""
    start = time.perf_counter()
    MODELS.build(cfg, "model").fit(x, rng=np.random.default_rng(1)).sample(samples, rng=np.random.default_rng(2))
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    cfg = {
        "kind": "diffusion",
        "hidden": 128,
        "layers": 3,
        "timesteps": 100,
        "batch_size": 128,
        "train_steps": args.train_steps,
        "threads": 1,
    }
    source = SOURCES.build(
        {
            "kind": "gaussian-mixture",
            "weights": [1, 1, 1, 1],
            "means": [[-3, -3], [-3, 3], [3, -3], [3, 3]],
            "stds": [0.7] * 4,
        },
        "data",
    )
    print(f"load average before: {os.getloadavg()[0]:.2f}; train_steps {args.train_steps}, samples {args.samples}")
    print("| replicates | loop of R single fits (s) | batched (s) | ratio loop / batched |")
    print("| ---: | ---: | ---: | ---: |")
    for r in args.replicates:
        x = np.array(source.pool(r, 200, np.random.default_rng(0)))
        loop, batched = [], []
        for _ in range(args.repeats):
            loop.append(sum(fit_and_sample(cfg, x[i : i + 1], args.samples) for i in range(r)))
            batched.append(fit_and_sample(cfg, x, args.samples))
        print(f"| {r} | {min(loop):.2f} | {min(batched):.2f} | {min(loop) / min(batched):.2f} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
