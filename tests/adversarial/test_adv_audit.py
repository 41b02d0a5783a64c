"""The audit trusts its inputs no more than the run store does, and ``--out`` holds one whole audit or none.

Each case is a defect of issue 23 (main 1d64536): a 50 MB line drove the audit to 22 GB (a Rust panic, exit 134,
under a 4 GB limit); a number, null or list text field was audited as "12345", "None", "['a', 'b']"; a one-record
candidate crashed in numpy (``kth(=5) out of bounds (1)``); object or garbage ``.npy`` and an ``.npz`` under a
``.npy`` name gave numpy's own errors; ``:replicate=999`` spoke of "generations 0..-1"; a killed audit left a new
``audit.parquet`` beside an old ``audit.json``; a run listing plug-ins told the user to pass ``--trust-code``, which
``audit`` did not have."""

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from modelcollapse.cli import main

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
FAST = ["--repeats", "3", "--lm", "none"]


def texts(n: int, shift: int = 0) -> list[str]:
    return [" ".join(WORDS[(i * 5 + j + shift) % 12] for j in range(8)) for i in range(n)]


@pytest.fixture
def ref(tmp_path):
    (tmp_path / "ref.txt").write_text("\n\n".join(texts(30)))
    np.save(tmp_path / "ref.npy", np.random.default_rng(0).normal(size=(40, 2)))
    return tmp_path


def audit(tmp_path: Path, *args: str):
    """``modelcollapse audit ARGS`` in this process, from ``tmp_path`` (so messages show the relative names)."""
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        return CliRunner().invoke(main, ["audit", *args])
    finally:
        os.chdir(cwd)


def one_error(result, code: int = 2) -> str:
    assert result.exit_code == code, (result.output, result.exception)
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def cli(tmp_path: Path, *args: str, env=(), limit_bytes: int | None = None) -> subprocess.CompletedProcess:
    """``modelcollapse ARGS`` as a separate process (optionally under an address-space limit, as ``ulimit -v``)."""
    limit = (lambda: resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))) if limit_bytes else None
    return subprocess.run(
        [sys.executable, "-m", "modelcollapse", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **dict(env)},
        preexec_fn=limit,
        timeout=300,
    )


# -- records are bounded ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, line",
    [
        ("big.txt", b"word " * 10_000_000),  # one 50 MB line
        ("para.txt", b"word word word word\n" * 2_500_000),  # one 50 MB paragraph
        ("big.jsonl", b'{"text": "' + b"w" * 50_000_000 + b'"}\n'),
    ],
)
def test_a_50_mb_record_is_refused_under_a_3_gb_address_space_limit(ref, name, line):
    (ref / name).write_bytes(line)
    done = cli(ref, "audit", "ref.txt", name, "--out", "a", *FAST, limit_bytes=3 << 30)
    where = "line 1 (a paragraph)" if name == "para.txt" else "line 1"
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr == (
        f"error: {name} {where} holds a record over 1000000 bytes (--max-record-bytes); raise "
        "--max-record-bytes or split the record.\n"
    )
    assert not (ref / "a").exists()


# -- memory is bounded whatever the input: a real address-space limit --------------------------------------------------
# Thread pools reserve address space they never touch (glibc arenas, BLAS buffers, Arrow's allocator): pinned here, so
# that the limit measures what the audit holds, and a table audit runs under 1 GB (2 GB otherwise).
LEAN = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
    "ARROW_DEFAULT_MEMORY_POOL": "system",
}


def ended_cleanly(done: subprocess.CompletedProcess) -> list[str]:
    """Exit 0, 1 or 2 (never a kernel kill, -9, or an abort, -6: a Rust panic is exit 134 in a shell); an error is one
    line. Returns stderr's lines."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode in (0, 1, 2), (done.returncode, done.stderr[-2000:])
    assert done.returncode == 0 or (len(lines) == 1 and lines[0].startswith("error: ")), done.stderr[-2000:]
    return lines


def test_a_sample_of_long_records_stops_at_its_byte_budget_under_a_3_gb_limit(ref):
    """70 records just under 1 MB (under the record cap): the old bound was --max-records x --max-record-bytes (10
    GB); the sample now stops at --max-sample-bytes (64 MB) while reading, before the audit's per-record work, which
    took the old audit past 3 GB to an abort in the tokenizer."""
    record = (b"ab cd ef gh " * 83_000)[:999_000]
    with open(ref / "long.txt", "wb") as f:
        for i in range(70):
            f.write(bytes([97 + i % 26]) + record + b"\n\n")
    done = cli(ref, "audit", "ref.txt", "long.txt", "--out", "a", *FAST, env=LEAN, limit_bytes=3 << 30)
    assert ended_cleanly(done) == [
        "error: long.txt: a sample of up to 10000 records (--max-records) grew past 64000000 bytes of text at record "
        "65 (--max-sample-bytes); lower --max-records or raise --max-sample-bytes."
    ]
    assert not (ref / "a").exists()


def big_csv(path: Path, rows: int) -> None:
    block = b"".join(b"%d,%d,%d,%d\n" % (i % 7, i % 5, i % 3, i % 11) for i in range(1000))
    with open(path, "wb") as f:
        f.write(b"a,b,c,d\n" + block * (rows // 1000))


def big_parquet(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    i = np.arange(1_000_000)
    chunk = pa.table({c: pa.array(i % m) for c, m in zip("abcd", (7, 5, 3, 11))})
    with pq.ParquetWriter(path, chunk.schema) as writer:
        for _ in range(rows // 1_000_000):
            writer.write_table(chunk)


@pytest.mark.parametrize(
    "name, write, rows", [("big.csv", big_csv, 12_000_000), ("big.parquet", big_parquet, 10_000_000)]
)
def test_a_big_table_is_streamed_and_audited_under_a_1_gb_limit(ref, name, write, rows):
    """96 MB of csv (or 10^7 parquet rows): read whole, the old audit held them several times over as int64 and
    float64 and failed (MemoryError, exit 1); streamed in blocks, the sample is gathered in a second pass."""
    np.save(ref / "ref4.npy", np.random.default_rng(0).normal(size=(40, 4)))
    write(ref / name, rows)
    done = cli(
        ref, "audit", "ref4.npy", name, "--out", "a", *FAST, "--max-records", "200", env=LEAN, limit_bytes=1 << 30
    )
    ended_cleanly(done)
    assert done.returncode == 0, done.stderr[-2000:]
    audited = json.loads((ref / "a" / "audit.json").read_text())
    assert [(c["n"], c["read"]) for c in audited["candidates"]] == [(200, rows)]


def test_a_50_mb_csv_row_is_refused_under_a_1_gb_limit(ref):
    (ref / "wide.csv").write_bytes(b",".join(b"c%d" % i for i in range(6_000_000)) + b"\n")
    done = cli(ref, "audit", "ref.npy", "wide.csv", "--out", "a", *FAST, env=LEAN, limit_bytes=1 << 30)
    assert ended_cleanly(done) == [
        "error: wide.csv holds a row over 1000000 bytes (--max-record-bytes); "
        "raise --max-record-bytes or split the row."
    ]


def test_a_table_sample_over_the_byte_budget_is_refused_before_it_is_read(ref):
    np.save(ref / "wide.npy", np.zeros((100, 100_000)))  # 80 MB of rows: over the 64 MB budget
    done = cli(ref, "audit", "ref.npy", "wide.npy", "--out", "a", *FAST, env=LEAN, limit_bytes=1 << 30)
    assert ended_cleanly(done) == [
        "error: wide.npy: a sample of up to 10000 records (--max-records) of 100000 values a row would take 80000000 "
        "bytes as float64, over 64000000 (--max-sample-bytes); lower --max-records or raise --max-sample-bytes."
    ]


def test_the_sample_budget_holds_in_python_too_and_names_the_keyword(tmp_path):
    import modelcollapse as mc

    (tmp_path / "c.txt").write_text("\n\n".join(texts(20)))
    with pytest.raises(mc.ConfigError, match=r"at record \d+ \(max_sample_bytes\); lower max_records or raise"):
        mc.audit(texts(20), [str(tmp_path / "c.txt")], max_sample_bytes=500, lm="none", repeats=3)


def test_a_long_record_is_embedded_from_a_prefix_with_the_same_tokens():
    """The embedder reads 256 word pieces; a record over 100,000 characters is cut before the tokenizer (a 1 MB
    record took 230 MB and 11 s to tokenize whole): the same embedding, bit for bit."""
    from modelcollapse.chains.metrics import _embedder, embed, embedding_text

    words = np.random.default_rng(0).choice("the cat sat on a mat; naïve étoile 東京 ran... ok!!".split(), 30_000)
    text = " ".join(words)
    assert len(embedding_text(text)) < 10_000 < 100_000 < len(text)
    whole = _embedder().encode([text], normalize_embeddings=True, batch_size=32)
    assert np.array_equal(embed([text]), np.asarray(whole, np.float32))


def test_the_record_cap_is_a_flag(ref):
    (ref / "cand.txt").write_text("\n\n".join(texts(10)) + "\n\n" + "word " * 100)
    assert "cand.txt line 21 holds a record over 400 bytes" in one_error(
        audit(ref, "ref.txt", "cand.txt", "--out", "a", "--max-record-bytes", "400", *FAST)
    )
    assert "--max-record-bytes must be >= 1; got 0." in one_error(
        audit(ref, "ref.txt", "ref.txt", "--out", "a", "--max-record-bytes", "0", *FAST)
    )


# -- text fields are strings -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, named",
    [(12345, "a number"), (None, "null"), (["a", "b"], "a list"), ({"a": 1}, "an object"), (True, "a boolean")],
)
def test_a_text_field_that_is_not_a_string_names_the_line(ref, value, named):
    lines = [{"text": t} for t in texts(10)]
    lines[2] = {"text": value}
    (ref / "cand.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert one_error(audit(ref, "ref.txt", "cand.jsonl", "--out", "a", *FAST)) == (
        f"error: cand.jsonl line 3: 'text' (--field) must be a string (text); got {named}."
    )


def test_a_parquet_text_column_with_a_null_names_the_row(ref):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": [*texts(5), None, *texts(5)]}), ref / "cand.parquet")
    assert one_error(audit(ref, "ref.txt", "cand.parquet", "--out", "a", *FAST)) == (
        "error: cand.parquet row 5: 'text' (--field) must be a string (text); got null."
    )


# -- inputs large enough for every indicator -------------------------------------------------------------------------
def test_a_one_record_candidate_names_the_minimum(ref):
    np.save(ref / "one.npy", np.zeros((1, 2)))
    assert one_error(audit(ref, "ref.npy", "one.npy", "--out", "a", *FAST)) == (
        "error: candidate one.npy holds 1 record; the audit needs at least 6 (the k-NN indicators need k + 1, k = 5)."
    )
    np.save(ref / "five.npy", np.zeros((11, 2)))
    assert one_error(audit(ref, "five.npy", "ref.npy", "--out", "a", *FAST)) == (
        "error: reference five.npy holds 11 records; the audit needs at least 12 (two halves of 6 for the k-NN "
        "indicators' null, k = 5)."
    )
    assert not (ref / "a").exists()


# -- arrays that are not numeric .npy files --------------------------------------------------------------------------
def _object(path):
    np.save(path, np.array([{"a": 1}] * 20, dtype=object), allow_pickle=True)


def _npz(path):
    with open(path, "wb") as f:
        np.savez(f, x=np.zeros((20, 2)))


@pytest.mark.parametrize(
    "write, message",
    [
        (_object, "bad.npy is not a readable numeric .npy array: it holds Python objects."),
        (
            lambda p: p.write_bytes(os.urandom(64)),
            "bad.npy is not a .npy file (it does not start with numpy's magic bytes).",
        ),
        (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00garbage"), "bad.npy is not a readable numeric .npy array:"),
        (_npz, "bad.npy is an .npz archive (zip), not a .npy array; save one array with numpy.save."),
        (
            lambda p: np.save(p, np.array(["a", "b"] * 10)),
            "bad.npy must hold a numeric array of records (bool, int or "
            "float, at least 1-D); got dtype <U1, shape (20,).",
        ),
    ],
)
def test_an_array_file_that_is_not_numeric_npy_is_one_clear_line(ref, write, message):
    write(ref / "bad.npy")
    assert one_error(audit(ref, "ref.npy", "bad.npy", "--out", "a", *FAST)).startswith(f"error: {message}")


# -- run-directory specs ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from modelcollapse.engine.plan import validate
    from modelcollapse.engine.runner import execute

    root = tmp_path_factory.mktemp("rundir")
    execute(
        validate(
            {
                "name": "g",
                "replicates": 3,
                "data": {"kind": "gaussian", "dim": 2},
                "model": {"kind": "gaussian"},
                "loop": {"generations": 2, "samples": 40},
            }
        ),
        root / "r",
        quiet=True,
    )
    np.save(root / "ref.npy", np.random.default_rng(0).normal(size=(40, 2)))
    return root


@pytest.mark.parametrize(
    "spec, message",
    [
        ("r:generation=1:replicate=999", "r :replicate must be in 0..2 (the run has 3 replicates); got 999."),
        ("r:generation=1:replicate=-1", "r :replicate must be in 0..2 (the run has 3 replicates); got -1."),
        ("r:generation=5", "r has no generation 5 (arm 'g': generations 0..1 completed)."),
        ("r:generation=1:samples=0", "r :samples must be >= 1; got 0."),
        ("r:generation=x", "r: generation, replicate and samples must be integers; got {'generation': 'x'}."),
        ("r:generation=1:arm=zz", "r :arm must be one of"),
    ],
)
def test_every_run_directory_spec_gets_its_own_message(run_dir, spec, message):
    assert one_error(audit(run_dir, "ref.npy", spec, "--out", "a", *FAST)).startswith(f"error: {message}")


def test_a_run_with_plug_ins_is_audited_with_trust_code(tmp_path):
    """The message about plug-ins names ``--trust-code``; ``audit`` has it, and with it the audit runs."""
    (tmp_path / "plug.py").write_text(
        "import modelcollapse as mc\n\n@mc.metric('first_mean')\n"
        "def first_mean(ctx):\n    return ctx.samples[..., 0].mean(-1)\n"
    )
    run = CliRunner().invoke(
        main,
        [
            "run",
            "gaussian-replace",
            "--out",
            str(tmp_path / "r"),
            "--quiet",
            "--no-report",
            "--set",
            "replicates=2",
            "--set",
            "loop.generations=2",
            "--set",
            "data.dim=2",
            "--set",
            "loop.samples=40",
            "--set",
            "metrics=[mean, first_mean]",
            "--plugin",
            str(tmp_path / "plug.py"),
            "--trust-code",
        ],
    )
    assert run.exit_code == 0, run.output
    np.save(tmp_path / "ref.npy", np.random.default_rng(0).normal(size=(40, 2)))
    refused = one_error(audit(tmp_path, "ref.npy", "r:generation=1", "--out", "a", *FAST))
    assert "names Python code" in refused or "would import and run Python code" in refused
    assert "pass --trust-code" in refused
    result = audit(tmp_path, "ref.npy", "r:generation=1", "--out", "a", "--trust-code", *FAST)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "audit.json").is_file()


# -- one whole audit or none -----------------------------------------------------------------------------------------
def test_a_killed_audit_leaves_the_previous_audit_whole_and_the_next_cleans_up(ref):
    """``MODELCOLLAPSE_FAULT=rename:2`` SIGKILLs the audit after it wrote ``audit.parquet`` and before
    ``audit.json``: on main that left a new parquet beside the old json, and temporary files no rerun removed."""
    np.save(ref / "cand.npy", 0.5 * np.random.default_rng(1).normal(size=(30, 2)))
    args = ["audit", "ref.npy", "cand.npy", "--out", "a", "--repeats", "3"]
    killed = cli(ref, *args, env={"MODELCOLLAPSE_FAULT": "rename:2"})
    assert killed.returncode == -signal.SIGKILL
    assert sorted(p.name for p in (ref / "a").iterdir()) == [".lock"]  # a first audit killed: none
    assert cli(ref, *args).returncode == 0
    before = {p.name: p.read_bytes() for p in (ref / "a").iterdir() if p.name != ".lock"}
    assert sorted(before) == ["audit.json", "audit.parquet", "report.html", "scores.parquet"]
    killed = cli(ref, *args, "--seed", "1", env={"MODELCOLLAPSE_FAULT": "rename:2"})
    assert killed.returncode == -signal.SIGKILL
    assert {p.name: p.read_bytes() for p in (ref / "a").iterdir() if p.name != ".lock"} == before  # seed 0, whole
    assert [p.name for p in ref.glob(".a.audit-*")]  # the killed one's temporary folder, beside
    assert cli(ref, *args, "--seed", "1").returncode == 0
    assert json.loads((ref / "a" / "audit.json").read_text())["options"]["seed"] == 1
    assert not list(ref.glob(".a.audit-*"))  # removed by the next audit


def test_an_audit_refuses_an_out_folder_holding_other_files(ref):
    (ref / "mine").mkdir()
    (ref / "mine" / "notes.txt").write_text("keep me")
    assert one_error(audit(ref, "ref.npy", "ref.npy", "--out", "mine", *FAST)) == (
        "error: --out 'mine' holds files that are not an audit (no audit.json); an audit replaces its folder as a "
        "whole, so choose a new or empty --out."
    )
    assert (ref / "mine" / "notes.txt").read_text() == "keep me"


def test_the_record_cap_holds_in_python_too_and_names_the_keyword():
    import modelcollapse as mc

    with pytest.raises(
        mc.ConfigError,
        match=r"^candidates\[0\] holds a record over 2000 bytes \(max_record_bytes\); "
        r"raise max_record_bytes or split the record\.$",
    ):
        mc.audit(texts(20), [[*texts(9), "x" * 3000]], max_record_bytes=2000, lm="none", repeats=3)
