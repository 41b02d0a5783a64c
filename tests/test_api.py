"""The Python API (modelcollapse.api, reached as ``import modelcollapse as mc``): runs, tidy tables, errors that name
Python arguments, live callbacks, decorators, plug-in modules and entry points, sklearn instances, pools without a
``__main__`` guard."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import modelcollapse as mc

pd = pytest.importorskip("pandas")

SRC = str(Path(mc.__file__).resolve().parents[1])
RAW = {
    "name": "api",
    "replicates": 5,
    "shard_size": 3,
    "loop": {"generations": 4, "samples": 20},
    "metrics": ["variance", "w2_sq"],
    "grid": {"loop.samples": [20, 40]},
    "arms": {"rep": {}, "acc": {"loop.regime": "accumulate"}},
}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    events = []
    run = mc.run(RAW, out=tmp_path_factory.mktemp("api") / "run", on_generation=events.append)
    return run, events


def test_api_and_cli_write_identical_metrics(made, tmp_path):
    import yaml
    from click.testing import CliRunner

    from modelcollapse.cli import main

    run, _ = made
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(RAW, sort_keys=False))
    result = CliRunner().invoke(
        main, ["run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "cli"), "--quiet", "--no-report"]
    )
    assert result.exit_code == 0, result.output
    ours, theirs = pq.read_table(run.path / "metrics.parquet"), pq.read_table(tmp_path / "cli" / "metrics.parquet")
    assert ours.num_rows == 4 * 5 * 4 * 4 and ours.equals(theirs)


def test_metrics_are_tidy_with_typed_varied_columns(made):
    run, _ = made
    df = run.metrics()
    assert list(df.columns) == ["arm", "replicate", "generation", "metric", "value", "loop.regime", "loop.samples"]
    assert df["loop.samples"].dtype == np.int64 and set(df["loop.samples"]) == {20, 40}
    assert set(df["loop.regime"]) == {"replace", "accumulate"}
    ordered = df.sort_values(["arm", "generation", "replicate"])  # decoded strings sort (dictionary columns would not)
    assert ordered["arm"].iloc[0] == "acc,loop.samples=20"
    for arm, part in df.groupby("arm"):
        assert part["loop.samples"].nunique() == 1 and str(part["loop.samples"].iloc[0]) in arm


def test_curves_are_the_across_replicate_statistics(made):
    run, _ = made
    cur = run.curves("variance")
    df = run.metrics()
    sel = df[(df.arm == "rep,loop.samples=40") & (df.metric == "variance") & (df.generation == 3)]["value"].to_numpy()
    row = cur[(cur.arm == "rep,loop.samples=40") & (cur.generation == 3)].iloc[0]
    assert row["n"] == 5 and row["median"] == pytest.approx(np.median(sel))
    assert row["q25"] == pytest.approx(np.quantile(sel, 0.25)) and row["q75"] == pytest.approx(np.quantile(sel, 0.75))
    assert row["mean"] == pytest.approx(sel.mean()) and row["sem"] == pytest.approx(sel.std(ddof=1) / np.sqrt(5))
    with pytest.raises(mc.ConfigError, match="metric must be one of .*'variance'.* Did you mean 'variance'"):
        run.curves("varience")


def test_on_generation_gets_each_persisted_generation_with_its_metrics(made):
    run, events = made
    assert len(events) == 4 * 2 * 4  # arms x shards (5 replicates, shard_size 3) x generations
    df = run.metrics()
    for e in events:
        assert set(e.metrics) >= {"variance", "w2_sq"} and e.metrics["variance"].shape == (len(e.replicates),)
        stored = (
            df[
                (df.arm == e.arm)
                & (df.generation == e.generation)
                & (df.metric == "variance")
                & df.replicate.isin(list(e.replicates))
            ]
            .sort_values("replicate")["value"]
            .to_numpy()
        )
        np.testing.assert_array_equal(stored, e.metrics["variance"])


def test_errors_name_python_arguments_and_overwrite_only_replaces_runs(made, tmp_path):
    run, _ = made
    with pytest.raises(mc.ConfigError) as err:
        mc.run(RAW, out=run.path)
    assert "resume=True" in str(err.value) and "overwrite=True" in str(err.value) and "--" not in str(err.value)
    with pytest.raises(mc.ConfigError, match=r"^resume=True: the config differs .* at '.*replicates'"):
        mc.run(RAW, out=run.path, resume=True, overrides={"replicates": 6})
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(mc.ConfigError, match="overwrite=True replaces only a modelcollapse run directory"):
        mc.run(RAW, out=other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"
    again = mc.run({**RAW, "grid": {}, "arms": {}}, out=tmp_path / "x", overrides={"loop.generations": 2})
    again = mc.run({**RAW, "grid": {}, "arms": {}}, out=tmp_path / "x", overwrite=True)
    assert again.metrics()["generation"].max() == 3 and mc.load(again.path).manifest["status"] == "complete"
    with pytest.raises(mc.ConfigError, match="overrides keys are dotted config keys"):
        mc.run(RAW, overrides={"loop..samples": 3})


def test_sweep_has_point_and_typed_grid_columns(tmp_path):
    sw = mc.sweep(
        {"name": "s", "replicates": 3, "loop": {"generations": 2, "samples": 10}, "metrics": ["variance"]},
        grid={"loop.samples": [10, 30], "loop.real_fraction": [0.0, 0.5]},
        out=tmp_path / "s",
    )
    df = sw.metrics()
    assert df["loop.samples"].dtype == np.int64 and df["loop.real_fraction"].dtype == np.float64
    assert sorted(df.groupby(["loop.samples", "loop.real_fraction"]).size().index) == [
        (10, 0.0),
        (10, 0.5),
        (30, 0.0),
        (30, 0.5),
    ]
    assert len(sw.curves("variance")) == 4 * 2


def test_presets_and_load():
    names = mc.presets()
    assert "gaussian-replace" in names and names["gaussian-replace"]
    with pytest.raises(mc.ConfigError, match="not a modelcollapse run directory"):
        mc.load("/nonexistent-run-dir")


def test_decorated_plugins_run_by_name_and_re_registration_replaces(tmp_path):
    from modelcollapse.plugins.metrics import METRICS
    from modelcollapse.plugins.regimes import REGIMES

    def define(offset):
        @mc.metric("api_sample_range")
        def api_sample_range(ctx):  # the same module and qualified name: a notebook cell run again
            x = ctx.samples.reshape(ctx.samples.shape[0], -1)
            return x.max(1) - x.min(1) + offset

        @mc.regime("api_last_k", keeps_history=True)
        def api_last_k(inputs, *, k: int = 2):
            return list(inputs.synthetic[-k:])

    try:
        define(100.0)
        define(0.0)
        run = mc.run(
            {
                "name": "p",
                "replicates": 3,
                "loop": {"generations": 3, "samples": 15, "regime": {"kind": "api_last_k", "k": 1}},
                "metrics": ["api_sample_range"],
            },
            out=tmp_path / "p",
        )
        df = run.metrics()
        values = df[df.metric == "api_sample_range"]["value"].to_numpy()
        assert len(values) == 9 and ((values > 0) & (values < 20)).all()  # the second definition (offset 0) ran
        with pytest.raises(
            mc.ConfigError,
            match=r"'variance' is already registered \(by modelcollapse.plugins.metrics.moments.variance\)",
        ):
            mc.metric("variance")(lambda ctx: ctx.samples.mean(1))
        with pytest.raises(mc.ConfigError, match="loop.regime.k must be >= 1|k .*int"):
            mc.run({"loop": {"regime": {"kind": "api_last_k", "k": "x"}}}, out=tmp_path / "q")
    finally:
        for registry, name in ((METRICS, "api_sample_range"), (REGIMES, "api_last_k")):
            if name in registry:
                registry.unregister(name)


def test_sklearn_takes_an_instance_and_checks_metrics_at_validation(tmp_path):
    pytest.importorskip("sklearn")
    from sklearn.neighbors import KernelDensity

    from modelcollapse.engine.plan import validate

    with pytest.raises(
        mc.ConfigError,
        match=r"metrics: 'mean' cannot be computed for model.estimator 'sklearn.neighbors:KernelDensity'",
    ):
        validate({"model": {"kind": "sklearn", "estimator": "sklearn.neighbors:KernelDensity"}}, trust_code=True)
    kde = KernelDensity(bandwidth=0.4)
    run = mc.run(
        {
            "name": "k",
            "replicates": 2,
            "loop": {"generations": 3, "samples": 30},
            "metrics": ["nll_real", "w1"],
            "model": {"kind": "sklearn", "estimator": kde},
        },
        out=tmp_path / "k",
    )
    assert run.config["model"] == {
        "kind": "sklearn",
        "estimator": "sklearn.neighbors:KernelDensity",
        "params": {**kde.get_params(), "bandwidth": 0.4},
    }
    assert not hasattr(kde, "tree_")  # the caller's estimator is cloned, never fitted
    by_path = mc.run(
        {
            "name": "k",
            "replicates": 2,
            "loop": {"generations": 3, "samples": 30},
            "metrics": ["nll_real", "w1"],
            "model": {"kind": "sklearn", "estimator": "sklearn.neighbors:KernelDensity", "params": {"bandwidth": 0.4}},
        },
        out=tmp_path / "k2",
        trust_code=True,
    )
    assert run.metrics()["value"].equals(by_path.metrics()["value"])  # same settings, same keyed streams, same bits


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, *sys.path[1:]]), "MPLBACKEND": "Agg"}


def test_a_script_without_main_guard_falls_back_from_the_pool_with_a_warning(tmp_path):
    script = tmp_path / "noguard.py"
    script.write_text(
        textwrap.dedent("""
        import modelcollapse as mc
        run = mc.run({"name": "ng", "replicates": 4, "shard_size": 2, "loop": {"generations": 2, "samples": 10}},
                     out="out", workers=2)
        print("STATUS", run.manifest["status"], len(run.metrics()))
    """)
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "STATUS complete" in done.stdout
    assert (
        'outside an `if __name__ == "__main__":` block' in done.stderr
        and "one after another in this process" in done.stderr
    )


def test_plugin_files_modules_and_entry_points(tmp_path):
    from click.testing import CliRunner

    from modelcollapse.cli import main

    (tmp_path / "my_metric.py").write_text(
        textwrap.dedent("""
        import modelcollapse as mc
        @mc.metric("file_metric", from_model=True)
        def file_metric(ctx):
            return ctx.model.moments()[1][:, 0, 0] * 2
    """)
    )
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "gaussian-replace",
            "--out",
            str(out),
            "--quiet",
            "--no-report",
            "--plugin",
            str(tmp_path / "my_metric.py"),
            "--trust-code",
            "--set",
            "replicates=3",
            "--set",
            "loop.generations=2",
            "--set",
            "metrics=[variance, file_metric]",
        ],
    )
    assert result.exit_code == 0, result.output
    df = mc.load(out).metrics()
    var, doubled = (
        df[df.metric == m].sort_values(["generation", "replicate"])["value"].to_numpy()
        for m in ("variance", "file_metric")
    )
    np.testing.assert_allclose(doubled, 2 * var)
    assert mc.load(out).config["plugins"] == [str(tmp_path / "my_metric.py")]
    # an installed package's entry point, loaded when an unknown name is resolved (in a fresh process)
    site = tmp_path / "site"
    (site / "ep_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "ep_plugin-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 0.1\n")
    (site / "ep_plugin-0.1.dist-info" / "entry_points.txt").write_text("[modelcollapse.plugins]\nep = ep_plugin\n")
    (site / "ep_plugin.py").write_text(
        "import modelcollapse as mc\n@mc.metric('ep_metric')\ndef ep_metric(ctx):\n"
        "    return ctx.samples.reshape(ctx.samples.shape[0], -1).mean(1)\n"
    )
    code = (
        "import modelcollapse as mc; r = mc.run({'replicates': 2, 'loop': {'generations': 2, 'samples': 5}, "
        "'metrics': ['ep_metric']}, out='ep'); print(sorted(set(r.metrics().metric)))"
    )
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "['ep_metric', 'train_real', 'train_synthetic']" in done.stdout
    with pytest.raises(mc.ConfigError, match="plugins: plug-in file 'nope.py' does not exist"):
        mc.run({"plugins": ["nope.py"]}, out=tmp_path / "n", trust_code=True)
    with pytest.raises(
        mc.ConfigError,
        match=r"names Python code to import and run; nothing was imported: pass --trust-code \(or trust_code=True",
    ):
        mc.run({"plugins": [str(tmp_path / "my_metric.py")]}, out=tmp_path / "untrusted")  # refused before importing
