"""benchmarks/gpu_rows.py: the one command that runs rows 7, 8, 10 and 11 (diffusion) on a GPU. Its full-scale
settings must validate (a typo would waste the GPU lease), and its tiny mode must run end to end on the CPU."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_rows  # noqa: E402


@pytest.mark.parametrize("row", list(gpu_rows.ROWS))
def test_every_row_validates_at_full_scale_and_keeps_the_published_protocol(row, tmp_path):
    command, preset, sets = gpu_rows.ROWS[row]
    args = gpu_rows.cli_args(row, tmp_path / row, tiny=False)
    assert args[:2] == [command, preset] and "--resume" not in args
    if command == "chain":
        from modelcollapse.chains.config import load

        config = load(preset, sets)
        assert (config.generations, len(config.seeds), config.start.source, len(config.task)) == (
            50,
            5,
            "builtin:20",
            3,
        )
        return
    from modelcollapse.config import apply_overrides, load_raw
    from modelcollapse.engine.plan import validate

    base, config = validate(load_raw(preset)), validate(apply_overrides(load_raw(preset), sets))
    protocol = ("epochs", "num_beams", "repetition_penalty", "lr", "lr_min", "batch_size", "decoding")
    assert {k: config.model.get(k) for k in protocol} == {k: base.model.get(k) for k in protocol}
    assert (config.loop.generations, config.replicates) == {"vae-mnist": (5, 5), "diffusion-mnist": (5, 2)}.get(
        row, (10, 1)
    )


@pytest.mark.slow
def test_tiny_mode_runs_every_row_and_writes_the_timing_table(tmp_path):
    """~1-2 min on 2 cores: SmolLM2 is loaded by three of the four runs."""
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_rows.sh"), "--tiny", "--work", str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    timing = json.loads((out / "timing.json").read_text())
    assert [t["row"] for t in timing["runs"]] == list(gpu_rows.ROWS)
    assert all(t["status"] == "complete" for t in timing["runs"]), timing
    assert "| lm-replace | complete |" in (out / "timing.md").read_text()
    with tarfile.open(out / "rows.tar.gz") as tar:
        names = tar.getnames()
    for row in ("vae-mnist", "diffusion-mnist", "lm-replace", "lm-10pct"):
        assert f"{row}/metrics.parquet" in names and any(n.startswith(f"{row}/figures/") for n in names)
    assert any(n.startswith("telephone/") for n in names)
    assert len(list(out.iterdir())) <= 8  # the device machine returns at most 8 files
