"""mad-diffusion-mnist: its documented CPU smoke (the ``--set`` list in the preset's description) runs through the
CLI in seconds and records MAD's contract (four arms; precision, recall, Fréchet and the memorisation share at every
generation); the smoke is the same list reference_values.py and gpu_rows.py --tiny use."""

import re
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from conftest import needs
from modelcollapse.cli import main
from modelcollapse.config import load_raw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import reference_values  # noqa: E402

ARMS = ["fresh-data", "fully-synthetic", "fully-synthetic-biased", "synthetic-augmentation"]


def documented_smoke(preset: str) -> list[str]:
    """The ``--set`` overrides after "CPU smoke" in the preset's description."""
    description = load_raw(preset)["description"]
    return re.findall(r"--set (\S+)", description.split("CPU smoke", 1)[1])


def test_the_documented_smoke_is_the_one_the_benchmarks_run():
    smoke = documented_smoke("mad-diffusion-mnist")
    assert "model.device=cpu" in smoke and len(smoke) >= 8
    assert smoke == reference_values.PRESETS["mad-diffusion-mnist"]["set"]


def test_mnist_cpu_smoke_runs_through_the_cli(tmp_path):
    needs("torch", "mnist")
    import pyarrow.parquet as pq

    args = ["run", "mad-diffusion-mnist", "--out", str(tmp_path / "run"), "--quiet", "--no-report"]
    for item in documented_smoke("mad-diffusion-mnist"):
        args += ["--set", item]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = pq.read_table(tmp_path / "run" / "metrics.parquet").to_pandas()
    assert sorted(table["arm"].unique()) == ARMS
    for metric in ("precision", "recall", "frechet", "memorisation_share"):
        rows = table[table["metric"] == metric]
        assert sorted(rows.groupby("arm")["generation"].nunique().items()) == [(arm, 2) for arm in ARMS], metric
    share = table[table["metric"] == "memorisation_share"]["value"].to_numpy()
    assert np.all((share >= 0) & (share <= 1))
    with np.load(tmp_path / "run" / "arrays" / "arm000-shard000-gen000001.npz") as kept:
        assert kept["sample_grid"].shape == (1, 64, 28, 28)  # the report's image grid of generation 1
