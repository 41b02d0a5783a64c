"""MLflow tracking: live per-generation logging to a real SQLite store, read back by a fresh process through the
standard ``mlflow.MlflowClient`` with no special environment."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import modelcollapse as mc
from modelcollapse.rundir.store import RunStore

pytest.importorskip("mlflow")
pytest.importorskip("sqlalchemy")  # MLflow's SQLite store (the track extra)
pytest.importorskip("alembic")

# 9 replicates in shards of 4: three units per arm, so a generation is logged only once all three have it.
RAW = {
    "name": "tracked",
    "replicates": 9,
    "shard_size": 4,
    "data": {"kind": "gaussian"},
    "model": {"kind": "gaussian"},
    "loop": {"generations": 5, "samples": 20},
    "metrics": ["variance", "w2_sq"],
    "arms": {"M20": {}, "M40": {"loop.samples": 40}},
}

READ_BACK = """
import json, sys, mlflow
client = mlflow.MlflowClient(sys.argv[1])
out = {}
for experiment in client.search_experiments():
    for run in client.search_runs([experiment.experiment_id]):
        out[run.info.run_id] = {
            "name": run.info.run_name, "status": run.info.status, "params": run.data.params, "tags": run.data.tags,
            "history": {key: sorted([m.step, m.value] for m in client.get_metric_history(run.info.run_id, key))
                        for key in run.data.metrics},
            "artifacts": [a.path for a in client.list_artifacts(run.info.run_id)]}
print(json.dumps(out))
"""


def read_back(uri: str) -> dict:
    """Every run in the store at ``uri``, as a fresh process with MLflow's standard client and no MLFLOW_* variables
    sees it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run([sys.executable, "-c", READ_BACK, uri], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def runs_of(runs: dict, run_dir) -> tuple[dict, dict]:
    """The parent run of ``run_dir`` and its children by arm name."""
    mine = {i: r for i, r in runs.items() if r["tags"].get("modelcollapse.run_dir") == str(run_dir.resolve())}
    (parent_id,) = [i for i, r in mine.items() if "mlflow.parentRunId" not in r["tags"]]
    return mine[parent_id], {r["name"]: r for r in mine.values() if r["tags"].get("mlflow.parentRunId") == parent_id}


def expected(run_dir, arm: str, metric: str, stat) -> list[list[float]]:
    t = RunStore(run_dir).read_metrics().to_pylist()
    gens = sorted({r["generation"] for r in t})
    return [
        [g, float(stat([r["value"] for r in t if r["arm"] == arm and r["metric"] == metric and r["generation"] == g]))]
        for g in gens
    ]


class Spy:
    """A user's hook, called after the tracker's: records which steps MLflow already holds when an arm's last shard
    reports a generation (what "live" means)."""

    def __init__(self, uri):
        self.uri, self.seen = uri, {}

    def __call__(self, event):
        if event.shard == 2 and event.arm == "M20":
            from mlflow import MlflowClient

            client = MlflowClient(self.uri)
            (run,) = client.search_runs(
                [client.get_experiment_by_name("tracked").experiment_id], "tags.`modelcollapse.arm` = 'M20'"
            )
            self.seen[event.generation] = sorted(
                m.step for m in client.get_metric_history(run.info.run_id, "variance/median")
            )


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    out = tmp_path_factory.mktemp("t") / "run"
    spy = Spy(f"sqlite:///{out.resolve()}/mlflow.db")
    mc.run(RAW, out=out, track="mlflow", on_generation=spy)
    return out, spy, read_back(f"sqlite:///{out.resolve()}/mlflow.db")


def test_default_store_is_sqlite_in_the_run_dir_and_logging_is_live(tracked):
    out, spy, _ = tracked
    assert (out / "mlflow.db").is_file() and not (out / "mlruns").exists()
    # when the last shard reports generation g, the tracker (called first) has logged 0..g
    assert spy.seen == {g: list(range(g + 1)) for g in range(5)}


def test_fresh_client_reads_median_and_mean_per_generation(tracked):
    out, _, runs = tracked
    parent, children = runs_of(runs, out)
    assert sorted(children) == ["M20", "M40"]
    assert parent["status"] == "FINISHED" and parent["tags"]["modelcollapse.status"] == "complete"
    assert parent["params"]["loop.generations"] == "5" and parent["params"]["seed"] == "0"
    assert {"config.yaml", "manifest.json"} <= set(parent["artifacts"])
    for arm, run in children.items():
        assert run["status"] == "FINISHED" and run["params"]["loop.samples"] == arm[1:]
        for metric in ("variance", "w2_sq"):
            for stat, fn in (("median", np.median), ("mean", np.mean)):
                got, want = run["history"][f"{metric}/{stat}"], expected(out, arm, metric, fn)
                assert [g for g, _ in got] == [0, 1, 2, 3, 4]  # once each: no generation logged twice
                assert np.allclose([v for _, v in got], [v for _, v in want], rtol=1e-12, atol=0)


def test_process_pool_is_logged_from_the_driver(tmp_path, tracked):
    out = tmp_path / "pool"
    uri = f"sqlite:///{tracked[0].resolve()}/mlflow.db"  # a shared store: the driver is its only writer
    mc.run(RAW, out=out, track="mlflow", tracking_uri=uri, workers=2)
    parent, children = runs_of(read_back(uri), out)
    assert parent["status"] == "FINISHED"
    for arm in ("M20", "M40"):
        got, want = children[arm]["history"]["variance/median"], expected(out, arm, "variance", np.median)
        assert [g for g, _ in got] == [0, 1, 2, 3, 4]
        assert np.allclose([v for _, v in got], [v for _, v in want], rtol=1e-12, atol=0)


def boom(event):
    if event.generation >= 2:  # from generation 2 on, so the executor's retry fails too
        raise ValueError("the user's hook failed")


def test_a_failed_run_ends_failed_with_what_it_persisted(tmp_path, tracked):
    out = tmp_path / "failed"
    uri = f"sqlite:///{tracked[0].resolve()}/mlflow.db"
    with pytest.raises(mc.RunError, match="the user's hook failed"):
        mc.run({**RAW, "arms": {}}, out=out, track="mlflow", tracking_uri=uri, on_generation=boom)
    parent, children = runs_of(read_back(uri), out)
    assert parent["status"] == "FAILED" and children["tracked"]["status"] == "FAILED"
    # what every shard persisted before its hook raised (the hook runs after the save; each retry adds a generation)
    got, want = children["tracked"]["history"]["variance/median"], expected(out, "tracked", "variance", np.median)
    assert [g for g, _ in got] == [g for g, _ in want] and len(got) >= 3
    assert np.allclose([v for _, v in got], [v for _, v in want], rtol=1e-12, atol=0)


def test_tracking_failure_warns_and_keeps_the_run(tmp_path):
    out = tmp_path / "run"
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's folder should be")
    with pytest.warns(RuntimeWarning, match="MLflow tracking of .* failed .*; results are in"):
        mc.run({**RAW, "arms": {}}, out=out, track="mlflow", tracking_uri=f"sqlite:///{blocker}/mlflow.db")
    assert RunStore(out).read_metrics().num_rows == 9 * 5 * 4


def test_track_must_be_mlflow():
    with pytest.raises(mc.ConfigError, match="track must be 'mlflow' or None; got 'wandb'"):
        mc.run(RAW, out="unused", track="wandb")
