"""A run killed midway and resumed reaches exactly the result of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from modelcollapse.rundir.store import RunStore


def cli(*args):
    return [sys.executable, "-m", "modelcollapse.cli", *args]


# slow: a kill at a random moment of a 200-generation run. make test keeps the same guarantee at a fixed scale:
# tests/test_crash_safety.py kills a run (SIGKILL, accumulate) at every step the store takes, then resumes it bit for
# bit; tests/test_sweep.py's killed sweep is slow for the same reason.
@pytest.mark.slow
@pytest.mark.parametrize("regime", ["replace", "accumulate"])
def test_kill_then_resume_equals_uninterrupted(tmp_path, regime):
    raw = {
        "name": "k",
        "seed": 3,
        "replicates": 40,
        "shard_size": 20,
        "data": {"kind": "gaussian", "dim": 2},
        "model": {"kind": "gaussian"},
        "loop": {"generations": 200, "samples": 30, "regime": regime},
        "metrics": ["trace_ratio", "w2_sq", "mean"],
    }
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(cli("run", str(config), "--out", str(full), "--quiet", "--no-report"), check=True)

    proc = subprocess.Popen(cli("run", str(config), "--out", str(killed), "--quiet", "--no-report"))
    store = RunStore(killed)
    deadline = time.time() + 60
    while store.last_generation(0, 0) < 40 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = store.last_generation(0, 0)
    assert 40 <= done < 199, "the kill should land midway"
    assert not (killed / "metrics.parquet").exists()
    assert store.read_manifest()["status"] == "running"

    subprocess.run(cli("run", str(config), "--out", str(killed), "--quiet", "--no-report", "--resume"), check=True)
    a, b = pq.read_table(full / "metrics.parquet"), pq.read_table(killed / "metrics.parquet")
    assert a.num_rows == b.num_rows == 40 * 200 * 5
    key = lambda t: np.lexsort(
        [t["replicate"].to_numpy(), t["generation"].to_numpy(), np.array(t["metric"].to_pylist())]
    )  # noqa: E731
    np.testing.assert_array_equal(a["value"].to_numpy()[key(a)], b["value"].to_numpy()[key(b)])
    assert store.read_manifest()["status"] == "complete"


def test_resume_refuses_a_changed_config(tmp_path):
    raw = {"name": "k", "replicates": 4, "loop": {"generations": 3, "samples": 10}}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "o"
    subprocess.run(cli("run", str(config), "--out", str(out), "--quiet", "--no-report"), check=True)
    result = subprocess.run(
        cli("run", str(config), "--out", str(out), "--resume", "--set", "loop.samples=11"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "differs" in result.stderr and "loop.samples" in result.stderr


def test_seed_determinism_and_shard_independence(tmp_path):
    """Same seed, same bits; shard layout is part of the config, so it is keyed, and replicate streams don't depend
    on which metrics are measured."""
    from conftest import run_small

    raw = {
        "seed": 5,
        "replicates": 6,
        "shard_size": 3,
        "loop": {"generations": 5, "samples": 20},
        "metrics": ["variance"],
    }
    a = run_small(raw, tmp_path / "a")[("run", "variance")]
    b = run_small(raw, tmp_path / "b")[("run", "variance")]
    np.testing.assert_array_equal(a, b)
    c = run_small({**raw, "metrics": ["variance", "w1", "mean"]}, tmp_path / "c")[("run", "variance")]
    np.testing.assert_array_equal(a, c)
    d = run_small({**raw, "seed": 6}, tmp_path / "d")[("run", "variance")]
    assert not np.array_equal(a, d)


def test_metric_segments_of_either_format_consolidate(tmp_path):
    from modelcollapse.rundir.columns import save_arrays, save_columns

    segments = tmp_path / "checkpoints" / "arm000-shard000" / "segments"
    save_arrays(segments / "metrics-000000.npz", {"a": np.arange(3.0), "b": np.ones(3)})  # written before save_columns
    save_columns(segments / "metrics-000001.npy", {"a": np.arange(3.0) + 10, "b": np.zeros(3)})
    table = RunStore(tmp_path).metric_rows(["run"], 3).to_pydict()
    rows = sorted(zip(table["generation"], table["metric"], table["replicate"], table["value"]))
    assert rows[:3] == [(0, "a", 0, 0.0), (0, "a", 1, 1.0), (0, "a", 2, 2.0)]
    assert rows[6:9] == [(1, "a", 0, 10.0), (1, "a", 1, 11.0), (1, "a", 2, 12.0)] and len(rows) == 12


def test_resume_point_reads_generation_and_state_together(tmp_path):
    """One read gives the generation and the state that belong together, and the segment digests it recorded."""
    store = RunStore(tmp_path)
    for g in range(3):
        store.save_generation(0, 0, g, {"m": np.full(2, float(g))}, {"mu": np.full(2, 10.0 * g)}, None)
    generation, state = RunStore(tmp_path).resume_point(0, 0)
    assert generation == 2 and list(state) == ["mu"] and state["mu"][0] == 20.0
    from modelcollapse.rundir.journal import IDENTITY, JOURNAL, METRICS, STATE_NPZ, Log

    log = Log.read(store.unit_dir(0, 0) / JOURNAL)  # whose it is, then a metrics and a state record per generation
    assert [(r.kind, r.generation) for r in log.records] == [(IDENTITY, -1)] + [
        (k, g) for g in range(3) for k in (METRICS, STATE_NPZ)
    ]
    assert not list(store.unit_dir(0, 0).glob("state.*"))  # small states live in the journal until the run completes


def test_a_torn_journal_tail_is_cut_on_resume_and_a_damaged_record_is_an_error(tmp_path):
    """A record cut short or failing its checksum at the end of the log is a crash mid-append: dropped, with every
    record of a generation that did not complete. The same damage with records after it is corruption."""
    from modelcollapse.rundir.atomic import CorruptFile
    from modelcollapse.rundir.journal import JOURNAL, frame

    store = RunStore(tmp_path)
    for g in range(3):
        store.save_generation(0, 0, g, {"m": np.full(2, float(g))}, {"mu": np.full(2, 10.0 * g)}, None)
    journal = store.unit_dir(0, 0) / JOURNAL
    whole = journal.read_bytes()
    mine = store.identity(0, 0).digest
    for torn in (frame(0, 3, b"x" * 100, mine)[:-7], frame(0, 3, b"x" * 100, mine)[:30], frame(0, 3, b"y" * 10, mine)):
        journal.write_bytes(whole + torn)  # generation 3's metrics record: torn, cut short, or complete but uncommitted
        resumed = RunStore(tmp_path)
        assert resumed.resume_point(0, 0)[0] == 2
        resumed.save_generation(0, 0, 3, {"m": np.full(2, 3.0)}, {"mu": np.zeros(2)}, None)
        assert journal.read_bytes().startswith(whole) and RunStore(tmp_path).resume_point(0, 0)[0] == 3
    damaged = bytearray(whole)
    damaged[len(whole) // 2] ^= 0x40
    journal.write_bytes(bytes(damaged))
    with pytest.raises(CorruptFile, match=rf"{journal} is corrupted \(.*\); restore it"):
        RunStore(tmp_path).resume_point(0, 0)


def test_a_checkpoint_from_before_checksums_still_resumes(tmp_path):
    """Run directories written before checksums carry none: they load unchecked, and the next save records digests
    for the segments already on disk."""
    from modelcollapse.rundir.columns import load_arrays, save_arrays, save_columns

    unit = RunStore(tmp_path).unit_dir(0, 0)
    for g in range(2):
        save_columns(unit / "segments" / f"metrics-{g:06d}.npy", {"m": np.full(2, float(g))})
    save_arrays(unit / "state.npz", {"mu": np.ones(2), "__generation__": np.array([1])})
    store = RunStore(tmp_path)
    assert store.resume_point(0, 0)[0] == 1
    store.save_generation(0, 0, 2, {"m": np.full(2, 2.0)}, {"mu": np.zeros(2)}, None)
    assert load_arrays(unit / "state.npz")["__metrics_sha256__"].shape == (3, 32)
    manifest = {}
    store.finish(["run"], 2, [(0, 0)], manifest)
    assert manifest["table"]["rows"] == 6 and store.read_metrics()["value"].to_pylist()[-2:] == [2.0, 2.0]
