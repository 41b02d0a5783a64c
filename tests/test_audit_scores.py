"""Per-record scores (``audit/scores.py``): ``DIR/scores.parquet``, ``Audit.scores``, ``--id-field`` and ``--keep``."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import modelcollapse as mc
from modelcollapse.audit.indicators import words_of
from modelcollapse.audit.scores import COLUMNS
from modelcollapse.cli import main


def run_cli(*args):
    result = CliRunner().invoke(main, ["audit", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def tables(tmp_path):
    """A reference of 200 N(0, I) rows and a candidate of 120 whose rows 30..39 repeat rows 0..9 (and 50 repeats 0
    again): 11 exact duplicates of earlier rows; the same candidate as .npy and as .csv (with a header)."""
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(200, 3))
    cand = rng.normal(size=(120, 3))
    cand[30:40] = cand[:10]
    cand[50] = cand[0]
    np.save(tmp_path / "ref.npy", ref)
    np.save(tmp_path / "cand.npy", cand)
    (tmp_path / "cand.csv").write_text(
        "a,b,c\n" + "".join(",".join(repr(float(v)) for v in row) + "\n" for row in cand)
    )
    np.save(tmp_path / "ref_named.npy", ref)
    return tmp_path, ref, cand


def test_table_scores_keep_round_trip_and_cli_python_parity(tables):
    """scores.parquet has the contract's columns, one row per record read; the duplicated rows (and only they) carry
    exact_dup and name their group by the first member's record; --keep writes each candidate in its own format
    without exactly the flagged rows; ref_distance is the distance to the nearest reference row; mc.audit's
    Audit.scores equals the CLI's file."""
    tmp, ref, cand = tables
    run_cli(
        tmp / "ref.npy",
        tmp / "cand.npy",
        tmp / "cand.csv",
        "--out",
        tmp / "out",
        "--keep",
        tmp / "keep",
        "--repeats",
        "3",
    )
    scores = pd.read_parquet(tmp / "out" / "scores.parquet")
    assert tuple(scores.columns) == COLUMNS
    assert scores.groupby("source", sort=False).size().to_dict() == {
        "reference": 200,
        str(tmp / "cand.npy"): 120,
        str(tmp / "cand.csv"): 120,
    }
    npy = scores[scores.source == str(tmp / "cand.npy")]
    dup_rows = [*range(30, 40), 50]
    assert npy.loc[npy.flag != "", "record"].tolist() == dup_rows
    assert set(npy.loc[npy.flag != "", "flag"]) == {"exact_dup"}
    assert npy.set_index("record").loc[[0, 30, 50], "dup_cluster"].tolist() == [0, 0, 0]
    assert npy.set_index("record").loc[1, "dup_cluster"] == 1 and npy.set_index("record").loc[99, "dup_cluster"] == -1
    assert (npy.id == npy.record.astype(str)).all() and npy.length.isna().all()
    sd = ref.std(0, ddof=1)
    d = np.sqrt((((cand[:, None] - ref[None]) / sd) ** 2).sum(-1)).min(1)
    assert np.allclose(npy.ref_distance, d)
    kept = np.load(tmp / "keep" / "cand.npy")
    assert np.array_equal(kept, np.delete(cand, dup_rows, axis=0))
    csv_lines = (tmp / "keep" / "cand.csv").read_text().splitlines()
    assert csv_lines[0] == "a,b,c" and len(csv_lines) == 1 + 120 - len(dup_rows)
    assert np.allclose(np.loadtxt(tmp / "keep" / "cand.csv", delimiter=",", skiprows=1), kept)
    # a user filters with pandas: the unflagged records of a candidate are exactly what --keep wrote
    source = str(tmp / "cand.npy")  # noqa: F841 (read by the query as @source)
    clean = scores.query("source == @source and flag == ''").record.to_numpy()
    assert np.array_equal(cand[clean], kept)
    result = mc.audit(
        str(tmp / "ref.npy"), [str(tmp / "cand.npy"), str(tmp / "cand.csv")], repeats=3, keep=tmp / "keep2"
    )
    pd.testing.assert_frame_equal(result.scores, scores)
    assert np.array_equal(np.load(tmp / "keep2" / "cand.npy"), kept)


def test_objects_are_kept_as_what_was_read(tables):
    """An in-memory candidate (here a DataFrame) has no file format: --keep's Python twin writes its records read,
    less the flagged ones, as .npy, named by its argument."""
    tmp, ref, cand = tables
    result = mc.audit(ref, [pd.DataFrame(cand, columns=["a", "b", "c"])], repeats=3, keep=tmp / "k")
    assert result.scores.loc[result.scores.source == "candidates[0]", "flag"].ne("").sum() == 11
    assert np.array_equal(np.load(tmp / "k" / "candidates-0.npy"), np.delete(cand, [*range(30, 40), 50], axis=0))


@pytest.fixture(scope="module")
def paragraphs():
    from modelcollapse.plugins.data.corpora import sentence_paragraphs, wikipedia_articles

    paras = [p for _, t in wikipedia_articles()[:12] for p in sentence_paragraphs(t) if 60 <= len(p) <= 250]
    return [paras[i] for i in np.random.default_rng(0).permutation(len(paras))]


def test_text_scores_ids_and_keep_with_a_sampled_candidate(paragraphs, tmp_path):
    """A .jsonl candidate of 60 lines (a blank line among them) whose lines 40..44 repeat lines 0..4 and line 45 is
    line 6 with one word added, read through a reservoir sample of 50 (--max-records): every row's record is the
    line's position (its id, --id-field uid, says so), its text is the one read there; the flags are exact_dup on
    the repeats and near_dup on them and line 45's pair where sampled; --keep drops exactly the flagged lines and
    keeps every other line verbatim (unsampled ones too); the same candidate as .txt keeps the same paragraphs."""
    ref = paragraphs[:80]
    cand = paragraphs[80:120] + paragraphs[80:85] + [paragraphs[86] + " indeed"] + paragraphs[120:134]
    (tmp_path / "ref.jsonl").write_text(
        "".join(json.dumps({"text": t, "uid": f"r{i}"}) + "\n" for i, t in enumerate(ref))
    )
    lines = [json.dumps({"uid": f"c{i}", "text": t}) + "\n" for i, t in enumerate(cand)]
    (tmp_path / "cand.jsonl").write_text("".join(lines[:10]) + "\n" + "".join(lines[10:]))
    (tmp_path / "cand.txt").write_text("\n\n".join(cand) + "\n")
    run_cli(
        tmp_path / "ref.jsonl",
        tmp_path / "cand.jsonl",
        tmp_path / "cand.txt",
        "--out",
        tmp_path / "out",
        "--lm",
        "none",
        "--repeats",
        "3",
        "--max-records",
        "50",
        "--id-field",
        "uid",
        "--keep",
        tmp_path / "keep",
    )
    scores = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    js = scores[scores.source == str(tmp_path / "cand.jsonl")]
    assert len(js) == 50 and js.record.is_monotonic_increasing and js.record.max() < 60
    assert (js.id == "c" + js.record.astype(str)).all()
    by = js.set_index("record")
    for r in range(40, 45):
        if r in by.index:
            assert "exact_dup" in by.loc[r, "flag"] and by.loc[r, "dup_cluster"] == (
                r - 40 if r - 40 in by.index else r
            )
    if 45 in by.index and 6 in by.index:
        assert by.loc[45, "flag"] == "near_dup" and by.loc[45, "near_dup_cluster"] == 6 and by.loc[6, "flag"] == ""
    assert (by.length == [len(words_of(cand[r])) for r in by.index]).all()
    flagged = set(js.loc[js.flag != "", "record"])
    assert flagged and flagged <= set(range(40, 46))
    assert (tmp_path / "keep" / "cand.jsonl").read_text() == "".join(
        line for i, line in enumerate(lines) if i not in flagged
    )
    txt = scores[scores.source == str(tmp_path / "cand.txt")]
    assert (txt.id == txt.record.astype(str)).all()
    kept_txt = (tmp_path / "keep" / "cand.txt").read_text().strip().split("\n\n")
    assert kept_txt == [t for i, t in enumerate(cand) if i not in set(txt.loc[txt.flag != "", "record"])]


def test_id_field_missing_is_exit_2(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        "".join(json.dumps({"text": f"record number {i} here"}) + "\n" for i in range(20))
    )
    result = CliRunner().invoke(
        main,
        [
            "audit",
            str(tmp_path / "a.jsonl"),
            str(tmp_path / "a.jsonl"),
            "--out",
            str(tmp_path / "o"),
            "--lm",
            "none",
            "--id-field",
            "uid",
        ],
    )
    assert result.exit_code == 2 and "line 1 must be a JSON object with key 'uid' (--id-field)" in result.output


def test_keep_refuses_a_file_or_the_candidates_own_folder(tables):
    """--keep naming the folder a candidate lies in (its file would be replaced) is exit 2 before any work, naming
    the flag; the candidate is untouched. In Python, keep naming a file is a ConfigError naming the argument."""
    tmp, _, cand = tables
    result = CliRunner().invoke(
        main, ["audit", str(tmp / "ref.npy"), str(tmp / "cand.npy"), "--out", str(tmp / "o"), "--keep", str(tmp)]
    )
    assert result.exit_code == 2 and f"--keep {tmp} holds candidate {tmp / 'cand.npy'}" in result.output, result.output
    assert np.array_equal(np.load(tmp / "cand.npy"), cand) and not (tmp / "o").exists()
    with pytest.raises(mc.ConfigError, match=r"^keep .*cand\.csv is a file"):
        mc.audit(str(tmp / "ref.npy"), str(tmp / "cand.npy"), keep=tmp / "cand.csv")


@pytest.mark.parametrize("wrap", [list, lambda t: pd.DataFrame({"text": t}), pd.Series, np.array])
def test_positions_of_an_in_memory_sample_point_at_its_records(wrap):
    """A text object of 120 records, a quarter of them empty (dropped after the reservoir sample of 50): the
    replayed positions index exactly the records read, for a list, a DataFrame, a Series and an array of str."""
    from modelcollapse.audit.inputs import read_input
    from modelcollapse.audit.scores import locate

    texts = [f"alpha beta {i}" if i % 4 else "" for i in range(120)]
    d = read_input(wrap(texts), max_records=50, seed=1, index=2, name="x")
    where = locate(wrap(texts), d, index=2, seed=1, max_records=50, field="text")
    assert d.n < 50 and [texts[p] for p in where.positions] == list(d.records)
