"""Whole-corpus text inputs (``audit/corpora.py``): ``.jsonl.gz``, a folder of parquet shards and a Hugging Face
``save_to_disk`` folder (written here by hand with pyarrow, as ``datasets`` lays it out) read the same records as the
``.jsonl`` they were made from, are sampled the same way, and ``--keep`` writes them back in their own format."""

import gzip
import json

import numpy as np
import pytest
from click.testing import CliRunner

from modelcollapse.audit.corpora import write_without
from modelcollapse.audit.inputs import read_input, text_stream
from modelcollapse.cli import main

_RNG = np.random.default_rng(0)
_WORDS = ["".join(_RNG.choice(list("abcdefghijklmnopqrstuvwxyz"), 6)) for _ in range(400)]
TEXTS = [" ".join(_RNG.choice(_WORDS, 8 + i % 5)) for i in range(95)]  # letters only: the audit's words


def save_to_disk(folder, texts, shards=2):
    """A ``datasets`` ``save_to_disk`` folder of one split: Arrow IPC stream files ``data-0000i-of-0000n.arrow``
    (columns text and idx), ``dataset_info.json`` with the features, ``state.json`` listing the files."""
    import pyarrow as pa

    folder.mkdir()
    names = [f"data-{i:05d}-of-{shards:05d}.arrow" for i in range(shards)]
    for name, part in zip(names, np.array_split(np.arange(len(texts)), shards)):
        table = pa.table({"text": [texts[i] for i in part], "idx": part.astype(np.int64)})
        with pa.OSFile(str(folder / name), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=10)
    features = {"text": {"dtype": "string", "_type": "Value"}, "idx": {"dtype": "int64", "_type": "Value"}}
    (folder / "dataset_info.json").write_text(json.dumps({"citation": "", "description": "", "features": features}))
    (folder / "state.json").write_text(
        json.dumps(
            {
                "_data_files": [{"filename": n} for n in names],
                "_fingerprint": "0123456789abcdef",
                "_format_columns": None,
                "_format_kwargs": {},
                "_format_type": None,
                "_output_all_columns": False,
                "_split": "train",
            }
        )
    )
    return folder


@pytest.fixture
def corpora(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    lines = "".join(json.dumps({"text": t, "n": i}) + "\n" for i, t in enumerate(TEXTS))
    (tmp_path / "c.jsonl").write_text(lines)
    with gzip.open(tmp_path / "c.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(lines)
    (tmp_path / "shards" / "part=a").mkdir(parents=True)
    for i, part in enumerate(np.array_split(np.arange(len(TEXTS)), 3)):
        pq.write_table(
            pa.table({"text": [TEXTS[j] for j in part]}), tmp_path / "shards" / "part=a" / f"{i:03d}.parquet"
        )
    save_to_disk(tmp_path / "hf", TEXTS)
    return {name: tmp_path / name for name in ("c.jsonl", "c.jsonl.gz", "shards", "hf")}


def test_each_format_reads_the_records_of_the_jsonl(corpora):
    """Streamed whole, every format gives the 95 texts in order; read through a reservoir sample of 40 (the same
    seed and input position), every format keeps the same 40."""
    for name, path in corpora.items():
        assert list(text_stream(path, "text")) == TEXTS, name
    samples = {name: read_input(str(p), max_records=40, seed=3, index=1) for name, p in corpora.items()}
    assert all(d.kind == "text" and d.seen == 95 and d.n == 40 for d in samples.values())
    assert len({tuple(d.records) for d in samples.values()}) == 1


def test_keep_writes_each_format_less_the_dropped_records(corpora, tmp_path):
    """``write_without`` drops exactly the records at the given positions and keeps the format (a gzip file, a
    folder of shards with the same relative names, a save_to_disk folder that reads again)."""
    drop = {0, 7, 31, 32, 94}
    want = [t for i, t in enumerate(TEXTS) if i not in drop]
    for name in ("c.jsonl.gz", "shards", "hf"):
        dest = write_without(corpora[name], drop, tmp_path / "kept" / name)
        assert list(text_stream(dest, "text")) == want, name
    with gzip.open(tmp_path / "kept" / "c.jsonl.gz", "rt") as f:
        assert f.readline() == json.dumps({"text": TEXTS[1], "n": 1}) + "\n"
    assert sorted(p.name for p in (tmp_path / "kept" / "shards" / "part=a").iterdir()) == [
        "000.parquet",
        "001.parquet",
        "002.parquet",
    ]
    assert json.loads((tmp_path / "kept" / "hf" / "state.json").read_text())["_split"] == "train"


def test_bad_corpora_exit_2(corpora, tmp_path):
    """A DatasetDict folder names its splits; a gzip line without the field names the line and --field."""
    (tmp_path / "dd").mkdir()
    (tmp_path / "dd" / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    with gzip.open(tmp_path / "bad.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": "fine text here"}) + "\n" + json.dumps({"body": "x"}) + "\n")
    for path, message in (
        (tmp_path / "dd", "is a Hugging Face DatasetDict (splits train, test); audit one split's"),
        (tmp_path / "bad.jsonl.gz", "bad.jsonl.gz line 2 must be a JSON object with key 'text' (--field)."),
    ):  # the message of .jsonl: one reader
        result = CliRunner().invoke(
            main, ["audit", str(corpora["c.jsonl"]), str(path), "--out", str(tmp_path / "o"), "--lm", "none"]
        )
        assert result.exit_code == 2 and message in result.output, result.output


def test_audit_of_a_save_to_disk_folder_keeps_it_in_its_format(corpora, tmp_path):
    """Through the CLI: a save_to_disk candidate whose records 40..49 repeat 0..9 against the .jsonl.gz reference;
    scores.parquet places every record by its position, flags exactly the repeats exact_dup, and --keep writes a
    save_to_disk folder that reads back as the first 40 records."""
    import pandas as pd

    save_to_disk(tmp_path / "cand", TEXTS[:40] + TEXTS[:10], shards=3)
    result = CliRunner().invoke(
        main,
        [
            "audit",
            str(corpora["c.jsonl.gz"]),
            str(tmp_path / "cand"),
            "--out",
            str(tmp_path / "o"),
            "--lm",
            "none",
            "--repeats",
            "3",
            "--keep",
            str(tmp_path / "k"),
        ],
    )
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(tmp_path / "o" / "scores.parquet")
    cand = scores[scores.source == str(tmp_path / "cand")]
    assert cand.record.tolist() == list(range(50))
    assert cand.loc[cand.flag.str.contains("exact_dup"), "record"].tolist() == list(range(40, 50))
    assert cand.loc[cand.record >= 40, "dup_cluster"].tolist() == list(range(10))
    assert list(text_stream(tmp_path / "k" / "cand", "text")) == TEXTS[:40]
