"""ROC curves against closed forms, and the detectors' page built from real scores of a tiny random GPT-2."""

import json
import math

import numpy as np
import pytest

from modelcollapse.plugins.detectors import calibrate, roc_auc, roc_curve


def trapezoid(fpr, tpr) -> float:
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def test_roc_of_two_normals_has_area_phi_of_delta_over_root_two():
    """Real N(0, 1) against machine N(Δ, 1): AUC = P(M > R) = Φ(Δ/√2). With 2,000 scores a side the Hanley-McNeil
    standard error is about 0.007; the curve's area must lie within 4 of them, and equal the Mann-Whitney AUC."""
    rng = np.random.default_rng(0)
    n, delta = 2000, 1.0
    real, machine = rng.standard_normal(n), delta + rng.standard_normal(n)
    fpr, tpr, thresholds = roc_curve(real, machine)
    expected = 0.5 * (1 + math.erf(delta / 2))  # Φ(Δ/√2) = ½(1 + erf(Δ/2))
    q1, q2 = expected / (2 - expected), 2 * expected**2 / (1 + expected)
    se = math.sqrt((expected * (1 - expected) + (n - 1) * (q1 - expected**2) + (n - 1) * (q2 - expected**2)) / n**2)
    area = trapezoid(fpr, tpr)
    assert abs(area - expected) < 4 * se
    assert area == pytest.approx(roc_auc(real, machine), abs=1e-12)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0) and np.all(np.diff(thresholds) < 0)
    assert len(fpr) == 2 * n + 1  # continuous scores: every score its own vertex


def test_roc_with_exact_ties():
    """real {1, 1, 2}, machine {1, 2, 2}: P(M > R) = 4/9 and P(M = R) = 4/9, so AUC = 4/9 + ½·4/9 = 2/3; tied scores
    make diagonal segments, not steps."""
    fpr, tpr, thresholds = roc_curve([1, 1, 2], [1, 2, 2])
    assert thresholds.tolist() == [2.0, 1.0, -np.inf]
    assert fpr == pytest.approx([0, 1 / 3, 1]) and tpr == pytest.approx([0, 2 / 3, 1])
    assert trapezoid(fpr, tpr) == pytest.approx(2 / 3) == roc_auc([1, 1, 2], [1, 2, 2])
    fpr, tpr, _ = roc_curve([3, 3], [3, 3, 3])  # all tied: the chance diagonal, AUC ½
    assert fpr.tolist() == [0, 1] and tpr.tolist() == [0, 1]


def test_calibrated_operating_point_is_a_vertex_of_the_curve():
    rng = np.random.default_rng(1)
    cal, real, machine = rng.standard_normal(50), rng.standard_normal(40), 1.5 + rng.standard_normal(30)
    fpr, tpr, _ = roc_curve(real, machine)
    for target in (0.05, 0.1, 0.3):
        c = calibrate(cal, target, heldout=real)
        point = (c["measured_fpr"], float((machine > c["threshold"]).mean()))
        assert any(np.isclose(fpr, point[0]) & np.isclose(tpr, point[1])), (target, point)


def test_page_from_real_scores_of_a_tiny_model(tmp_path):
    """Real detector scores (a random 1-layer GPT-2; uniform random tokens as the 'real' side, its own samples at
    temperature 0.5 as the machine side) go through the benchmark's path: score, save, page. The page's table and
    detectors.json agree with roc_auc and calibrate on the saved scores."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("matplotlib")
    from transformers import GPT2Config, GPT2LMHeadModel

    from modelcollapse.analysis.detector_report import (
        build_detector_report,
        detector_scores,
        markdown_table,
        read_scores,
        write_scores,
    )

    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=32, vocab_size=256, bos_token_id=0, eos_token_id=0)
    ).eval()
    rng = np.random.default_rng(0)
    prompt = torch.as_tensor(rng.integers(0, 256, (12, 1)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        machine = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=True,
            top_k=0,
            temperature=0.5,
            max_new_tokens=15,
            min_new_tokens=15,
            pad_token_id=0,
        ).numpy()
    sets = {"calibration": rng.integers(0, 256, (12, 16)), "test": rng.integers(0, 256, (10, 16)), "machine": machine}
    scores = dict(detector_scores(sets, model=model, reference=model, lengths=(8, 16)))
    assert list(scores) == [(L, d) for L in (8, 16) for d in ("binoculars", "fast-detectgpt", "gltr", "perplexity")]
    write_scores(tmp_path, scores, [0.1, 0.25], note="tiny <model>")
    assert {k: {s: v.tolist() for s, v in d.items()} for k, d in read_scores(tmp_path).items()} == {
        k: {s: v.tolist() for s, v in d.items()} for k, d in scores.items()
    }

    page = build_detector_report(tmp_path).read_text()
    assert page.count("data:image/png;base64,") == 2 and "tiny &lt;model&gt;" in page
    for name in ("figures/roc.png", "figures/histograms.png", "detectors.json"):
        assert (tmp_path / name).stat().st_size > 0
    rows = json.loads((tmp_path / "detectors.json").read_text())
    assert len(rows) == 8 and rows[0]["n"] == {"calibration": 12, "test": 10, "machine": 12}
    for row in rows:
        s = scores[row["tokens"], row["detector"]]
        assert row["auc"] == roc_auc(s["test"], s["machine"])
        assert f"<td>{row['tokens']}</td><td>{row['detector']}</td><td>{row['auc']:.3f}</td>" in page
        for t, target in zip(row["thresholds"], (0.1, 0.25)):
            assert {k: t[k] for k in ("threshold", "target_fpr", "measured_fpr")} == calibrate(
                s["calibration"], target, heldout=s["test"]
            )
            assert t["tpr"] == (s["machine"] > t["threshold"]).mean()
    assert (
        markdown_table(rows).splitlines()[0]
        == "| tokens | detector | AUC | target FPR 0.1: measured FPR, TPR | target FPR 0.25: measured FPR, TPR |"
    )


def _split_of(sizes, block=8, eos=2):
    """A split as tokenized_splits cuts it: documents of ``sizes`` tokens (none of them ``eos``), each followed by
    ``eos``, joined and cut into consecutive blocks; and each block's first token's document, counted by position."""
    flat = np.concatenate([np.append(np.full(k, 10 + d), eos) for d, k in enumerate(sizes)])
    doc_of_token = np.repeat(np.arange(len(sizes)), np.asarray(sizes) + 1)
    n = len(flat) // block
    return flat[: n * block].reshape(n, block), doc_of_token[: n * block : block]


def test_block_documents_counts_the_end_of_text_tokens_before_each_block():
    from modelcollapse.plugins.data.text import block_documents

    blocks, expected = _split_of([3, 20, 7, 0, 40, 1, 15])  # an empty document is its eos alone
    assert block_documents(blocks, eos=2).tolist() == expected.tolist()


def test_random_pick_is_a_seeded_permutation_spread_over_the_split():
    """The benchmark's sets: 'random' is the first n of a seeded permutation (same seed, same rows; a smaller n is a
    prefix of a larger one's rows; n ≥ N gives every row once). On a split shaped like the Wikipedia validation split
    at 128-token blocks (10 articles of 23 to 153 blocks), the first 32 blocks come from 2 articles; 32 random ones from
    at least 6 for each of 20 seeds (the expected count is 8.6; P(< 6) is about 4e-4 a seed)."""
    from modelcollapse.analysis.detector_report import pick_rows
    from modelcollapse.errors import ConfigError
    from modelcollapse.plugins.data.text import block_documents
    from modelcollapse.seeding import seed_for

    def rng(seed):
        return np.random.default_rng(seed_for(seed, 0))

    a, b = pick_rows(722, 128, rng=rng(0)), pick_rows(722, 128, rng=rng(0))
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 128 and a.min() >= 0 and a.max() < 722
    assert pick_rows(722, 32, rng=rng(0)).tolist() == a[:32].tolist()
    assert pick_rows(722, 32, rng=rng(1)).tolist() != a[:32].tolist()
    assert sorted(pick_rows(50, 60, rng=rng(0)).tolist()) == list(range(50))
    assert pick_rows(722, 32, "first", rng=rng(0)).tolist() == list(range(32))
    with pytest.raises(ConfigError, match=r"^pick must be one of 'first', 'random'; got 'last'\.$"):
        pick_rows(722, 32, "last", rng=rng(0))

    blocks_per_article = [23, 120, 153, 82, 11, 41, 37, 103, 103, 49]
    blocks, _ = _split_of([8 * k - 1 for k in blocks_per_article])  # k blocks each, eos included
    docs = block_documents(blocks, eos=2)
    assert np.bincount(docs).tolist() == blocks_per_article
    assert len(np.unique(docs[pick_rows(len(blocks), 32, "first", rng=rng(0))])) == 2
    spans = [len(np.unique(docs[pick_rows(len(blocks), 32, rng=rng(s))])) for s in range(20)]
    assert min(spans) >= 6, spans
