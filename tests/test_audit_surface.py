"""``mc.audit`` as a notebook uses it: callable however the subpackage was imported, with its real signature, on
DataFrames, arrays and text lists as on files, column names kept, progress drawn when asked, and the same indicators
as ``modelcollapse audit`` on the same table."""

import inspect
import json
import os
import pty
import pydoc
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import modelcollapse as mc
from modelcollapse.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")
COLUMNS = ["mean radius", "mean texture", "mean perimeter", "mean area", "mean smoothness"]
FAST = dict(lm="none", repeats=5)


@pytest.fixture(scope="module")
def cancer():
    """Five columns of scikit-learn's breast cancer table: 380 reference rows, 189 candidate rows."""
    from sklearn.datasets import load_breast_cancer

    df = load_breast_cancer(as_frame=True).frame[COLUMNS]
    return df.iloc[:380].reset_index(drop=True), df.iloc[380:].reset_index(drop=True)


@pytest.fixture(scope="module")
def files(cancer, tmp_path_factory):
    """The same two tables as CSV and parquet files."""
    tmp = tmp_path_factory.mktemp("tables")
    for name, df in zip(("ref", "cand"), cancer):
        df.to_csv(tmp / f"{name}.csv", index=False)
        df.to_parquet(tmp / f"{name}.parquet", index=False)
    return tmp


def values(result) -> pd.DataFrame:
    """Indicator, value, interval, null band, z and verdict of every row (the candidate's name dropped)."""
    return result.indicators.drop(columns="candidate").set_index("indicator")


# -- 1. mc.audit stays callable --------------------------------------------------------------------------------------
def test_mc_audit_stays_callable_after_importing_the_subpackage():
    """In a fresh interpreter: import the subpackage as docs/audit.md shows, call mc.audit twice, import it again
    under another name, call again. (Before, the import bound mc.audit to a module: 'module' object is not callable.)"""
    code = """
import numpy as np
import modelcollapse as mc
import modelcollapse.audit
from modelcollapse.audit import Audit
rng = np.random.default_rng(0)
ref, cand = rng.normal(size=(60, 2)), 0.5 * rng.normal(size=(40, 2))
verdicts = [mc.audit(ref, [cand], repeats=3).verdict, mc.audit(ref, cand, repeats=3).verdict]
import modelcollapse.audit as module
verdicts.append(mc.audit(ref, [cand], repeats=3).verdict)
assert module is mc.audit and isinstance(mc.audit(ref, [ref[:30]], repeats=3), Audit)
print(verdicts)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}
    )
    assert out.returncode == 0, out.stderr
    verdicts = eval(out.stdout)  # the same data and seed: the same verdict each time
    assert len(set(verdicts)) == 1 and verdicts[0] in ("ok", "watch", "collapsed")


def test_signature_lists_the_cli_options_and_help_shows_it():
    """The keywords of mc.audit are the options of `modelcollapse audit` (less --fail-on, an exit code), with the same
    defaults; no **options catch-all; help() shows them."""
    sig = inspect.signature(mc.audit)
    assert all(p.kind is not p.VAR_KEYWORD for p in sig.parameters.values())
    command = main.commands["audit"]
    default = lambda p: p.get_default(click.Context(command)) if p.required or p.default is not None else None  # noqa: E731
    cli = {p.name: default(p) for p in command.params if p.name not in ("reference", "candidates", "fail_on")}
    cli = {k: None if v is not None and type(v).__name__ == "Sentinel" else v for k, v in cli.items()}  # click's UNSET
    keywords = {name: p.default for name, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert set(keywords) == set(cli)
    differ = {k for k in cli if keywords[k] != cli[k]}
    assert differ == {"quiet"}  # Python is quiet unless asked; the CLI draws on a terminal unless --quiet
    from modelcollapse.api import audit

    assert inspect.signature(audit) == sig
    page = pydoc.render_doc(mc.audit)
    assert "lm_records" in page and "DataFrame" in page


# -- 2, 3. what a notebook holds, and column names --------------------------------------------------------------------
def test_dataframes_csv_parquet_and_arrays_give_the_same_indicators_named_by_column(cancer, files):
    ref, cand = cancer
    by_frame = values(mc.audit(ref, [cand], **FAST))
    by_csv = values(mc.audit(files / "ref.csv", files / "cand.csv", **FAST))
    by_parquet = values(mc.audit(str(files / "ref.parquet"), [str(files / "cand.parquet")], **FAST))
    pd.testing.assert_frame_equal(by_frame, by_csv)
    pd.testing.assert_frame_equal(by_frame, by_parquet)
    per_feature = [name for name in by_frame.index if "[" in name]
    assert per_feature == [f"tail_mass[{c}]" for c in COLUMNS] + [f"variance_ratio[{c}]" for c in COLUMNS]
    by_array = values(mc.audit(ref.to_numpy(), cand.to_numpy(), **FAST))  # arrays: features by index
    renamed = {f"{k}[{c}]": f"{k}[{j}]" for k in ("tail_mass", "variance_ratio") for j, c in enumerate(COLUMNS)}
    pd.testing.assert_frame_equal(by_array, by_frame.rename(index=renamed))
    shuffled = values(mc.audit(ref, [cand[COLUMNS[::-1]]], **FAST))  # matched by name, not position
    pd.testing.assert_frame_equal(shuffled, by_frame)


def test_csv_header_names_the_report_axes(cancer, files, tmp_path, monkeypatch):
    from modelcollapse.audit import report

    labels = []
    draw = report._png
    monkeypatch.setattr(report, "_png", lambda fig: (labels.extend(a.get_xlabel() for a in fig.axes), draw(fig))[1])
    result = mc.audit(files / "ref.csv", [files / "cand.csv"], out=tmp_path / "a", **FAST)
    top = report.features_moved(result)[0][1]  # the distributions figure draws the most-moved column, by name
    assert top in COLUMNS
    assert [top, f"reference quantiles ({top})"] == labels[labels.index(top) : labels.index(top) + 2]
    doc = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert "tail_mass[mean texture]" in [i["name"] for i in doc["candidates"][0]["indicators"]]
    assert result.reference.columns == COLUMNS


def test_text_records_as_lists_of_str_read_as_the_same_file(tmp_path, capsys):
    """A list of str is text records (for the reference, and each candidate inside the list of candidates); the
    indicators equal those of the same records in a .txt file. quiet=False draws the phases' bars."""
    rng = np.random.default_rng(0)
    words = "river stone cloud light field market winter garden letter bridge".split()
    real = [" ".join(rng.choice(words, 8)) for _ in range(24)]
    narrow = [" ".join(rng.choice(words[:3], 8)) for _ in range(16)]
    (tmp_path / "real.txt").write_text("\n\n".join(real))
    (tmp_path / "narrow.txt").write_text("\n\n".join(narrow))
    from_files = values(mc.audit(tmp_path / "real.txt", tmp_path / "narrow.txt", **FAST))
    capsys.readouterr()
    from_lists = values(mc.audit(real, [narrow], quiet=False, **FAST))
    drawn = capsys.readouterr().err  # the one progress bar draws on stderr
    pd.testing.assert_frame_equal(from_lists, from_files)
    assert "distinct_2" in from_lists.index
    for phase in ("audit: reading", "audit: embeddings", "audit: calibration"):
        assert phase in drawn


@pytest.mark.parametrize(
    "reference, candidates, message",
    [
        (
            {"a": [1.0]},
            "x.npy",
            "reference must be a path (str or os.PathLike), a pandas DataFrame or Series, a numpy "
            "array, or a list of str (text records); got dict.",
        ),
        (
            "ARRAY",
            ["ARRAY", 3],
            "candidates[1] must be a path (str or os.PathLike), a pandas DataFrame or Series, a numpy "
            "array, or a list of str (text records); got int.",
        ),
        (
            ["one text", 2],
            "ARRAY",
            "reference must be a path (str or os.PathLike), a pandas DataFrame or Series, a numpy "
            "array, or a list of str (text records); got a list holding int.",
        ),
        (
            ["one text"],
            ["two texts", "three"],
            "candidates is a list of 2 str naming no file; a list of candidates holds "
            "inputs (paths, DataFrames, arrays), so pass one candidate's text records as [records].",
        ),
        (
            "ARRAY",
            [np.array([{}, {}], dtype=object)],
            "candidates[0] must be a numeric numpy array (or text records as a list of str); got dtype object.",
        ),
        (
            "FRAME",
            [pd.DataFrame({"a": [1.0, 2.0], "s": ["x", "y"]})],
            "candidates[0] must hold numeric columns only (or a string column 'text' of text); got s (",
        ),
        (
            "FRAME",
            [pd.DataFrame({"a": [1.0, 2.0], "c": [3.0, 4.0]})],
            "candidates[0] must have the reference's columns (a, b); it lacks ['b'] and adds ['c'].",
        ),
    ],
)
def test_unsupported_inputs_are_config_errors_naming_the_argument(reference, candidates, message):
    array, frame = np.zeros((10, 2)), pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0) ** 2})
    swap = lambda x: (
        array if isinstance(x, str) and x == "ARRAY" else frame if isinstance(x, str) and x == "FRAME" else x
    )  # noqa: E731
    reference = swap(reference)
    candidates = [swap(c) for c in candidates] if isinstance(candidates, list) else candidates
    with pytest.raises(mc.ConfigError) as err:
        mc.audit(reference, candidates, **FAST)
    assert str(err.value) == message or message.endswith("(") and str(err.value).startswith(message)  # pandas names
    # a column of str 'object' or 'str' by version


def test_python_errors_name_arguments_and_cli_errors_name_flags(files, tmp_path):
    with pytest.raises(mc.ConfigError, match=r"^max_records must be >= 1; got 0\.$"):
        mc.audit(files / "ref.csv", files / "cand.csv", max_records=0, **FAST)
    with pytest.raises(mc.ConfigError, match=r"^lm_records must be >= 1; got 0\.$"):
        mc.audit(files / "ref.csv", files / "cand.csv", lm_records=0, **FAST)
    result = CliRunner().invoke(
        main,
        [
            "audit",
            str(files / "ref.csv"),
            str(files / "cand.csv"),
            "--out",
            str(tmp_path / "o"),
            "--lm",
            "none",
            "--lm-records",
            "0",
        ],
    )
    assert result.exit_code == 2 and result.output == "error: --lm-records must be >= 1; got 0.\n"


# -- 4. progress on a terminal ----------------------------------------------------------------------------------------
def test_cli_draws_progress_on_a_terminal_only(files, tmp_path):
    """On a pseudo-terminal `modelcollapse audit` draws its phases' bars; piped (CliRunner), or with --quiet, none."""
    args = ["audit", str(files / "ref.csv"), str(files / "cand.csv"), "--lm", "none", "--repeats", "3"]
    primary, secondary = pty.openpty()
    code = "from modelcollapse.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args, "--out", str(tmp_path / "tty")],
        stdout=secondary,
        stderr=secondary,
        env={**os.environ, "PYTHONPATH": SRC, "TERM": "xterm", "COLUMNS": "120"},
    )
    os.close(secondary)
    drawn = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed: the command has exited
            break
        if not chunk:
            break
        drawn += chunk
    assert proc.wait(timeout=120) == 0, drawn.decode(errors="replace")
    os.close(primary)
    text = drawn.decode(errors="replace")
    assert "audit: reading" in text and "audit: calibration" in text and "verdict:" in text
    piped = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "piped")])
    assert piped.exit_code == 0 and "verdict:" in piped.output and "audit: reading" not in piped.output


# -- 5. parity: the CLI and mc.audit on the same table -----------------------------------------------------------------
def test_cli_and_python_give_the_same_indicators(cancer, files, tmp_path):
    """`modelcollapse audit REF CAND --out D` and mc.audit on the same CSVs, and on the DataFrames they were written
    from: the same indicator rows, value for value (intervals, null bands, z and verdicts too)."""
    result = CliRunner().invoke(
        main,
        [
            "audit",
            str(files / "ref.csv"),
            str(files / "cand.csv"),
            "--out",
            str(tmp_path / "cli"),
            "--lm",
            "none",
            "--repeats",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    cli = pd.read_parquet(tmp_path / "cli" / "audit.parquet").drop(columns="candidate").set_index("indicator")
    assert len(cli) > 20 and "tail_mass[mean area]" in cli.index
    python = mc.audit(str(files / "ref.csv"), [str(files / "cand.csv")], out=tmp_path / "py", **FAST)
    pd.testing.assert_frame_equal(values(python), cli)
    pd.testing.assert_frame_equal(values(mc.audit(*cancer, **FAST)), cli)
    docs = [json.loads((tmp_path / d / "audit.json").read_text()) for d in ("cli", "py")]
    assert docs[0]["candidates"][0]["indicators"] == docs[1]["candidates"][0]["indicators"]
    assert docs[0]["options"] == docs[1]["options"]
