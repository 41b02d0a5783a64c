import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def run_small(raw: dict, out, **kw):
    """Validate and run a raw config dict into ``out``; return the metrics as {(arm, metric): (G, R) array}."""
    from modelcollapse.engine.plan import validate
    from modelcollapse.engine.runner import execute

    execute(validate(raw), out, quiet=True, **kw)
    return metric_arrays(out)


def metric_arrays(out):
    from modelcollapse.engine.store import RunStore

    t = RunStore(out).read_metrics()
    arm = np.array(t["arm"].to_pylist(), dtype=object)
    metric = np.array(t["metric"].to_pylist(), dtype=object)
    gen, rep, val = t["generation"].to_numpy(), t["replicate"].to_numpy(), t["value"].to_numpy()
    result = {}
    for a in dict.fromkeys(arm):
        for m in dict.fromkeys(metric[arm == a]):
            sel = (arm == a) & (metric == m)
            grid = np.full((gen[sel].max() + 1, rep[sel].max() + 1), np.nan)
            grid[gen[sel], rep[sel]] = val[sel]
            result[(a, m)] = grid
    return result
