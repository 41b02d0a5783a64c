"""The newer theory (PAPER-NUMBERS rows 13–19) against its closed forms, at CI scale.

Each run is checked through :func:`modelcollapse.analysis.theory.reference`, the curve its report draws, so the
wiring from a preset's config to its closed form is tested too. Tolerances are 4 standard errors of the replicate
mean at the replicate count used (a false alarm about once in 16,000 checks), widened only where a row says why.
"""

import numpy as np
import pytest

from conftest import run_small
from modelcollapse.analysis import theory
from modelcollapse.analysis.report import arm_configs
from modelcollapse.config import load_raw


def within(out, values, arm, metric, generations, se=4.0, extra=0.0, sd=None):
    """Assert the replicate mean of ``metric`` matches the reference at each of ``generations``, within ``se``
    standard errors (from the replicates' spread, or from ``sd``, a known per-replicate standard deviation)."""
    got = values[(arm, metric)]
    ref, _, statistic = theory.reference(metric, arm_configs(out)[arm], np.asarray(generations))
    assert statistic == "mean"
    for g, r in zip(generations, ref):
        x = got[g]
        spread = x.std(ddof=1) if sd is None else sd
        assert x.mean() == pytest.approx(r, abs=se * spread / np.sqrt(x.size) + extra), (arm, metric, g)


def preset(name, **changes):
    raw = load_raw(name)
    raw.update(changes)
    return raw


def test_closed_forms_match_paper_numbers():
    # Row 13: stationary 0.005980 for N = n = 100, K = 10 uniform.
    assert theory.fresh_categorical_l2(0.9, 100, 100, 200, np.array([10_000]))[0] == pytest.approx(0.005980, abs=5e-7)
    # Row 14: 0.3676 at 20 fits, 0.1746 at 50 (n = 10, λ₀ = 0.5); median forgetting ≈ 27 / 142 fits for c = 10 / 50.
    np.testing.assert_allclose(theory.poisson_survival(10, 0.5, np.array([19, 49])), [0.3676, 0.1746], atol=1e-4)
    g = theory.forgetting_g(1000)
    assert [int(np.argmax(1 - np.exp(-c * g) < 0.5)) + 1 for c in (10, 50)] == [27, 142]
    # Row 15: memoriser on Zipf(2) over 10⁶ types.
    from modelcollapse.plugins.data import SOURCES

    zipf = {"kind": "zipf", "exponent": 2.0, "types": 1_000_000}
    p = SOURCES.build(zipf).probs
    cut = lambda share: SOURCES.build({"kind": "tail-cut", "source": zipf, "k": 100, "clean_share": share}).train_probs  # noqa: E731
    assert theory.memoriser_error(p, p, 10**4) == pytest.approx(0.00691, abs=1e-5)
    assert theory.memoriser_error(p, cut(0.0), 10**5) == pytest.approx(0.00605, abs=1e-5)
    assert theory.memoriser_error(p, cut(0.1), 10**5) == pytest.approx(0.005027, abs=1e-6)
    assert theory.memoriser_error(p, cut(0.1), 10**7) == pytest.approx(theory.memoriser_error(p, p, 10**6), rel=0.01)
    # Row 18: 0.02667 for n = 50, λ = 1. Row 19: (0.3425, 0.3326, 0.3249).
    assert theory.mix_known_sigma_mse(1.0, 50, 1.0, np.array([10_000]))[0] == pytest.approx(0.026667, abs=1e-6)
    np.testing.assert_allclose(
        theory.tempered_probs([0.5, 0.3, 0.2], 1.1, np.array([30]))[0], [0.3425, 0.3326, 0.3249], atol=1e-4
    )
    # Under rows 2 and 3: accumulate 0.3974 (d = 10, T = 50, t = 10); the MLE determinant ratio Π(1 − i/n).
    assert theory.regression_test_mse("accumulate", 1.0, 10, 50, np.array([9]))[0] == pytest.approx(0.3974, abs=1e-4)
    assert theory.det_ratio_replace(2, 10, 0, np.array([0]))[0] == pytest.approx(0.9 * 0.8)


def test_fresh_categorical_row13(tmp_path):
    raw = preset("fresh-categorical", replicates=1500)
    raw["loop"]["generations"] = 12
    raw["arms"]["fully-synthetic-n50"]["loop.generations"] = 20
    m = run_small(raw, tmp_path / "r")
    within(tmp_path / "r", m, "fresh-N100-n100", "l2_sq_to_truth", [0, 1, 11])
    within(tmp_path / "r", m, "fresh-N20-n180", "l2_sq_to_truth", [11])
    within(tmp_path / "r", m, "fully-synthetic-n50", "heterozygosity", [19])  # 0.6008


def test_stability_mix_row18(tmp_path):
    raw = preset("stability-mix", replicates=2000)
    raw["loop"]["generations"] = 15
    del raw["arms"]["lambda-0.5"]
    m = run_small(raw, tmp_path / "r")
    for arm in ("lambda-1", "lambda-4", "fully-synthetic"):
        within(tmp_path / "r", m, arm, "mean_sq_error", [1, 14])


def test_heat_death_row19(tmp_path):
    # Generation 0 is fitted to 10⁵ real draws, so p̂₀ differs from p₀ by ~0.0015; the 4-s.e. band covers it.
    m = run_small(preset("heat-death"), tmp_path / "r")
    for arm in ("hot-T1.1", "cold-T0.9"):
        within(tmp_path / "r", m, arm, "tv", [5, 30], extra=1e-4)
        within(tmp_path / "r", m, arm, "entropy", [30], extra=1e-4)
    assert m[("hot-T1.1", "entropy")][30].min() > 0.999 * np.log(3) > m[("cold-T0.9", "entropy")][30].max()


def test_temperature_needs_a_family_that_tempers_its_population():
    from modelcollapse.engine.plan import validate
    from modelcollapse.errors import ConfigError

    with pytest.raises(ConfigError, match="fit_population"):
        validate({"model": {"kind": "gaussian"}, "loop": {"fit_to": "population", "bias": 0.5}})


def test_forgetting_row14(tmp_path):
    raw = preset("forgetting", replicates=8000)
    del raw["arms"]["wordfreq-N10000"]  # the same law on real words: tests/test_survival_view.py
    raw["arms"]["zipf-N10000"].update(
        {
            "replicates": 10,
            "loop.generations": 40,
            "data": {"kind": "zipf", "exponent": 1.1, "types": 2000},
            "loop.samples": 2000,
        }
    )
    m = run_small(raw, tmp_path / "r")
    within(tmp_path / "r", m, "poisson-n10", "nonzero", [0, 19, 49])
    # The support reference is the Poisson (rare-word) limit of the multinomial: 2% allowed for the approximation.
    ref = theory.reference("support_size", arm_configs(tmp_path / "r")["zipf-N10000"], np.array([39]))[0][0]
    within(tmp_path / "r", m, "zipf-N10000", "support_size", [0, 39], extra=0.02 * ref)


def test_tails_zipf_row15(tmp_path):
    raw = preset("tails-zipf", replicates=6, grid={"loop.samples": [10_000, 100_000]})
    raw["arms"] = {k: v for k, v in raw["arms"].items() if k in ("clean", "cut-k100", "cut-k100-clean0.1")}
    m = run_small(raw, tmp_path / "r")
    arms = arm_configs(tmp_path / "r")
    from modelcollapse.plugins.data import SOURCES

    for arm in raw["arms"]:
        for t in (10_000, 100_000):
            name = f"{arm},loop.samples={t}"
            # 6 replicates estimate their own spread badly: use the missing mass's standard deviation with the types'
            # misses taken independent, √(Σ p_i² u_i (1 − u_i)), u_i = (1 − q_i)^T (an upper bound: the multinomial
            # counts are negatively correlated)
            source = SOURCES.build(arms[name]["data"])
            u = np.exp(t * np.log1p(-getattr(source, "train_probs", source.probs)))
            within(tmp_path / "r", m, name, "missing_mass", [0], sd=np.sqrt(np.sum(source.probs**2 * u * (1 - u))))
    # The cut data's floor: Σ_{i>100} p_i, whatever T (0.00605).
    assert m[("cut-k100,loop.samples=100000", "missing_mass")][0].min() > 0.006


def test_strong_collapse_row16(tmp_path):
    # Row 16: 0.1312 for p = 0.1, d = 100, n = 1000. The ≈ (a heteroscedastic noise term taken at its mean) is within
    # 0.2% of 2,000-replicate simulation; 1% of the reference is allowed for it beside the 4 s.e.
    assert theory.strong_collapse_mse(1.0, 100, 1000, 0.1, 1.0) == pytest.approx(0.1312, abs=1e-4)
    raw = preset("strong-collapse", replicates=40, grid={"loop.samples": [1000, 3000]})
    raw["arms"] = {k: v for k, v in raw["arms"].items() if k in ("p0.1", "p0.3")}
    m = run_small(raw, tmp_path / "r")
    arms = arm_configs(tmp_path / "r")
    for name in arms:
        ref = theory.reference("test_mse", arms[name], np.array([0]))[0][0]
        within(tmp_path / "r", m, name, "test_mse", [0], extra=0.01 * ref)
    # The floor: three times the data does not bring p = 0.3 below p²‖Δ‖² = 0.09 (clean OLS would fall to 0.035).
    assert m[("p0.3,loop.samples=3000", "test_mse")][0].mean() > 0.09


def test_regression_ridge_row17(tmp_path):
    # Row 17's closed forms: 1.5190 (d = 20, T = T₀ = 100, n = 5); λ* ≈ 0.50 → 0.414 at n = 0, ≈ 7.2 → 0.888 at n = 5.
    np.testing.assert_allclose(theory.regression_test_mse("replace", 1.0, 20, 100, np.array([5])), [1.5190], atol=1e-4)
    np.testing.assert_allclose(theory.ridge_optimum(0, 100, 200, 200), [0.50, 0.414], atol=2e-3)
    lam5, e5 = theory.ridge_optimum(5, 100, 200, 200)
    assert lam5 == pytest.approx(7.2, abs=0.05) and e5 == pytest.approx(0.888, abs=1e-3)
    assert theory.ridge_downstream_mse(0.1, 5, 100, 200, 200) == pytest.approx(4.33, abs=0.005)
    # OLS on fresh inputs, d = 20: E = 0.2532·(g+1), checked at g = 5 (1.5190).
    ols = preset(
        "regression-ridge",
        replicates=400,
        data={"kind": "regression", "dim": 20, "noise": 1.0},
        grid={"model.ridge": [0.0]},
        arms={"fresh": {}},
    )
    ols["loop"]["samples"] = 100
    m = run_small(ols, tmp_path / "ols")
    within(tmp_path / "ols", m, "fresh,model.ridge=0.0", "test_mse", [0, 5])
    # The ridge downstream model, d = 100, T = 200: the Marchenko–Pastur reference is a d → ∞ limit; 2% of it is
    # allowed for d = 100 beside the 4 s.e.
    raw = preset("regression-ridge", replicates=40, grid={"model.ridge": [0.5, 7.2]}, arms={"fresh": {}})
    m = run_small(raw, tmp_path / "ridge")
    arms = arm_configs(tmp_path / "ridge")
    for name in arms:
        refs = theory.reference("test_mse", arms[name], np.array([0, 5]))[0]
        within(tmp_path / "ridge", m, name, "test_mse", [0, 5], extra=0.02 * refs.max())
    small, large = m[("fresh,model.ridge=0.5", "test_mse")], m[("fresh,model.ridge=7.2", "test_mse")]
    assert small[0].mean() < large[0].mean() and large[5].mean() < small[5].mean()  # λ* grows with the generations


def test_label_verifier_keeps_labels_wrong_at_p_eff():
    # The filter alone: 40,000 records, labels wrong w.p. 0.6, kept w.p. 0.9 / 0.7: the kept-wrong share is
    # p_eff = 0.538 within 4 s.e. of a proportion over the ~24,000 kept records.
    from modelcollapse.plugins.data import SOURCES
    from modelcollapse.plugins.filters import FilterContext, label_verifier
    from modelcollapse.plugins.models import MODELS

    src = SOURCES.build({"kind": "classification", "dim": 2})
    model = (
        MODELS.build({"kind": "mean-difference", "flip": 0.6})
        .bind(src, None)
        .fit(src.sample(1, 10, np.random.default_rng(0)), rng=None)
    )
    x = model.sample(40_000, rng=np.random.default_rng(1))
    ctx = FilterContext(src, model, model, x[0], 1, np.random.default_rng(2))
    _, keep = label_verifier(x, np.ones(x.shape[:2], bool), ctx, keep_correct=0.9, keep_wrong=0.7)
    p_eff = theory.kept_label_error(0.6, 0.9, 0.7)
    assert p_eff == pytest.approx(0.538, abs=5e-4) and theory.kept_label_error(0.6, 0.9, 0.5) == pytest.approx(
        0.455, abs=5e-4
    )
    wrong = (x[..., 2] != x[..., 3])[keep]
    assert wrong.mean() == pytest.approx(p_eff, abs=4 * np.sqrt(p_eff * (1 - p_eff) / wrong.size))


def test_verifier_phase_row20(tmp_path):
    # Row 20 on both sides of p_eff = ½: φ₀ = 0.5 (p_eff 0.455) keeps the classifier at +μ, φ₀ = 0.7 (0.538) turns it
    # to −μ. The reference is the finite-n expectation (n = 5,000; 0.8380 and 0.1636 against the limits 0.8413 and
    # 0.1587); 4 s.e. of the mean over 60 replicates.
    raw = preset("verifier-phase", replicates=60)
    raw["loop"]["generations"] = 3
    raw["arms"] = {k: v for k, v in raw["arms"].items() if k in ("phi0-0.5", "phi0-0.7")}
    m = run_small(raw, tmp_path / "r")
    for arm in raw["arms"]:
        within(tmp_path / "r", m, arm, "accuracy", [0, 2])
    assert m[("phi0-0.5", "accuracy")][2].mean() > 0.8 and m[("phi0-0.7", "accuracy")][2].mean() < 0.2
