"""The measures library (``modelcollapse.measures``): each kernel against a maintained library where one computes the
same quantity (scikit-learn, scipy), against a closed form, or under an invariance it must keep. And the surfaces:
the loop metrics, the audit indicators and the chain metrics give the kernels' numbers."""

import numpy as np
import pytest
from scipy import linalg, stats
from sklearn import metrics as skm
from sklearn.neighbors import NearestNeighbors

from modelcollapse import measures


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# -- Gaussians and Fréchet ---------------------------------------------------------------------------------------------
def test_sqrtm_psd_matches_scipy_and_squares_back(rng):
    a = rng.standard_normal((3, 5, 5))
    psd = a @ np.swapaxes(a, -1, -2)
    root = measures.sqrtm_psd(psd)
    np.testing.assert_allclose(root @ root, psd, atol=1e-10)
    np.testing.assert_allclose(root[1], linalg.sqrtm(psd[1]).real, atol=1e-8)


def test_gaussian_w2_sq_closed_forms():
    # 1-D, batched: (μ₁ − μ₂)² + (σ₁ − σ₂)²
    mu1, mu2 = np.array([[0.0], [1.0]]), np.array([[3.0], [1.0]])
    var1, var2 = np.array([[[4.0]], [[1.0]]]), np.array([[[1.0]], [[9.0]]])
    np.testing.assert_allclose(measures.gaussian_w2_sq(mu1, var1, mu2, var2), [9.0 + 1.0, 0.0 + 4.0])
    # commuting (diagonal) covariances: Σ (√a − √b)²
    a, b = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    assert measures.gaussian_w2_sq(np.zeros(3), a, np.zeros(3), b) == pytest.approx(1 + 0 + 4)


def fid_by_scipy(x, y):
    """The usual FID formula, ‖μx − μy‖² + tr(Σx + Σy − 2 (Σx Σy)^½), with scipy's matrix square root."""
    mx, my, cx, cy = x.mean(0), y.mean(0), np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    return float(((mx - my) ** 2).sum() + np.trace(cx + cy - 2 * linalg.sqrtm(cx @ cy).real))


def test_frechet_matches_the_scipy_formula_and_ignores_record_order(rng):
    x = rng.standard_normal((2, 400, 4)) @ rng.standard_normal((4, 4))
    y = rng.standard_normal((2, 300, 4)) + np.array([1.0, 0.0, -2.0, 0.5])
    got = measures.frechet_sq(x, y)
    assert got.shape == (2,)
    for r in range(2):
        assert got[r] == pytest.approx(fid_by_scipy(x[r], y[r]), rel=1e-9)
    shuffled = measures.frechet_sq(x[:, rng.permutation(400)], y[:, ::-1])
    np.testing.assert_allclose(shuffled, got, rtol=1e-10)
    mu, cov = measures.gaussian_fit(x)
    np.testing.assert_allclose(cov[0], np.cov(x[0], rowvar=False), rtol=1e-12)
    np.testing.assert_allclose(mu[1], x[1].mean(0))


# -- k-NN: distances, radii, PRDC --------------------------------------------------------------------------------------
def test_pairwise_sq_and_knn_radius_match_scikit_learn(rng):
    a, b = rng.standard_normal((2, 50, 3)), rng.standard_normal((2, 40, 3))
    d = measures.pairwise_sq(a, b)
    np.testing.assert_allclose(d[1], skm.pairwise.euclidean_distances(a[1], b[1], squared=True), atol=1e-12)
    radius = measures.knn_radius_sq(a, 4)
    neighbours = NearestNeighbors(n_neighbors=5).fit(a[0]).kneighbors(a[0])[0]  # itself, then four others
    np.testing.assert_allclose(radius[0], neighbours[:, 4] ** 2, rtol=1e-10)


def prdc_by_scikit_learn(real, fake, k):
    """Naeem et al. 2020's four numbers by scikit-learn's nearest neighbours, record by record."""
    real_r = NearestNeighbors(n_neighbors=k + 1).fit(real).kneighbors(real)[0][:, k]
    fake_r = NearestNeighbors(n_neighbors=k + 1).fit(fake).kneighbors(fake)[0][:, k]
    d = skm.pairwise.euclidean_distances(real, fake)  # (real, fake)
    return {
        "precision": (d <= real_r[:, None]).any(0).mean(),
        "recall": (d <= fake_r[None, :]).any(1).mean(),
        "density": (d <= real_r[:, None]).sum(0).mean() / k,
        "coverage": (d.min(1) <= real_r).mean(),
    }


def test_prdc_matches_scikit_learn_neighbours(rng):
    real = rng.standard_normal((3, 120, 2))
    fake = 0.6 * rng.standard_normal((3, 120, 2)) + 0.4
    got = measures.prdc(real, fake, 5)
    for r in range(3):
        want = prdc_by_scikit_learn(real[r], fake[r], 5)
        for name in want:
            assert got[name][r] == pytest.approx(want[name]), name
    assert not np.allclose(got["precision"], got["recall"])


def test_prdc_is_blind_to_rigid_motions_and_record_order(rng):
    real, fake = rng.standard_normal((1, 80, 3)), rng.standard_normal((1, 80, 3)) * 0.5
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))  # a rotation (or reflection)
    moved = measures.prdc(real @ q + 5.0, fake[:, ::-1] @ q + 5.0, 3)
    base = measures.prdc(real, fake, 3)
    for name in base:
        assert moved[name][0] == pytest.approx(base[name][0]), name


def test_prdc_blocks_replicates_without_changing_values(rng, monkeypatch):
    from modelcollapse.measures import knn

    real, fake = rng.standard_normal((5, 30, 2)), rng.standard_normal((5, 30, 2))
    whole = measures.prdc(real, fake, 3)
    monkeypatch.setattr(knn, "PAIR_BUDGET", 1)  # one replicate a block
    for name, value in measures.prdc(real, fake, 3).items():
        np.testing.assert_array_equal(value, whole[name])


# -- n-grams, distinct-n, BLEU -----------------------------------------------------------------------------------------
def test_distinct_n_by_hand_and_order_free():
    sets = [[["a", "b", "a", "b"], ["c"]], [[1, 1, 1, 1]], [[]]]
    # set 0: unigrams a b a b c -> 3 of 5; set 1: 1 of 4; set 2: no n-gram -> 0
    np.testing.assert_allclose(measures.distinct_n(sets, 1), [3 / 5, 1 / 4, 0.0])
    assert measures.distinct_n([[["c"], ["a", "b", "a", "b"]]], 2)[0] == measures.distinct_n(sets[:1], 2)[0] == 2 / 3


def test_bleu_closed_forms():
    hyp = ["the", "cat", "sat", "on", "a", "mat"]
    assert measures.bleu(hyp, [hyp]) == 1.0
    # unigram precision 2/6; orders 2-4 add-one: (1+1)/(5+1), (0+1)/(4+1), (0+1)/(3+1); same length: no penalty
    ref = ["the", "cat", "ran", "from", "one", "dog"]
    expected = np.exp(np.mean(np.log([2 / 6, 2 / 6, 1 / 5, 1 / 4])))
    assert measures.bleu(hyp, [ref]) == pytest.approx(expected, rel=1e-12)
    # brevity penalty: a 3-word prefix of a 6-word reference; it has no 4-gram: total 1, add-one gives (0+1)/(1+1)
    short = measures.bleu(hyp[:3], [hyp])
    assert short == pytest.approx(np.exp(1 - 6 / 3) * np.exp(np.mean(np.log([1, 1, 1, 1 / 2]))), rel=1e-12)


def test_self_bleu_equals_leave_one_out_bleu_bit_for_bit(rng):
    sets = [[list(rng.integers(0, 6, rng.integers(1, 12))) for _ in range(9)] for _ in range(3)]
    got = measures.self_bleu(sets)
    for r, records in enumerate(sets):
        loo = np.mean([measures.bleu(h, records[:i] + records[i + 1 :]) for i, h in enumerate(records)])
        assert got[r] == loo
    assert measures.self_bleu([[[1, 2, 3, 4, 5]] * 4])[0] == 1.0
    assert np.isnan(measures.self_bleu([[[1, 2]]])[0])


# -- Vendi, entropy, missing mass --------------------------------------------------------------------------------------
def test_vendi_counts_effective_records(rng):
    assert measures.vendi(np.eye(6)[None])[0] == pytest.approx(6.0)  # orthogonal unit records
    assert measures.vendi(np.tile([[0.6, 0.8]], (5, 1))[None])[0] == pytest.approx(1.0)  # one record five times
    # two well separated clusters of identical records under the Gaussian kernel: 2 effective records
    x = np.r_[np.zeros((4, 2)), np.full((4, 2), 100.0)][None]
    assert measures.vendi(x, bandwidth=1.0)[0] == pytest.approx(2.0)
    # cosine path through Xᵀ X (f < n) equals the definition through the n × n kernel
    u = rng.standard_normal((30, 4))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    lam = np.clip(np.linalg.eigvalsh(u @ u.T / 30), 0, None)
    assert measures.vendi(u[None])[0] == pytest.approx(np.exp(stats.entropy(lam[lam > 1e-12])), rel=1e-9)
    assert measures.vendi(u[None, rng.permutation(30)])[0] == pytest.approx(measures.vendi(u[None])[0], rel=1e-9)


def test_entropy_matches_scipy_and_label_entropy_ignores_names(rng):
    p = rng.dirichlet(np.ones(7), size=4)
    p[0, 2] = 0.0
    p[0] /= p[0].sum()
    np.testing.assert_allclose(measures.entropy(p), stats.entropy(p, axis=-1), rtol=1e-12)
    assert measures.entropy(np.full(8, 1 / 8)) == pytest.approx(np.log(8))
    labels = rng.integers(0, 5, (3, 200))
    got = measures.label_entropy(labels)
    for r in range(3):
        assert got[r] == pytest.approx(stats.entropy(np.bincount(labels[r])), rel=1e-12)
    np.testing.assert_allclose(measures.label_entropy(7 * labels + 3), got, rtol=1e-12)  # relabelled classes
    one = measures.label_entropy(np.full((1, 9), 4))[0]
    assert one == 0.0 and np.signbit(one)  # −0.0, as −Σ p log p: the sign the stored class_entropy values carry


def test_heterozygosity_and_total_variation_closed_forms(rng):
    # K equal categories: 1 − 1/K; two draws from p differ with probability 1 − Σ p² (checked by simulation)
    np.testing.assert_allclose(measures.heterozygosity(np.full((2, 4), 0.25)), [0.75, 0.75])
    p = rng.dirichlet(np.ones(5))
    draws = rng.choice(5, size=(200_000, 2), p=p)
    assert measures.heterozygosity(p) == pytest.approx((draws[:, 0] != draws[:, 1]).mean(), abs=0.005)
    # TV is the largest difference of the two probabilities of one event: the set where p > q
    q = rng.dirichlet(np.ones(5))
    assert measures.total_variation(p, q) == pytest.approx((p - q)[p > q].sum(), rel=1e-12)
    assert measures.total_variation(p, q) == measures.total_variation(q, p)


def test_missing_mass_by_hand():
    p = np.array([[0.5, 0.25, 0.25], [0.1, 0.2, 0.7]])
    q = np.array([[1, 0, 0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(measures.missing_mass(p, q), [0.5, 0.3])


# -- ROC / AUC ---------------------------------------------------------------------------------------------------------
def test_roc_auc_matches_scikit_learn_with_ties(rng):
    neg = np.round(rng.normal(0, 1, 300), 1)  # rounded: many ties within and across the classes
    pos = np.round(rng.normal(0.7, 1, 200), 1)
    y = np.r_[np.zeros(300), np.ones(200)]
    assert measures.roc_auc(neg, pos) == pytest.approx(skm.roc_auc_score(y, np.r_[neg, pos]), abs=1e-12)
    batched = measures.roc_auc(np.stack([neg, -neg]), np.stack([pos, -pos]))
    assert batched.shape == (2,) and batched[1] == pytest.approx(1 - batched[0])
    fpr, tpr, _ = measures.roc_curve(neg, pos)
    assert skm.auc(fpr, tpr) == pytest.approx(measures.roc_auc(neg, pos), abs=1e-12)
    sk_fpr, sk_tpr, _ = skm.roc_curve(y, np.r_[neg, pos], drop_intermediate=False)
    assert set(zip(sk_fpr.round(12), sk_tpr.round(12))) <= set(zip(fpr.round(12), tpr.round(12)))


# -- the surfaces call the kernels -------------------------------------------------------------------------------------
def test_loop_metrics_give_the_kernels_numbers(rng):
    from modelcollapse.plugins.metrics import METRICS, Context

    x, y = rng.standard_normal((2, 90, 2)), rng.standard_normal((150, 2))
    ctx = Context(model=None, samples=x, source=None, heldout=y, generation=0, rng=rng)
    pr = measures.prdc(np.broadcast_to(y[:90], (2, 90, 2)), x, 3)
    np.testing.assert_array_equal(METRICS.get("precision")(ctx), pr["precision"])
    np.testing.assert_array_equal(METRICS.get("recall")(ctx), pr["recall"])
    np.testing.assert_array_equal(METRICS.get("frechet")(ctx), measures.frechet_sq(x, np.broadcast_to(y, (2, 150, 2))))
    tokens = rng.integers(0, 5, (2, 7, 6))
    text = Context(model=object(), samples=tokens, source=None, heldout=None, generation=0, rng=rng)
    np.testing.assert_array_equal(METRICS.get("self_bleu")(text), measures.self_bleu(tokens.tolist()))
    np.testing.assert_array_equal(METRICS.get("distinct_2")(text), measures.distinct_n(tokens.tolist(), 2))


def test_audit_indicators_give_the_kernels_numbers(rng):
    from modelcollapse.audit.indicators import Pool, Side, classifier_auc, diversity_text, frechet, prdc

    a, b = rng.standard_normal((60, 3)), rng.standard_normal((60, 3)) + 0.3
    ref, cand = Side(Pool("table", a, a), np.arange(60)), Side(Pool("table", b, b), np.arange(60))
    assert frechet(ref, cand)["frechet"] == measures.frechet_sq(b[None], a[None])[0]
    assert prdc(ref, cand) == {k: v[0] for k, v in measures.prdc(a[None], b[None], 5).items()}
    assert 0.5 < classifier_auc(ref, cand)["classifier_auc"] <= 1.0
    words = [["a", "b", "c"], ["a", "b"], ["c", "c", "d", "a"]]
    pool = Pool("text", [" ".join(w) for w in words], np.zeros((3, 1)), words=words)
    out = diversity_text(Side(pool, np.arange(3)), Side(pool, np.arange(3)))
    assert out["self_bleu"] == measures.self_bleu([words])[0]
    assert out["distinct_1"] == measures.distinct_n([words], 1)[0]


def test_chain_metrics_are_a_registry():
    from modelcollapse.chains.metrics import CHAIN_METRICS, chain_metrics, metric_names
    from modelcollapse.errors import ConfigError

    assert metric_names("embedding") == ["embedding_cosine", "embedding_distance", "step_distance"]
    assert CHAIN_METRICS.trait("fact_retention", "input") == "reference"
    assert set(metric_names("text")) >= {"length_words", "type_token_ratio", "readability"}
    out = chain_metrics(["One two two.", "Two two two."], None, ["type_token_ratio"])
    np.testing.assert_allclose(out["type_token_ratio"], [2 / 3, 1 / 3])
    with pytest.raises(ConfigError, match="metrics must be one of .*got 'lenght_words'. Did you mean 'length_words'"):
        chain_metrics(["x"], None, ["lenght_words"])
