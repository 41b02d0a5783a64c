"""Executors: the same seed gives a bit-identical metrics.parquet in process, in a process pool and on Ray; a unit
that keeps failing marks the run failed while the other units finish."""

import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from modelcollapse.engine.executors import ExecutorSpec, gpus_for, map_tasks, map_units
from modelcollapse.engine.plan import validate
from modelcollapse.engine.runner import execute
from modelcollapse.errors import PYTHON, ConfigError, RunError

# Two arms, three shards each (shard_size 7 of 20 replicates): six units with their own streams.
RAW = {
    "name": "exec",
    "seed": 3,
    "replicates": 20,
    "shard_size": 7,
    "data": {"kind": "gaussian", "dim": 2},
    "model": {"kind": "gaussian", "next_fit": "samples"},
    "loop": {"generations": 6, "samples": 30},
    "metrics": ["w2_sq", "trace_ratio", "energy"],
    "arms": {"replace": {}, "accumulate": {"loop.regime": "accumulate"}},
}
# An arm whose units fail at run time: 'mix' asks for more real records than the pool of 5 holds.
BROKEN = {
    **RAW,
    "arms": {"ok": {}, "broken": {"loop.regime": "mix", "loop.real_fraction": 1.0, "loop.real_samples": 5}},
}


def square(x):
    if x == 3:
        raise ValueError("three is not welcome")
    return x * x


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def table(out):
    return pq.read_table(out / "metrics.parquet")


def test_map_tasks_reports_each_outcome():
    outcomes = sorted(map_tasks(square, [1, 2, 3, 4], ExecutorSpec()), key=lambda o: o.index)
    assert [o.value for o in outcomes] == [1, 4, None, 16]
    assert outcomes[2].error == "ValueError: three is not welcome"
    assert [o.value for o in map_units(square, [5, 6])] == [25, 36]


def test_executor_spec_errors_name_the_option():
    with pytest.raises(ConfigError, match=r"--executor must be one of 'local', 'ray'; got 'ary'. Did you mean 'ray'\?"):
        ExecutorSpec(kind="ary")
    with pytest.raises(ConfigError, match=r"^--address 'auto' needs --executor 'ray'; got --executor 'local'.$"):
        ExecutorSpec(address="auto")
    with pytest.raises(ConfigError, match=r"^--workers must be >= 1; got 0.$"):
        ExecutorSpec(workers=0)


def test_executor_spec_errors_from_python_name_arguments():
    """The same checks called from Python (``mc.run``, ``map_units``) name the keyword arguments, never a flag."""
    with pytest.raises(ConfigError, match=r"^executor must be one of 'local', 'ray'; got 'ary'. Did you mean 'ray'\?$"):
        ExecutorSpec(kind="ary", spelling=PYTHON)
    with pytest.raises(ConfigError, match=r"^address='auto' needs executor='ray'; got executor='local'.$"):
        ExecutorSpec(address="auto", spelling=PYTHON)
    with pytest.raises(ConfigError, match=r"^workers must be >= 1; got 0.$"):
        map_units(square, [1], workers=0)


def test_gpus_follow_the_model_device():
    assert gpus_for({"kind": "lm", "device": "cuda"}, 0) == 1
    assert gpus_for({"kind": "lm", "device": "auto"}, 4) == 1
    assert gpus_for({"kind": "lm", "device": "auto"}, 0) == 0
    assert gpus_for({"kind": "gaussian"}, 4) == 0


def test_process_pool_is_bit_identical_to_in_process(tmp_path):
    execute(validate(RAW), tmp_path / "a", quiet=True)
    execute(validate(RAW), tmp_path / "b", quiet=True, executor=ExecutorSpec(workers=2))
    assert table(tmp_path / "a").equals(table(tmp_path / "b"))
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["completed"]["accumulate/shard2"] == 6


def test_ray_is_bit_identical_to_local(tmp_path, ray_local):
    execute(validate(RAW), tmp_path / "local", quiet=True)
    manifest = execute(validate(RAW), tmp_path / "ray", quiet=True, executor=ExecutorSpec(kind="ray"))
    assert manifest["status"] == "complete"
    a, b = table(tmp_path / "local"), table(tmp_path / "ray")
    assert a.num_rows == 2 * 20 * 6 * 5 and a.equals(b)


def test_ray_failing_unit_marks_run_failed_while_others_finish(tmp_path, ray_local):
    out = tmp_path / "broken"
    with pytest.raises(
        RunError, match=r"3 of 6 units failed; first broken/shard\d: ConfigError: loop.n_real / real_fraction need 30"
    ):
        execute(validate(BROKEN), out, quiet=True, executor=ExecutorSpec(kind="ray", retries=1))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "need 30 real records" in manifest["error"]
    assert sorted(manifest["errors"]) == ["broken/shard0", "broken/shard1", "broken/shard2"]
    assert all(manifest["completed"][f"ok/shard{s}"] == 6 for s in range(3))


@pytest.mark.slow
def test_cli_runs_on_ray_in_a_fresh_process(tmp_path):
    """The CLI end to end: starts its own local Ray instance, workers import the package from the same place."""
    pytest.importorskip("ray")
    cmd = [
        sys.executable,
        "-m",
        "modelcollapse.cli",
        "run",
        "gaussian-replace",
        "--out",
        str(tmp_path / "r"),
        "--set",
        "replicates=40",
        "--set",
        "shard_size=20",
        "--set",
        "loop.generations=3",
        "--executor",
        "ray",
        "--workers",
        "2",
        "--quiet",
        "--no-report",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["status"] == "complete"


def test_importing_the_package_loads_neither_ray_nor_mlflow():
    code = (
        "import sys, modelcollapse, modelcollapse.engine.runner, modelcollapse.cli, modelcollapse.engine.executors, "
        "modelcollapse.analysis.tracking; "
        "print(sorted(m for m in ('ray', 'mlflow') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr[-1000:]


def test_sweep_points_run_as_ray_tasks(tmp_path, ray_local):
    from modelcollapse.engine.sweep import run_sweep

    config = tmp_path / "s.yaml"
    config.write_text(
        json.dumps({"name": "s", "replicates": 6, "loop": {"generations": 3, "samples": 20}, "metrics": ["variance"]})
    )
    out, manifest = run_sweep(
        str(config), ["loop.samples=20,40"], tmp_path / "sw", [], executor=ExecutorSpec(kind="ray")
    )
    assert manifest["status"] == "complete" and [p["status"] for p in manifest["points"]] == ["complete", "complete"]


def test_pool_workers_share_the_cores_for_blas_threads(monkeypatch):
    import os

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "7")  # set by the user: kept
    share = str(max(1, len(os.sched_getaffinity(0)) // 2))
    seen = [
        o.value for o in map_units(os.getenv, ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"], workers=2)
    ]
    assert seen == [share, share, "7"]
    assert "OPENBLAS_NUM_THREADS" not in os.environ  # the driver's own environment is restored


# -- the audit's per-record work (audit/shards.py) -------------------------------------------------------------------
def same_rows(a, b) -> bool:
    """Tidy audit rows equal field by field (NaN equal to NaN)."""

    def key(r):
        return [v if v == v else "nan" for v in r.values()]

    return len(a) == len(b) and all(key(x) == key(y) for x, y in zip(a, b))


def test_audit_image_features_on_ray_are_identical_to_local(ray_local):
    """8×8 digits under a feature classifier (1 epoch: the bits matter here, not the features' quality), shipped
    with every shard: features and class probabilities from Ray tasks (shards of 64, record order across shards)
    equal the in-process ones bit for bit."""
    pytest.importorskip("torch")
    from sklearn.datasets import load_digits

    from modelcollapse.audit.shards import image_task, map_records
    from modelcollapse.plugins.metrics.images import train_classifier

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    net = train_classifier(x[:300], d.target[:300], epochs=1)
    sets = [x[:300], x[300:400]]
    local, ray = (
        map_records(image_task(net), sets, size=64),
        map_records(image_task(net), sets, ExecutorSpec(kind="ray"), size=64),
    )
    for a, b, n in zip(local, ray, (300, 100)):
        assert a["features"].shape == (n, 64) and a["probs"].shape == (n, 10)
        assert np.array_equal(a["features"], b["features"]) and np.array_equal(a["probs"], b["probs"])


@pytest.mark.slow
def test_audit_text_on_ray_is_identical_to_local(tmp_path, ray_local):
    """Text: MiniLM embeddings and MinHash signatures in Ray tasks (shards of 8 here, so order across shards is
    checked) equal the in-process ones bit for bit, and so does every indicator of the audit."""
    from modelcollapse.audit import audit
    from modelcollapse.audit.shards import map_records, text_shard
    from modelcollapse.plugins.data.text import news_stories

    texts = [" ".join(s.split()[:20]) for s in news_stories()[:60]]
    spec = ExecutorSpec(kind="ray")
    local, ray = (
        map_records(text_shard, [texts[:30], texts[30:]], size=8),
        map_records(text_shard, [texts[:30], texts[30:]], spec, size=8),
    )
    for a, b in zip(local, ray):
        assert a["features"].shape == (30, 384) and all(np.array_equal(a[k], b[k]) for k in ("features", "signatures"))
    (tmp_path / "r.txt").write_text("\n\n".join(texts[:40])), (tmp_path / "c.txt").write_text("\n\n".join(texts[40:]))
    runs = [
        audit(str(tmp_path / "r.txt"), str(tmp_path / "c.txt"), repeats=3, lm="none", executor=e)
        for e in ("local", "ray")
    ]
    assert same_rows(runs[0].records(), runs[1].records())
