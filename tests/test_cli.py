"""The command line: exit codes, one-line errors with the accepted values and a did-you-mean, presets, show, report."""

import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from modelcollapse.cli import main


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def write(tmp_path, raw):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize(
    "raw, message",
    [
        (
            {"loop": {"regime": "replase"}},
            "error: loop.regime must be one of 'accumulate', 'accumulate-subsample', 'fresh', 'fresh-data', "
            "'fully-synthetic', 'mix', 'replace', 'synthetic-augmentation', 'window'; got 'replase'.",
        ),
        ({"loop": {"generatons": 3}}, "error: unknown key 'loop.generatons'"),
        ({"replicates": 0}, "error: replicates must be >= 1; got 0."),
        ({"loop": {"real_fraction": 1.5}}, "error: loop.real_fraction must be <= 1.0; got 1.5."),
        ({"model": {"kind": "gausian"}}, "error: model.kind must be one of"),
        (
            {"model": {"kind": "gaussian", "variance": "biased"}},
            "error: model.variance must be one of 'unbiased' or 'mle'; got 'biased'.",
        ),
        ({"metrics": ["w2"]}, "error: metrics must be one of"),
        ({"data": {"kind": "gaussian", "stdev": 2}}, "error: unknown key 'data.stdev'"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path, raw, message):
    result = invoke("run", write(tmp_path, raw), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert result.output.startswith(message), result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_did_you_mean(tmp_path):
    result = invoke("run", write(tmp_path, {"loop": {"regime": "replase"}}))
    assert "Did you mean 'replace'?" in result.output
    result = invoke("run", write(tmp_path, {"loop": {"generatons": 3}}))
    assert "Did you mean 'generations'?" in result.output


def test_set_override_is_validated(tmp_path):
    result = invoke("run", "gaussian-replace", "--set", "loop.samples=-3", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "loop.samples must be >= 1; got -3." in result.output
    result = invoke("run", "gaussian-replace", "--set", "loop.samples", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "--set needs key=value" in result.output


def test_unknown_preset_suggests(tmp_path):
    result = invoke("run", "gaussian-replase")
    assert result.exit_code == 2 and "Did you mean 'gaussian-replace'?" in result.output


def test_file_source_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n3\n")
    result = invoke("run", write(tmp_path, {"data": {"kind": "file", "path": str(bad)}}))
    assert result.exit_code == 2 and "cannot be read as numeric records" in result.output
    nan = tmp_path / "nan.csv"
    nan.write_text("x\n1\nnan\n")
    result = invoke("run", write(tmp_path, {"data": {"kind": "file", "path": str(nan)}}))
    assert result.exit_code == 2 and "NaN" in result.output
    empty = tmp_path / "empty.npy"
    import numpy as np

    np.save(empty, np.zeros((0, 2)))
    result = invoke("run", write(tmp_path, {"data": {"kind": "file", "path": str(empty)}}))
    assert result.exit_code == 2 and "non-empty" in result.output
    result = invoke("run", write(tmp_path, {"data": {"kind": "file", "path": str(tmp_path / "nope.npy")}}))
    assert result.exit_code == 2 and "existing file" in result.output
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).normal(size=(50, 1)))
    result = invoke(
        "run",
        write(
            tmp_path, {"data": {"kind": "file", "path": str(good)}, "loop": {"regime": "fresh", "real_fraction": 0.5}}
        ),
    )
    assert result.exit_code == 2 and "use 'mix' for a fixed pool" in result.output


def test_run_file_source_mix_and_show_and_report(tmp_path):
    import numpy as np

    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).normal(size=(50, 1)))
    raw = {
        "name": "f",
        "replicates": 8,
        "data": {"kind": "file", "path": str(good)},
        "loop": {"generations": 4, "samples": 50, "regime": "mix", "real_fraction": 0.2},
        "metrics": ["mean", "variance", "w1", "energy"],
    }
    out = tmp_path / "out"
    result = invoke("run", write(tmp_path, raw), "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    assert (out / "report.html").exists() and (out / "metrics.parquet").exists()
    shown = invoke("show", str(out))
    assert shown.exit_code == 0 and "f: complete" in shown.output and "variance" in shown.output
    again = invoke("run", write(tmp_path, raw), "--out", str(out))
    assert again.exit_code == 2 and "already holds files" in again.output
    assert invoke("report", str(tmp_path / "missing")).exit_code == 2


def test_presets_lists_every_preset():
    result = invoke("presets")
    assert result.exit_code == 0
    for name in (
        "gaussian-replace",
        "gaussian-multivariate",
        "regression-regimes",
        "categorical-absorption",
        "gaussian-long",
        "paper-suite",
    ):
        assert name in result.output


def test_every_preset_validates():
    from modelcollapse.config import load_raw, preset_names
    from modelcollapse.engine.plan import validate
    from modelcollapse.engine.runner import suite_entries

    for name in preset_names():
        raw = load_raw(name)
        if "suite" in raw:
            for _, sub in suite_entries(raw):
                validate(sub)
        elif "kind" not in raw.get("backend", {}) and "task" not in raw:
            validate(raw)


def test_runtime_failure_exits_1_without_traceback(tmp_path):
    # A run directory whose config cannot be reported on: a runtime failure, not a usage error.
    out = tmp_path / "broken"
    out.mkdir()
    (out / "config.yaml").write_text("name: x\n")
    result = invoke("report", str(out))
    assert result.exit_code == 1 and "Traceback" not in result.output and result.output.startswith("error:")


def test_import_is_light():
    code = (
        "import sys, modelcollapse, modelcollapse.cli, modelcollapse.config; "
        "print(sorted(m for m in ('torch','transformers','matplotlib','ray','sklearn') if m in sys.modules))"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


def test_report_builds_a_loop_run_and_a_sweep(tmp_path):
    raw = {"name": "g", "replicates": 4, "loop": {"generations": 3, "samples": 20}, "metrics": ["mean", "variance"]}
    config = write(tmp_path, raw)
    assert invoke("run", config, "--out", str(tmp_path / "run"), "--quiet", "--no-report").exit_code == 0
    sweep = invoke("sweep", config, "--grid", "loop.samples=10,20", "--out", str(tmp_path / "sweep"), "--quiet")
    assert sweep.exit_code == 0, sweep.output
    (tmp_path / "sweep" / "report.html").unlink()
    for kind, title in (("run", "<title>modelcollapse: g</title>"), ("sweep", "<title>modelcollapse sweep: g</title>")):
        result = invoke("report", str(tmp_path / kind))
        assert result.exit_code == 0, result.output
        assert result.output.strip() == str(tmp_path / kind / "report.html")
        assert title in (tmp_path / kind / "report.html").read_text()


def test_loop_and_chain_presets_name_the_right_command():
    chain = invoke("chain", "gmm-paper")
    assert chain.exit_code == 2
    assert chain.output.strip().splitlines() == [
        "error: 'gmm-paper' is a self-consuming loop config (it has data, model, loop, replicates), not a telephone "
        "chain: run it with `modelcollapse run gmm-paper`."
    ]
    run = invoke("run", "telephone-summarize")
    assert run.exit_code == 2
    assert run.output.strip().splitlines() == [
        "error: 'telephone-summarize' is a telephone-chain config: run it with `modelcollapse chain`."
    ]


@pytest.mark.parametrize(
    "args",
    [["--debug", "chain", "no-such-preset"], ["chain", "no-such-preset", "--debug"], ["chain", "no-such-preset"]],
)
def test_chain_debug_shows_the_traceback_in_either_position(args):
    result = subprocess.run([sys.executable, "-m", "modelcollapse", *args], capture_output=True, text=True)
    assert result.returncode == (1 if "--debug" in args else 2)  # a raised exception exits 1; a handled error 2
    if "--debug" in args:
        assert "Traceback (most recent call last)" in result.stderr and "ConfigError: CONFIG must be" in result.stderr
    else:
        assert "Traceback" not in result.stderr
        assert (
            result.stderr.startswith("error: CONFIG must be a YAML file or a preset:")
            and result.stderr.count("\n") == 1
        )
