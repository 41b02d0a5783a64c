"""Images ground truth: ``modelcollapse audit`` of every generation of a ``vae-digits`` run against the real digits.

    PYTHONPATH=src python benchmarks/bench_audit_vae.py                 # the preset (6 generations), every generation
    PYTHONPATH=src python benchmarks/bench_audit_vae.py --set loop.generations=10

The run: the ``vae-digits`` preset (an MLP VAE on the 1,498 training digits, replace, decoded means), ``--set``
overrides applied, ``model.threads=1``. The audit: reference = all 1,797 real 8×8 digits (``load_digits().images /
16``); candidates = ``RUN:generation=g:samples=1000`` for every generation g (1,000 fresh draws from generation g's
fit, regenerated bit for bit from the run's checkpoints; generations between the first and the last by replaying the
run), 20 repeats. Prints per generation the fidelity and diversity indicators with their verdicts, and the run's own
``class_entropy`` metric (on the run's 1,498 samples) beside the audit's (on 1,000 other draws of the same fit).
Draws ``docs/img/audit-vae-digits.png``: recall, coverage and class entropy by generation, with the null bands.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

SHOWN = ("recall", "coverage", "class_entropy", "precision", "density", "frechet", "vendi", "classifier_auc")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--figure", default="docs/img/audit-vae-digits.png", help='PNG to draw ("" for none)')
    a = p.parse_args()

    from sklearn.datasets import load_digits

    from modelcollapse.audit import audit
    from modelcollapse.config import apply_overrides, load_raw
    from modelcollapse.engine.plan import validate
    from modelcollapse.engine.runner import execute
    from modelcollapse.rundir.store import RunStore

    tmp = Path(tempfile.mkdtemp())
    raw = apply_overrides(load_raw("vae-digits"), ["model.threads=1", *a.overrides])
    start = time.perf_counter()
    execute(validate(raw), tmp / "run", quiet=True)
    print(f"run: {time.perf_counter() - start:.0f} s", flush=True)
    generations = raw["loop"]["generations"]
    np.save(tmp / "real.npy", load_digits().images / 16.0)
    start = time.perf_counter()
    result = audit(
        str(tmp / "real.npy"),
        [f"{tmp / 'run'}:generation={g}:samples={a.samples}" for g in range(generations)],
        repeats=a.repeats,
    )
    print(f"audit of {generations} generations: {time.perf_counter() - start:.0f} s", flush=True)
    metrics = RunStore(tmp / "run").read_metrics().to_pydict()
    run_entropy = {
        g: v for m, g, v in zip(metrics["metric"], metrics["generation"], metrics["value"]) if m == "class_entropy"
    }
    print("| generation | " + " | ".join(SHOWN) + " | run's class_entropy | verdict |")
    print("| --- " * (len(SHOWN) + 3) + "|")
    for g, rows in enumerate(result.rows):
        by = {r.name: r for r in rows}
        cells = [f"{by[n].value:.3g} ({by[n].verdict})" for n in SHOWN]
        print(f"| {g} | " + " | ".join(cells) + f" | {run_entropy.get(g, float('nan')):.3f} | {result.verdicts[g]} |")
    null = {n: next(r for r in result.rows[0] if r.name == n).null for n in SHOWN}
    print("null bands: " + ", ".join(f"{n} [{lo:.3g}, {hi:.3g}]" for n, (lo, hi) in null.items()))
    if a.figure:
        figure(result, Path(a.figure))


def figure(result, path: Path) -> None:
    from modelcollapse.analysis.plots import png_bytes, pyplot
    from modelcollapse.rundir.atomic import atomic_write

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), dpi=110)
    for ax, name in zip(axes, ("recall", "coverage", "class_entropy")):
        rows = [next(r for r in rs if r.name == name) for rs in result.rows]
        g = np.arange(len(rows))
        ax.errorbar(
            g,
            [r.value for r in rows],
            yerr=np.abs(np.array([r.ci for r in rows]).T - [r.value for r in rows]),
            marker="o",
            capsize=3,
            label="generation's samples (95% interval)",
        )
        lo, hi = np.mean([r.null for r in rows], axis=0)
        ax.axhspan(lo, hi, color="tab:green", alpha=0.15, label="real-vs-real null band")
        ax.set_xlabel("generation"), ax.set_title(name, fontsize=10)
    axes[0].legend(fontsize=7)
    fig.suptitle("vae-digits: audit of each generation against the 1,797 real digits", fontsize=10)
    fig.tight_layout()
    atomic_write(path, png_bytes(fig))
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
