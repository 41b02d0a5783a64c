"""The verifier-digits figure and table: recall, class entropy, the verifier's kept share and its confidence in the
raw generations, per arm and generation, from a run directory's ``metrics.parquet``.

    modelcollapse run verifier-digits --out runs/verifier-digits --workers 2
    PYTHONPATH=src python benchmarks/plot_verifier_digits.py runs/verifier-digits docs/img/verifier-digits.png

Prints one row per (arm, metric): the replicate mean at each generation; then, per arm and replicate, the classes the
metrics' classifier predicts for the last generation's 64 kept images (the report's sample grid), and the share of
real test digits of each class that the verifier (default settings) keeps at 0.5 and 0.9: where the loop ends, next
to what the verifier likes. The figure draws the mean per arm, with the replicates' range shaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

PANELS = {
    "recall": "recall (k-NN, instrument features)",
    "class_entropy": "class entropy (nats; log 10 = 2.30)",
    "verifier_kept_share": "verifier's kept share of draws",
    "verifier_confidence": "verifier's mean confidence, all draws",
}


def read(run: Path) -> dict[tuple[str, str], np.ndarray]:
    """``{(arm, metric): (G, R) values}`` from ``run/metrics.parquet``."""
    import pyarrow.parquet as pq

    t = pq.read_table(
        run / "metrics.parquet", columns=["arm", "replicate", "generation", "metric", "value"]
    ).to_pydict()
    cells: dict[tuple[str, str], dict[tuple[int, int], float]] = {}
    for arm, rep, gen, metric, value in zip(t["arm"], t["replicate"], t["generation"], t["metric"], t["value"]):
        cells.setdefault((str(arm), str(metric)), {})[(int(gen), int(rep))] = float(value)
    out = {}
    for key, values in cells.items():
        grid = np.full((1 + max(g for g, _ in values), 1 + max(r for _, r in values)), np.nan)
        for (g, r), v in values.items():
            grid[g, r] = v
        out[key] = grid
    return out


def print_classes(run: Path, arms: list[str]) -> None:
    """The last generation's kept images by predicted class, per arm and replicate, and the verifier's acceptance of
    real test digits by class."""
    import torch

    from modelcollapse.config import load_raw
    from modelcollapse.plugins.data import SOURCES
    from modelcollapse.plugins.filters import class_confidence, verifier_net
    from modelcollapse.plugins.metrics import Context
    from modelcollapse.plugins.metrics.images import classifier

    source = SOURCES.build(load_raw(str(run / "config.yaml"))["data"], "data")
    instrument = classifier(Context(None, np.empty((1, 0)), source, source.heldout(), 0, None))
    for a, arm in enumerate(arms):
        last = max(run.glob(f"arrays/arm{a:03d}-shard000-gen*.npz"))
        with np.load(last) as arrays, torch.no_grad():
            for r, grid in enumerate(arrays["sample_grid"].astype(np.float32)):
                counts = np.bincount(instrument(torch.as_tensor(grid)).argmax(1).numpy(), minlength=10)
                print(f"last kept grid  {arm:14s} replicate {r}: classes 0-9 {counts.tolist()}")
    test, labels = np.asarray(source.heldout(), np.float32), source.class_labels("test")
    conf = class_confidence(verifier_net(source, 128, None, 1), test[None])[0]
    for threshold in (0.5, 0.9):
        share = [round(float((conf[labels == c] >= threshold).mean()), 2) for c in range(10)]
        print(f"verifier keeps real test digits at {threshold}: classes 0-9 {share}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a verifier-digits run directory")
    parser.add_argument("png", type=Path, nargs="?", help="where to write the figure (default: only print)")
    args = parser.parse_args(argv)
    table = read(args.run)
    arms = list(dict.fromkeys(arm for arm, _ in table))
    for metric in [*PANELS, "frechet", "precision"]:
        for arm in arms:
            if (arm, metric) in table:
                row = " ".join(f"{v:6.3f}" for v in np.nanmean(table[arm, metric], axis=1))
                print(f"{metric:22s} {arm:14s} {row}")
    print_classes(args.run, arms)
    if args.png is None:
        return 0
    from modelcollapse.analysis.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.0 * len(PANELS), 3.4), dpi=110)
    for ax, (metric, title) in zip(axes, PANELS.items()):
        for i, arm in enumerate(arms):
            grid = table.get((arm, metric))
            if grid is None:
                continue
            g = np.arange(len(grid))
            ax.plot(g, np.nanmean(grid, 1), color=f"C{i}", lw=1.6, marker="o", ms=3, label=arm)
            ax.fill_between(g, np.nanmin(grid, 1), np.nanmax(grid, 1), color=f"C{i}", alpha=0.2, lw=0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.png)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
