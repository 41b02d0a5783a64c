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
    np.testing.assert_allclose(theory.tempered_probs([0.5, 0.3, 0.2], 1.1, np.array([30]))[0], [0.3425, 0.3326, 0.3249], atol=1e-4)
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
        validate({"model": {"kind": "gaussian"}, "loop": {"sampling": "exact", "bias": 0.5}})


def test_forgetting_row14(tmp_path):
    raw = preset("forgetting", replicates=8000)
    raw["arms"]["zipf-N10000"].update({"replicates": 10, "loop.generations": 40, "data": {"kind": "zipf", "exponent": 1.1, "types": 2000},
                                        "loop.samples": 2000})
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
