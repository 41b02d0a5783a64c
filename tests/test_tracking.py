"""MLflow tracking: a real local file store, read back through MlflowClient."""

import os

import numpy as np
import pytest

from modelcollapse.engine.plan import validate
from modelcollapse.engine.runner import execute
from modelcollapse.engine.store import RunStore

pytest.importorskip("mlflow")

RAW = {"name": "tracked", "replicates": 9, "shard_size": 4, "data": {"kind": "gaussian"}, "model": {"kind": "gaussian"},
       "loop": {"generations": 5, "samples": 20}, "metrics": ["variance", "w2_sq"],
       "arms": {"M20": {}, "M40": {"loop.samples": 40}}}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    from modelcollapse.analysis.report import build_report
    from modelcollapse.analysis.tracking import log_runs

    out = tmp_path_factory.mktemp("t") / "run"
    execute(validate(RAW), out, quiet=True)
    build_report(out)
    ids = log_runs(out, ["tracked"])
    return out, ids


def client_for(out):
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=(out / "mlruns").as_uri())


def test_one_child_run_per_arm_with_median_and_mean_per_generation(tracked):
    out, (parent,) = tracked
    client = client_for(out)
    experiment = client.get_experiment_by_name("tracked")
    children = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    assert sorted(r.info.run_name for r in children) == ["M20", "M40"]
    table = RunStore(out).read_metrics().to_pylist()
    for run in children:
        arm = run.info.run_name
        assert run.data.params["loop.samples"] == arm[1:]
        history = client.get_metric_history(run.info.run_id, "variance/median")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2, 3, 4]
        for m in history:
            values = [r["value"] for r in table if r["arm"] == arm and r["metric"] == "variance" and r["generation"] == m.step]
            assert len(values) == 9 and m.value == pytest.approx(float(np.median(values)), rel=1e-12)
        mean = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "w2_sq/mean")}
        final = [r["value"] for r in table if r["arm"] == arm and r["metric"] == "w2_sq" and r["generation"] == 4]
        assert mean[4] == pytest.approx(float(np.mean(final)), rel=1e-12)


def test_parent_run_has_config_params_and_artifacts(tracked):
    out, (parent,) = tracked
    client = client_for(out)
    run = client.get_run(parent)
    assert run.data.params["loop.generations"] == "5" and run.data.params["seed"] == "0"
    assert run.data.tags["modelcollapse.status"] == "complete"
    names = {a.path for a in client.list_artifacts(parent)}
    assert {"config.yaml", "manifest.json", "report.html", "figures"} <= names
    assert any(a.path.endswith(".png") for a in client.list_artifacts(parent, "figures"))


def test_tracking_failure_warns_and_keeps_the_run(tmp_path):
    from modelcollapse.analysis.tracking import log_runs

    out = tmp_path / "run"
    execute(validate({**RAW, "arms": {}}), out, quiet=True)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store should be")
    with pytest.warns(RuntimeWarning, match="MLflow tracking of .* failed .*; results are in"):
        assert log_runs(out, ["tracked"], uri=(blocker / "mlruns").as_uri()) == []
    assert RunStore(out).read_metrics().num_rows == 9 * 5 * 4
