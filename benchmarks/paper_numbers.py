"""Print the figures the README's results table quotes, from full-scale run directories.

    python benchmarks/paper_numbers.py RUNS_DIR      # RUNS_DIR/<preset>/metrics.parquet for each preset run

Reads only the run directories (never re-runs). Means are across replicates, with their standard errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from modelcollapse.rundir.store import RunStore


def grid(run: Path, metric: str) -> dict[str, np.ndarray]:
    """{arm: (G, R) array} of one metric, read with a row filter (full-scale runs hold 10⁷–10⁸ rows)."""
    table = RunStore(run).read_metrics(metrics=[metric])
    arm = np.array(table["arm"].to_pylist(), dtype=object)
    gen, rep, val = (table[c].to_numpy() for c in ("generation", "replicate", "value"))
    out = {}
    for a in dict.fromkeys(arm):
        s = arm == a
        g = np.full((gen[s].max() + 1, rep[s].max() + 1), np.nan)
        g[gen[s], rep[s]] = val[s]
        out[a] = g
    return out


def mean_se(x: np.ndarray) -> str:
    x = x[np.isfinite(x)]
    return f"{x.mean():.4g} ± {x.std(ddof=1) / np.sqrt(len(x)):.2g} (n={len(x)})"


def gaussian_replace(run: Path) -> None:
    (w2,) = grid(run, "w2_sq").values()
    (var,) = grid(run, "variance").values()
    (mean,) = grid(run, "mean").values()
    print(f"  E[W2²] at the 11th fit: {mean_se(w2[10])}   (published 0.165)")
    print(f"  pooled Var(X) of the 11th fit's training data: {var[9].mean() + mean[9].var():.4f}   (published 1.10)")


def gaussian_multivariate(run: Path) -> None:
    for arm, g in grid(run, "trace_ratio").items():
        print(f"  {arm:18s} tr Σ̂/tr Σ₀ at t={len(g)}: mean {mean_se(g[-1])}, median {np.median(g[-1]):.4g}")


def regression_regimes(run: Path) -> None:
    for arm, g in grid(run, "test_mse").items():
        print(f"  {arm:36s} test MSE at t={len(g)}: {mean_se(g[-1])}")


def categorical_absorption(run: Path) -> None:
    for arm, g in grid(run, "support_size").items():
        absorbed = g == 1
        ever = absorbed.any(0)
        fits = absorbed.argmax(0)[ever] + 1
        line = f"mean fits to absorption {mean_se(fits.astype(float))}" if ever.any() else "none absorbed"
        print(
            f"  {arm:16s} absorbed {ever.mean():.3f} of replicates within {len(g)} fits; {line}; "
            f"final support {np.nanmin(g[-1]):.0f}–{np.nanmax(g[-1]):.0f}"
        )


def gmm_paper(run: Path) -> None:
    (std,) = grid(run, "component_std").values()
    print(
        f"  component_std: generation 0 {mean_se(std[0])}, generation {len(std) - 1} {mean_se(std[-1])}, "
        f"median {np.median(std[-1]):.4g}"
    )
    for metric in ("gmm_l2_to_gen0", "gmm_l2_sq_to_gen0"):
        (d,) = grid(run, metric).values()
        print(f"  {metric} at generation {len(d) - 1}: median {np.median(d[-1]):.4g}, mean {mean_se(d[-1])}")


def gaussian_long(run: Path) -> None:
    for arm, g in grid(run, "variance").items():
        print(f"  {arm:18s} median σ̂ after {len(g)} fits: {np.median(np.sqrt(g[-1])):.3g}")


PRESETS = {
    "gaussian-replace": gaussian_replace,
    "gaussian-multivariate": gaussian_multivariate,
    "regression-regimes": regression_regimes,
    "categorical-absorption": categorical_absorption,
    "gmm-paper": gmm_paper,
    "gaussian-long": gaussian_long,
}

if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs")
    for name, show in PRESETS.items():
        if (root / name / "metrics.parquet").exists():
            print(name)
            show(root / name)
