"""Reading a run's metric rows a batch at a time, split by (arm, metric): what the report's curves and the scaling
view's final values are both reduced from."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..rundir.store import RunStore
from ..rundir.table import codes_column


def parquet_batches(path: Path):
    """The metric rows of a finished run's ``metrics.parquet`` (arm, metric, generation, value) as record batches."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).iter_batches(batch_size=1 << 21, columns=["arm", "metric", "generation", "value"])


def metric_batches(run: RunStore | Path):
    """The run's metric rows as record batches: from ``metrics.parquet`` once the run is finished, else from its
    segments."""
    store = RunStore.of(run)
    if store.table_path.exists():
        return parquet_batches(store.table_path)
    return store.metric_batches(*store.segment_layout())


def pair_rows(batches):
    """Yield ``((arm, metric), generations (k,), values (k,))`` for the rows of each (arm, metric) pair in each
    batch of metric rows (a pair spread over several batches is yielded once per batch)."""
    for batch in batches:
        if batch.num_rows == 0:
            continue
        arm, arms = codes_column(batch, "arm")
        metric, metrics = codes_column(batch, "metric")
        gen, value = batch["generation"].to_numpy(), batch["value"].to_numpy(zero_copy_only=False)
        key = arm * len(metrics) + metric
        order = np.argsort(key, kind="stable")
        for rows in np.split(order, np.flatnonzero(np.diff(key[order])) + 1):
            yield (arms[arm[rows[0]]], metrics[metric[rows[0]]]), gen[rows], value[rows]
