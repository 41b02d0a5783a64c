"""Bad input outside the audit: exit 2, one line, nothing written; and advice after a failure that leads somewhere.

Issue 23 (main 1d64536): a one-row data file ran to exit 0 with NaN variances; ``sweep`` with an empty grid axis
"completed" 0 of 0 points; ``show`` on a missing path exited 1 where ``report`` exits 2; a unit failure advised
"fix the cause and rerun with --resume", which refused a changed config (and a plain rerun refused the folder)."""

import os

import pytest
import yaml
from click.testing import CliRunner

from modelcollapse.cli import main

TINY = ["--set", "replicates=4", "--set", "shard_size=2", "--set", "loop.generations=3", "--set", "loop.samples=10"]


def one_error(result, code: int = 2) -> str:
    assert result.exit_code == code, (result.output, result.exception)
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_a_one_row_data_file_is_refused(tmp_path):
    (tmp_path / "one.csv").write_text("a,b\n1.0,2.0\n")
    config = {
        "name": "one",
        "replicates": 2,
        "data": {"kind": "file", "path": str(tmp_path / "one.csv")},
        "model": {"kind": "gaussian"},
        "loop": {"generations": 2, "samples": 10},
        "metrics": ["variance", "mean"],
    }
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["run", str(tmp_path / "one.yaml"), "--out", str(tmp_path / "o"), "--quiet"])
    assert one_error(result) == (
        f"error: data.path {str(tmp_path / 'one.csv')!r} must hold at least 2 records (a spread needs two); got 1."
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "grid, message",
    [
        ({"loop.samples": []}, "sweep.grid['loop.samples'] must be a non-empty list of values; got []."),
        ({"loop.samples": 10}, "sweep.grid['loop.samples'] must be a non-empty list of values; got 10."),
        ([1, 2], "sweep.grid must be a mapping of config keys to lists of values; got [1, 2]."),
    ],
)
def test_an_empty_or_malformed_grid_axis_is_refused(tmp_path, grid, message):
    config = {
        "name": "g",
        "replicates": 2,
        "data": {"kind": "gaussian"},
        "model": {"kind": "gaussian"},
        "loop": {"generations": 2, "samples": 10},
        "sweep": {"grid": grid},
    }
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["sweep", str(tmp_path / "g.yaml"), "--out", str(tmp_path / "s"), "--quiet"])
    assert one_error(result) == f"error: {message}"
    assert not (tmp_path / "s").exists()


def test_show_and_report_on_a_missing_path_both_exit_2(tmp_path):
    missing = tmp_path / "nothing"
    assert (
        one_error(CliRunner().invoke(main, ["show", str(missing)]))
        == f"error: {missing} is not a run directory: it does not exist."
    )
    one_error(CliRunner().invoke(main, ["report", str(missing)]))


FLAKY = '''import pathlib
import modelcollapse as mc

@mc.metric("flaky")
def flaky(ctx):
    """The mean; raises from generation 1 while BROKEN exists beside this file (a bug its user then fixes)."""
    if pathlib.Path(__file__).with_name("broken").exists() and ctx.generation >= 1:
        raise RuntimeError("broken")
    return ctx.samples[..., 0].mean(-1)
'''


@pytest.fixture
def broken_run(tmp_path):
    """(Unregisters the plug-in's metric afterwards: the CLI runs in this process.)"""
    from modelcollapse.plugins.metrics import METRICS

    before = set(METRICS.names())
    yield _broken_run(tmp_path)
    for name in set(METRICS.names()) - before:
        METRICS.unregister(name)


def _broken_run(tmp_path):
    """A run whose units all fail in generation 1 (generation 0 saved), and the arguments that made it."""
    (tmp_path / "flaky.py").write_text(FLAKY)
    (tmp_path / "broken").touch()
    args = [
        "run",
        "gaussian-replace",
        "--out",
        str(tmp_path / "r"),
        "--quiet",
        "--no-report",
        *TINY,
        "--plugin",
        str(tmp_path / "flaky.py"),
        "--trust-code",
    ]
    failed = CliRunner().invoke(main, [*args, "--set", "metrics=[mean, flaky]"])
    assert one_error(failed, 1) == (
        "error: 2 of 2 units failed; first gaussian-replace/shard0: PluginError: metric 'flaky' raised RuntimeError: "
        "broken. Completed generations are saved: fix a plug-in and rerun with --resume (same config), or change the "
        "config and rerun with --overwrite (starts over). (rerun with --debug for the traceback into the plug-in)"
    )
    return tmp_path, args


def test_the_failure_advice_works_for_a_fixed_plug_in(broken_run):
    tmp_path, args = broken_run
    os.remove(tmp_path / "broken")  # the user fixes the plug-in
    result = CliRunner().invoke(main, [*args, "--set", "metrics=[mean, flaky]", "--resume"])
    assert result.exit_code == 0, result.output


def test_the_failure_advice_works_for_a_changed_config(broken_run):
    tmp_path, args = broken_run
    changed = [*args, "--set", "metrics=[mean]"]  # the user drops the failing metric instead
    assert "--resume: the config differs" in one_error(CliRunner().invoke(main, [*changed, "--resume"]))
    result = CliRunner().invoke(main, [*changed, "--overwrite"])
    assert result.exit_code == 0, result.output
