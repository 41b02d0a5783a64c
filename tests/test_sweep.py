"""`modelcollapse sweep`: one run per grid point, combined table, manifest, heatmap, failures, kill and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from modelcollapse.analysis.sweep_report import final_grid
from modelcollapse.cli import main
from modelcollapse.engine.sweep import parse_grid, points

CONFIG = {
    "name": "tiny",
    "seed": 0,
    "replicates": 4,
    "data": {"kind": "gaussian"},
    "model": {"kind": "gaussian"},
    "loop": {"generations": 4, "samples": 20, "regime": "synthetic-augmentation", "real_fraction": 0.5},
    "metrics": ["w2_sq", "variance"],
}


def write(tmp_path, cfg=CONFIG):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_parse_grid_and_points():
    grid = parse_grid(["loop.real_fraction=0,0.5", "loop.regime=mix,fresh"])
    assert grid == {"loop.real_fraction": [0, 0.5], "loop.regime": ["mix", "fresh"]}
    assert points(grid)[1] == {"loop.real_fraction": 0, "loop.regime": "fresh"}


def test_sweep_runs_points_in_parallel_and_combines(tmp_path):
    out = tmp_path / "s"
    args = [
        "sweep",
        write(tmp_path),
        "--grid",
        "loop.real_fraction=0.0,0.5,1.0",
        "--grid",
        "loop.samples=10,40",
        "--workers",
        "2",
        "--out",
        str(out),
        "--quiet",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert [p["status"] for p in manifest["points"]] == ["complete"] * 6
    t = pq.read_table(out / "sweep.parquet")
    assert {"arm", "replicate", "generation", "metric", "value", "point", "loop.real_fraction", "loop.samples"} <= set(
        t.column_names
    )
    assert t.num_rows == 6 * 4 * 4 * 4  # points × generations × replicates × (2 metrics + train_real + train_synthetic)
    metric, keys, axes, grid = final_grid(out)
    assert metric == "w2_sq" and keys == ["loop.real_fraction", "loop.samples"] and grid.shape == (3, 2)
    assert grid[2, 0] < grid[0, 0]  # all-real training keeps the fit at generation 0's error; all-synthetic drifts
    assert (out / "figures" / "heatmap.png").exists() and "heatmap" in (out / "report.html").read_text()
    # a point equals the same config run alone
    alone = tmp_path / "alone"
    CliRunner().invoke(
        main,
        [
            "run",
            write(tmp_path),
            "--out",
            str(alone),
            "--quiet",
            "--no-report",
            "--set",
            "loop.real_fraction=1.0",
            "--set",
            "loop.samples=40",
        ],
    )
    a = pq.read_table(alone / "metrics.parquet")
    sel = np.array(t["point"].to_pylist()) == 5
    np.testing.assert_array_equal(np.sort(t["value"].to_numpy()[sel]), np.sort(a["value"].to_numpy()))
    # resume of a complete sweep reruns nothing
    again = CliRunner().invoke(main, args + ["--resume"])
    assert again.exit_code == 0, again.output


def test_failed_point_is_marked_and_the_rest_finish(tmp_path):
    cfg = {**CONFIG, "loop": {**CONFIG["loop"], "real_samples": 5}}
    out = tmp_path / "f"
    result = CliRunner().invoke(
        main, ["sweep", write(tmp_path, cfg), "--grid", "loop.n_real=2,50", "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 1 and "1 point(s) failed" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert [p["status"] for p in manifest["points"]] == ["complete", "failed"]
    assert "more than the pool's 5" in manifest["points"][1]["error"]
    assert set(pq.read_table(out / "sweep.parquet")["point"].to_pylist()) == {0}


def test_sweep_usage_errors(tmp_path):
    r = CliRunner().invoke(main, ["sweep", write(tmp_path), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "sweep needs --grid key=v1,v2,..." in r.output
    r = CliRunner().invoke(
        main, ["sweep", write(tmp_path), "--grid", "loop.regime=replase", "--out", str(tmp_path / "y")]
    )
    assert r.exit_code == 2 and "Did you mean 'replace'?" in r.output


def test_preset_sweeps_have_default_grids():
    from modelcollapse.config import load_raw
    from modelcollapse.engine.plan import validate

    for name in ("real-fraction-sweep", "mad-phase"):
        raw = load_raw(name)
        assert len(raw["sweep"]["grid"]) == 2
        validate({k: v for k, v in raw.items()})


@pytest.mark.slow
def test_killed_sweep_resumes_to_the_same_table(tmp_path):
    cfg = {**CONFIG, "replicates": 64, "loop": {**CONFIG["loop"], "generations": 300, "samples": 200}}
    path = write(tmp_path, cfg)
    grid = ["--grid", "loop.real_fraction=0.1,0.5,0.9"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelcollapse.cli", "sweep", path, *grid, "--out", str(killed), "--quiet"], env=env
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once point 1 has started and saved a generation
        if list((killed / "points" / "001" / "checkpoints").glob("*/journal.log")):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    statuses = [p["status"] for p in json.loads((killed / "manifest.json").read_text())["points"]]
    assert statuses[0] == "complete" and statuses[1] != "complete"
    r = CliRunner().invoke(main, ["sweep", path, *grid, "--out", str(killed), "--resume", "--quiet"])
    assert r.exit_code == 0, r.output
    clean = tmp_path / "clean"
    assert CliRunner().invoke(main, ["sweep", path, *grid, "--out", str(clean), "--quiet"]).exit_code == 0
    a, b = pq.read_table(killed / "sweep.parquet"), pq.read_table(clean / "sweep.parquet")
    key = lambda t: np.lexsort(
        [
            t["replicate"].to_numpy(),
            t["generation"].to_numpy(),
            t["metric"].to_numpy().astype(str),
            t["point"].to_numpy(),
        ]
    )  # noqa: E731
    np.testing.assert_array_equal(a["value"].to_numpy()[key(a)], b["value"].to_numpy()[key(b)])
