"""Whole-corpus statistics (audit/whole.py): planted duplicate shares recovered exactly over every record of a corpus
larger than --max-records, the HyperLogLog within its stated error, and the block in audit.json, the summary and
the page."""

import json

import numpy as np
import pytest

from modelcollapse.audit import audit
from modelcollapse.audit.indicators import minhash, near_duplicate_share, words_of
from modelcollapse.audit.whole import hll_count, hll_registers, mix, whole_corpus

WORDS = [f"w{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}x{i}" for i in range(3000)]


def planted(n_base: int, n_exact: int, n_near: int, seed: int = 0) -> tuple[list[str], int, int]:
    """``n_base`` unrelated 40-word records, ``n_exact`` copies of some (case and spacing changed: the same
    normalized text) and ``n_near`` near copies (last word changed: Jaccard of 5-gram sets 35/37), shuffled.
    Returns the records, the exact-duplicate count and the count of records with a near duplicate."""
    rng = np.random.default_rng(seed)
    base = [" ".join(rng.choice(WORDS, 40)) for _ in range(n_base)]
    exact_src = rng.choice(n_base, n_exact, replace=False)
    near_src = rng.choice(np.setdiff1d(np.arange(n_base), exact_src), n_near, replace=False)
    copies = ["  " + base[i].upper().replace(" ", "   ") for i in exact_src]
    near = [base[i].rsplit(" ", 1)[0] + f" changed{k}" for k, i in enumerate(near_src)]
    records = base + copies + near
    order = rng.permutation(len(records))
    return [records[i] for i in order], n_exact, 2 * n_exact + 2 * n_near


def test_planted_shares_recovered_exactly_over_the_whole_corpus(tmp_path):
    # 6x the sample of max_records: the per-record embeddings (MiniLM on the sample and the reference) are the cost
    records, exact, near = planted(300, 18, 12)
    n = len(records)
    path = tmp_path / "cand.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in records))
    ref = tmp_path / "ref.jsonl"
    ref.write_text("".join(json.dumps({"text": t}) + "\n" for t in planted(45, 0, 0, seed=1)[0]))
    result = audit(str(ref), [str(path)], max_records=55, lm="none", repeats=3, out=tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "audit.json").read_text())
    block = doc["candidates"][0]["whole_corpus"]
    assert block["records"] == n
    assert block["exact_duplicates"] == pytest.approx(exact / n, abs=1e-12)
    assert block["near_duplicates"] == pytest.approx(near / n, abs=1e-12)
    assert block["length"]["q50"] == 40.0
    assert "whole_corpus" not in doc["reference"]  # 45 records <= max_records: the sample is the corpus
    assert doc["candidates"][0]["n"] == 55  # the calibrated indicators stay on the sample
    assert f"whole corpus {path}: {n} records" in result.summary()
    page = (tmp_path / "out" / "report.html").read_text()
    assert 'id="whole"' in page and f"{n:,}" in page


def test_near_duplicates_agree_with_the_sample_indicator_on_the_same_records():
    records, _, _ = planted(300, 20, 25, seed=3)
    sig = minhash([words_of(t) for t in records])
    assert whole_corpus(records)["near_duplicates"] == near_duplicate_share(sig)


def test_exact_duplicates_match_a_set_and_distinct_n_is_within_the_hyperloglog_error():
    rng = np.random.default_rng(5)
    records = [" ".join(rng.choice(WORDS[:400], int(rng.integers(1, 30)))) for _ in range(3000)]
    records += records[:100]
    stats = whole_corpus(records)
    normal = [" ".join(t.lower().split()) for t in records]
    assert stats["exact_duplicates"] == pytest.approx(1 - len(set(normal)) / len(records), rel=1e-12)
    for n in (1, 2, 3):
        grams = [tuple(w[i : i + n]) for w in map(words_of, records) for i in range(len(w) - n + 1)]
        assert stats[f"distinct_{n}"] == pytest.approx(len(set(grams)) / len(grams), rel=4 * 0.0081)
    counts = {}
    for w in (w for t in records for w in words_of(t)):
        counts[w] = counts.get(w, 0) + 1
    assert stats["missing_mass"] == sum(c == 1 for c in counts.values()) / sum(counts.values())


@pytest.mark.parametrize("n", [50, 20_000, 1_000_000])
def test_hyperloglog_within_four_standard_errors(n):
    registers = hll_registers(mix(np.arange(n, dtype=np.uint64) + np.uint64(7)))
    assert hll_count(registers) == pytest.approx(n, rel=4 * 1.04 / 128)


def test_sample_only_and_small_inputs_have_no_block(tmp_path):
    records, _, _ = planted(40, 3, 3)
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in records))
    ref = tmp_path / "r.jsonl"
    ref.write_text("".join(json.dumps({"text": t}) + "\n" for t in planted(30, 0, 0, seed=1)[0]))
    assert audit(str(ref), [str(path)], max_records=35, lm="none", repeats=3, whole_corpus=False).whole == [None, None]
    small = audit(str(ref), [str(path)], lm="none", repeats=3)
    assert small.whole == [None, None]
    forced = audit(str(ref), [str(path)], lm="none", repeats=3, whole_corpus=True)
    assert [b["records"] for b in forced.whole] == [30, len(records)]
