"""LM scoring as executor shards (``audit/lm.py``): the per-record scores of ``executor=local, workers=2`` equal the
in-process ones bit for bit, and those equal scoring each pool's texts in one ``score_many`` call (the path before
shards). With the tiny local LM of ``test_audit_lm.py`` (a 1-layer GPT-2 over a word-level vocabulary), so the
tests take seconds.

Why shards are cut at batch boundaries: a row's scores depend on its batch's shape (padding width, rows), by up to
1e-4 nats here, so shards of arbitrary records would change the bits. A shard holds whole batches of the batching
the whole pool would get, and its worker forms exactly those batches again."""

import numpy as np
import pytest
from test_audit_lm import paragraphs, tiny_lm  # noqa: F401 (fixtures)

from modelcollapse.audit import lm
from modelcollapse.audit.indicators import Pool
from modelcollapse.engine.executors import ExecutorSpec
from modelcollapse.seeding import seed_for


def pools_of(paras):
    """A reference of 80 paragraphs and two candidates of 40: one shares 10 records with the reference, one holds a
    duplicate and a text of no scorable token (NaN scores)."""
    ref = paras[:80]
    texts = [ref, paras[80:110] + ref[:10], paras[110:148] + [paras[110], "?"]]
    return [Pool("text", t, np.zeros((len(t), 1))) for t in texts]


def scored(pools, folder, executor=None, progress=None, lm_records=None):
    lm._SCORES.clear()
    run = lm.annotate(
        pools, lm=str(folder), watermark_key=None, lm_records=lm_records, seed=3, executor=executor, progress=progress
    )
    return run, [np.c_[p.extra["log_ppl"], p.extra["machine"]] for p in pools]


def recorder(calls, steps):
    """A phase helper (the audit's ``phase(unit, total)``) that records its bars in ``calls`` and steps in ``steps``."""

    class Bar:
        def __init__(self, unit, total):
            calls.append((unit, total))

        def __enter__(self):
            return steps.append

        def __exit__(self, *exc):
            return False

    return Bar


@pytest.fixture
def small_shards(monkeypatch):
    """Shards of at least 512 padded tokens: one batch of at most 1,024 each, so the workers split the pools."""
    monkeypatch.setattr(lm, "SHARD_TOKENS", 512)


def test_two_workers_give_the_in_process_scores_bit_for_bit(tiny_lm, paragraphs, small_shards):  # noqa: F811
    """In-process against a pool of 2 spawned workers (one torch thread each): every record's log_ppl and machine
    score identical (NaN at the same records: the unscorable text, and none elsewhere), over more shards than pools,
    and the same counts of records and tokens. The in-process scores equal one ``score_many`` call over each pool's
    new texts, as the driver scored them before shards (and the cache: the candidate's 10 reference records are not
    scored again)."""
    from modelcollapse.plugins.detectors import score_many

    folder, tok = tiny_lm
    run1, here = scored(pools_of(paragraphs), folder)
    calls, steps = [], []
    run2, there = scored(pools_of(paragraphs), folder, ExecutorSpec("local", workers=2), recorder(calls, steps))
    assert run1["shards"] == run2["shards"] > len(here)
    assert calls == [("LM scoring", run2["shards"])] and steps == [1] * run2["shards"]  # the bar, a step a shard
    assert (run1["records_scored"], run1["tokens"]) == (run2["records_scored"], run2["tokens"])
    assert run1["records_scored"] == 80 + 30 + 39  # each distinct text once
    for a, b in zip(here, there):
        assert np.array_equal(a, b, equal_nan=True)
    assert np.isnan(here[2][-1]).all() and np.isfinite(here[0]).all() and np.isfinite(here[2][:-1]).all()
    # before shards: per pool, its texts not scored by an earlier pool, in one call
    model = lm.load(str(folder))[1]
    earlier = set()
    for i, (pool, values) in enumerate(zip(pools_of(paragraphs), here)):
        order = np.random.default_rng(seed_for(3, 3000 + i)).permutation(len(pool.records))  # annotate's order
        new = [t for t in dict.fromkeys(pool.records[j] for j in order) if t not in earlier and t != "?"]
        earlier.update(new)
        ids = [np.asarray(tok(t, add_special_tokens=False)["input_ids"][: lm.MAX_TOKENS], np.int64) for t in new]
        whole = score_many(ids, ["perplexity", "fast-detectgpt"], model=model, batch_size=256, max_tokens=1024)
        rows = [pool.records.index(t) for t in new]
        assert np.array_equal(values[rows, 0], -whole["perplexity"])
        assert np.array_equal(values[rows, 1], whole["fast-detectgpt"])


def test_a_worker_limits_its_torch_threads_and_keeps_the_bits(tiny_lm, paragraphs):  # noqa: F811
    """Two workers on this machine's cores take cores // 2 torch threads each (at least 1), Ray's unspecified
    workers one each; a shard scored with one thread has the bits of the same shard with the process's threads, and
    the process's thread count is restored."""
    import os

    import torch

    cores = len(os.sched_getaffinity(0))
    assert lm.worker_threads(ExecutorSpec("local", workers=2)) == max(1, cores // 2)
    assert lm.worker_threads(ExecutorSpec("ray")) == 1
    folder, _ = tiny_lm
    lm._SCORES.clear()
    shard = lm.plan(str(folder), [paragraphs[:40]], 1024)[0]
    ids = [i for _, i in shard]
    before = torch.get_num_threads()
    one = lm.score_shard(str(folder), 1024, 1, ids)
    assert torch.get_num_threads() == before
    torch.set_num_threads(max(2, before))
    try:
        many = lm.score_shard(str(folder), 1024, None, ids)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(one, many)


def test_progress_advances_once_per_shard(tiny_lm, paragraphs, small_shards):  # noqa: F811
    """In process too, the phase helper is asked for one "LM scoring" bar of as many steps as shards, each shard
    advancing it once; ``lm_records`` 20 a pool scores at most 60 records, in fewer shards."""
    folder, _ = tiny_lm
    calls, steps = [], []
    run, _ = scored(pools_of(paragraphs), folder, None, recorder(calls, steps))
    assert calls == [("LM scoring", run["shards"])] and steps == [1] * run["shards"]
    calls.clear(), steps.clear()
    few, _ = scored(pools_of(paragraphs), folder, None, recorder(calls, steps), lm_records=20)
    assert few["records_scored"] <= 60 and few["shards"] < run["shards"] and steps == [1] * few["shards"]


@pytest.mark.slow
def test_audit_through_the_cli_with_two_workers_equals_in_process(tiny_lm, paragraphs, tmp_path):  # noqa: F811
    """``modelcollapse audit --lm PATH --workers 2`` writes the in-process scores.parquet's log_ppl and machine
    columns bit for bit, and ``--quiet`` draws no bar (CliRunner's output holds no "audit: LM scoring")."""
    import json

    import pandas as pd
    from click.testing import CliRunner

    from modelcollapse.cli import main

    folder, _ = tiny_lm
    files = []
    for name, texts in (("ref", paragraphs[:60]), ("cand", paragraphs[60:90])):
        files.append(tmp_path / f"{name}.jsonl")
        files[-1].write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    frames = []
    for extra in ([], ["--executor", "local", "--workers", "2"]):
        lm._SCORES.clear()
        out = tmp_path / f"out{len(extra)}"
        result = CliRunner().invoke(
            main,
            ["audit", *map(str, files), "--out", str(out), "--lm", str(folder), "--repeats", "3", "--quiet", *extra],
        )
        assert result.exit_code == 0, result.output
        assert "LM scoring" not in result.output
        frames.append(pd.read_parquet(out / "scores.parquet"))
    assert frames[0].log_ppl.notna().sum() == 90
    for column in ("log_ppl", "machine"):
        assert np.array_equal(frames[0][column].to_numpy(), frames[1][column].to_numpy(), equal_nan=True)
