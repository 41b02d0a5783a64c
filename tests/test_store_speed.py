"""The toy paths' whole command (issue 22 item 7): a ``--quiet --no-report`` run imports neither pandas nor
scipy.stats, and the cheap routes that replaced them give scipy's and pyarrow's results bit for bit."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml
from scipy import stats

from modelcollapse.plugins.data.gaussian import GaussianSource
from modelcollapse.plugins.models.gaussian import TINY, Gaussian
from modelcollapse.rundir.table import numeric_array, string_array

RUN = """
import sys
from modelcollapse.cli import main
try:
    main(["run", sys.argv[1], "--out", sys.argv[2], "--quiet", "--no-report"])
except SystemExit as stop:
    assert not stop.code, stop.code
print(sorted(m for m in ("pandas", "scipy.stats") if m in sys.modules))
"""


@pytest.mark.parametrize("next_fit", ["samples", "direct"])
def test_a_quiet_toy_run_imports_neither_pandas_nor_scipy_stats(tmp_path: Path, next_fit: str):
    config = tmp_path / "toy.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "toy",
                "seed": 0,
                "replicates": 8,
                "data": {"kind": "gaussian", "mean": 0.0, "std": 1.0, "dim": 1},
                "model": {"kind": "gaussian", "next_fit": next_fit},
                "loop": {"generations": 3, "samples": 20, "regime": "replace"},
            }
        )
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(config), str(tmp_path / "out")], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out" / "metrics.parquet").exists()  # the run did run, with tail_mass among its metrics


def bits(a: np.ndarray) -> np.ndarray:
    """The bit patterns of float64s, every NaN alike (so NaN equals NaN)."""
    a = np.asarray(a, dtype=float)
    return np.where(np.isnan(a), -1, a.view(np.int64))


def test_gaussian_cdf_is_scipy_norm_cdf_bit_for_bit():
    rng = np.random.default_rng(7)
    model, r = Gaussian(), 50_000
    model.mean_ = rng.normal(size=(r, 1)) * rng.choice([1e-300, 1e-5, 1.0, 1e5, 1e300], size=(r, 1))
    model.cov_ = np.abs(rng.normal(size=(r, 1, 1))) * rng.choice([0, 1e-310, 1e-300, 1e-20, 1, 1e300], size=(r, 1, 1))
    model.mean_[:4, 0] = [np.nan, np.inf, -np.inf, 0.0]
    model.cov_[4:8, 0, 0] = [np.nan, np.inf, 0.0, -1.0]  # a NaN, infinite, zero and negative variance
    with np.errstate(all="ignore"):
        for x in (-3.090232306167813, 3.090232306167813, 0.0, 1e300, np.inf, -np.inf, np.nan):
            scale = np.sqrt(np.clip(model.cov_[:, 0, 0], TINY, None))
            expected = stats.norm.cdf(np.array(x), model.mean_[:, 0], scale)
            assert np.array_equal(bits(model.cdf(np.array(x))), bits(expected)), x


@pytest.mark.parametrize("mean, std", [(0.0, 1.0), (3.5, 0.2), (-1e5, 7.0)])
def test_gaussian_source_quantile_is_scipy_norm_ppf_bit_for_bit(mean: float, std: float):
    source = GaussianSource(mean=mean, std=std)
    for q in (0.001, 0.999, 1e-12, 1 - 1e-12, 0.5, 0.0, 1.0):
        expected = float(stats.norm.ppf(q, mean, std))
        assert bits(source.quantile(q)) == bits(expected), q


@pytest.mark.parametrize(
    "values", [np.arange(5, dtype=np.int64), np.arange(3, dtype=np.int32), np.array([0.5, -0.0, np.nan]), np.zeros(0)]
)
def test_numeric_array_is_pa_array(values: np.ndarray):
    made, expected = numeric_array(values), pa.array(values)
    assert made.type == expected.type and made.null_count == expected.null_count == 0
    assert made.to_numpy().tobytes() == expected.to_numpy().tobytes()  # bit for bit, NaN too


@pytest.mark.parametrize("labels", [["a", "bé", ""], [], ["replace-n32", "σ²"]])
def test_string_array_is_pa_array(labels: list[str]):
    assert string_array(labels).equals(pa.array(labels, pa.string()))
