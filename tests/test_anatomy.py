"""Error anatomy: population fits (loop.fit_to: population, fit_population), the gaussian-sgd learner, kl_real, and
the factorial decomposition."""

import itertools

import numpy as np
import pytest

from conftest import run_small
from modelcollapse.analysis.anatomy import check_design, decompose
from modelcollapse.analysis.theory import median_log_variance
from modelcollapse.config import load_raw
from modelcollapse.engine.plan import validate
from modelcollapse.errors import ConfigError
from modelcollapse.plugins.models.gaussian_sgd import GaussianSGD
from modelcollapse.plugins.models.gmm import GMM

MIXTURE = {"kind": "gaussian-mixture", "weights": [0.5, 0.5], "means": [[-2.0], [2.0]], "stds": [0.5, 0.5]}
FACTORS = {"sampling": ["exact", "finite"], "family": ["matched", "mismatched"], "learner": ["exact", "approximate"]}


def raw(model, data=None, fit_to="population", generations=5, samples=100, replicates=4, metrics=("mean", "variance")):
    return {
        "seed": 3,
        "replicates": replicates,
        "data": data or {"kind": "gaussian"},
        "model": model,
        "loop": {"generations": generations, "samples": samples, "fit_to": fit_to},
        "metrics": list(metrics),
    }


# -- exact sampling: the engine adds no error of its own ---------------------------------------------------------------
@pytest.mark.parametrize(
    "model, data, metrics",
    [
        ({"kind": "gaussian"}, {"kind": "gaussian", "mean": 1.0, "std": 2.0}, ["mean", "variance", "w2_sq"]),
        ({"kind": "categorical", "smoothing": 0.5}, {"kind": "categorical", "categories": 5}, ["entropy", "tv"]),
        ({"kind": "gmm", "max_iter": 50, "tol": 0.0, "reg_covar": 1e-30}, MIXTURE, ["mean", "variance", "kl_real"]),
    ],
    ids=["gaussian", "categorical", "gmm"],
)
def test_exact_sampling_matched_exact_learner_has_no_drift(tmp_path, model, data, metrics):
    m = run_small(raw(model, data, metrics=metrics), tmp_path)
    for name in metrics:
        values = m[("run", name)]
        np.testing.assert_allclose(
            values, np.broadcast_to(values[0], values.shape), rtol=1e-12, atol=1e-14, err_msg=name
        )


def test_gmm_population_em_returns_the_mixture_it_contains(rng):
    x = rng.normal(size=(3, 200, 1)) + np.where(rng.random((3, 200, 1)) < 0.3, -3.0, 2.0)
    m = GMM(max_iter=50, tol=0.0, reg_covar=1e-30).fit(x, rng=rng)
    before = [a.copy() for a in (m.weights_, m.means_, m.covariances_)]
    m.fit_population(m, rng=rng)
    order = np.argsort(m.means_[..., 0], 1) == np.argsort(before[1][..., 0], 1)
    flip = ~order.all(1)  # components may come back in the other order
    for a, b in zip((m.weights_, m.means_, m.covariances_), before):
        a = np.where(flip.reshape(-1, *[1] * (a.ndim - 1)), a[:, ::-1], a)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


# -- statistical error alone -------------------------------------------------------------------------------------------
def test_statistical_error_alone_follows_the_known_collapse_rate(tmp_path):
    M, G = 20, 8
    m = run_small(raw({"kind": "gaussian"}, fit_to="samples", generations=G, samples=M, replicates=3000), tmp_path)
    log_var = np.log(m[("run", "variance")])
    expected = median_log_variance(M, 1, np.arange(G))  # E[log σ²_g] = (g + 1)(ψ((M−1)/2) + log(2/(M−1)))
    se = log_var.std(1, ddof=1) / np.sqrt(log_var.shape[1])
    assert np.all(np.abs(log_var.mean(1) - expected) < 4 * se)
    assert expected[-1] < -0.4  # the test can see the drift: 8 × −0.054


# -- expressivity: KDE and a mismatched Gaussian ----------------------------------------------------------------------
def test_kde_variance_grows_by_the_kernel_variance_each_generation(tmp_path):
    b = 0.3  # scipy's convention: kernel covariance = b² · data covariance
    m = run_small(raw({"kind": "kde", "bandwidth": b}, generations=6), tmp_path)
    var, mean = m[("run", "variance")], m[("run", "mean")]
    # Var_{g+1} = Var_g + h²_{g+1}, with h²_{g+1} = b² Var_g the new kernel's variance: a factor (1 + b²) per generation
    np.testing.assert_allclose(var[1:], var[:-1] * (1 + b**2), rtol=1e-12)
    np.testing.assert_allclose(var[1:] - var[:-1], b**2 * var[:-1], rtol=1e-10)
    np.testing.assert_allclose(mean, np.broadcast_to(mean[0], mean.shape), rtol=1e-12)


def test_mismatched_gaussian_on_mixture_errs_at_generation_zero_then_is_a_fixed_point(tmp_path):
    m = run_small(raw({"kind": "gaussian"}, MIXTURE, metrics=["mean", "variance", "kl_real"], samples=200), tmp_path)
    kl, var = m[("run", "kl_real")], m[("run", "variance")]
    assert np.all(kl[0] > 0.5)  # one Gaussian cannot hold two modes: KL(mixture ‖ best Gaussian) ≈ 0.73 nats
    np.testing.assert_allclose(kl, np.broadcast_to(kl[0], kl.shape), rtol=1e-12)
    np.testing.assert_allclose(var, np.broadcast_to(var[0], var.shape), rtol=1e-12)


def test_exact_sampling_needs_a_family_that_can_and_the_replace_regime():
    base = raw({"kind": "linear-regression"}, {"kind": "regression"}, metrics=["test_mse"])
    with pytest.raises(
        ConfigError,
        match="loop.fit_to 'population' fits each generation to the previous model's population, "
        "which model.kind 'linear-regression' cannot do; families that can: 'categorical', 'gaussian', "
        "'gaussian-mean', 'gaussian-sgd', 'gmm', 'kde', 'poisson'.",
    ):
        validate(base)
    with pytest.raises(ConfigError, match="loop.fit_to 'population' needs loop.regime 'replace'; got 'accumulate'."):
        validate({**raw({"kind": "gaussian"}), "loop": {"fit_to": "population", "regime": "accumulate"}})


# -- approximation: gaussian-sgd ---------------------------------------------------------------------------------------
def test_gaussian_sgd_converges_to_the_mle_and_stops_early_otherwise(rng):
    x = rng.normal(3.0, 2.0, size=(4, 400, 1))
    long = GaussianSGD(lr=0.01, epochs=60).fit(x, rng=np.random.default_rng(1))
    np.testing.assert_allclose(long.mean_, x.mean(1), atol=0.1)
    np.testing.assert_allclose(np.exp(2 * long.log_std_), x.var(1), rtol=0.08)
    short = GaussianSGD(lr=0.05, epochs=1).fit(x, rng=np.random.default_rng(1))
    assert np.all(short.mean_ < 2.5)  # started at 0, stopped before reaching 3
    again = GaussianSGD(lr=0.05, epochs=1).fit(x, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(short.mean_, again.mean_)  # same rng, same minibatch order


def test_gaussian_sgd_population_fit_takes_the_expected_gradient(rng):
    x = rng.normal(3.0, 2.0, size=(2, 100, 1))
    m = GaussianSGD(lr=0.05, epochs=300).fit(x, rng=rng)
    mean, cov = m.moments()
    m.fit_population(m, rng=rng)  # 3,000 full-gradient steps from N(0, 1) reach the previous fit
    np.testing.assert_allclose(m.mean_, mean, rtol=1e-6)
    np.testing.assert_allclose(np.exp(2 * m.log_std_), cov[..., 0], rtol=1e-6)


# -- the factorial decomposition ---------------------------------------------------------------------------------------
def synthetic_table(effects: dict[tuple[int, ...], float], generations=3, replicates=4):
    """A tidy table whose cell y(levels) = Σ_{S ⊆ on(levels)} term_S · (g + 1), replicate noise ±1 (mean zero)."""
    rows = {"arm": [], "replicate": [], "generation": [], "metric": [], "value": []}
    names = list(FACTORS)
    for levels in itertools.product((0, 1), repeat=3):
        arm = ",".join(f"{f}={FACTORS[f][i]}" for f, i in zip(names, levels))
        y = sum(v for s, v in effects.items() if all(levels[i] for i in s))
        for g in range(generations):
            for r in range(replicates):
                rows["arm"].append(arm), rows["replicate"].append(r), rows["generation"].append(g)
                rows["metric"].append("kl_real"), rows["value"].append(y * (g + 1) + (1 if r % 2 else -1))
    return rows


def test_decompose_recovers_known_terms():
    # terms by subset of factor indices (0 sampling, 1 family, 2 learner); () is the baseline
    truth = {(): 0.5, (0,): 1.0, (1,): 2.0, (2,): 0.25, (0, 1): -0.5, (0, 2): 0.0, (1, 2): 0.75, (0, 1, 2): 0.125}
    table = synthetic_table(truth)
    a = decompose(table, FACTORS, "kl_real", "anchored")
    names = list(FACTORS)
    for s, v in truth.items():
        key = "baseline" if not s else "×".join(names[i] for i in s)
        np.testing.assert_allclose(a.terms[key], v * np.arange(1, 4), err_msg=key)
    total = sum(v for k, v in a.terms.items() if k != "baseline")
    np.testing.assert_allclose(total, a.cells[(1, 1, 1)] - a.cells[(0, 0, 0)])
    # Yates effects of the same cells, by brute force from the ±1 contrasts
    e = decompose(table, FACTORS, "kl_real", "effects")
    cells = {c: sum(v for s, v in truth.items() if all(c[i] for i in s)) for c in itertools.product((0, 1), repeat=3)}
    for r in range(1, 4):
        for s in itertools.combinations(range(3), r):
            want = sum(np.prod([2 * c[i] - 1 for i in s]) * y for c, y in cells.items()) / 4
            np.testing.assert_allclose(e.terms["×".join(names[i] for i in s)], want * np.arange(1, 4))
    np.testing.assert_allclose(e.terms["sampling"], (1.0 + (-0.5 + 0.0) / 2 + 0.125 / 4) * np.arange(1, 4))
    np.testing.assert_allclose(e.terms["mean"], np.mean(list(cells.values())) * np.arange(1, 4))
    # replicate noise ±1 with 4 replicates: se of each cell mean = √(4/3)/2; anchored main effect combines 2 cells
    np.testing.assert_allclose(a.stderr["sampling"], np.sqrt(2) * np.sqrt(4 / 3) / 2)


def test_check_design_names_the_missing_cell():
    names = [",".join(f"{f}={FACTORS[f][i]}" for f, i in zip(FACTORS, c)) for c in itertools.product((0, 1), repeat=3)]
    assert len(check_design({"factors": FACTORS}, names + ["other-arm"])) == 8
    with pytest.raises(ConfigError, match="missing: \\['sampling=finite,family=mismatched,learner=approximate'\\]"):
        check_design({"factors": FACTORS}, names[:-1])
    with pytest.raises(
        ConfigError, match="arm 'sampling=exact,family=bad,learner=exact' must set every anatomy factor"
    ):
        check_design({"factors": FACTORS}, ["sampling=exact,family=bad,learner=exact"])


def test_error_sources_preset_runs_and_reports(tmp_path):
    from modelcollapse.analysis.report import build_report

    config = load_raw("error-sources")
    config.update(replicates=3, loop={**config["loop"], "generations": 3}, metrics=["kl_real"])
    m = run_small(config, tmp_path)
    exact = m[("sampling=exact,family=matched,learner=exact", "kl_real")]
    np.testing.assert_allclose(exact, np.broadcast_to(exact[0], exact.shape), rtol=1e-12)
    html = build_report(tmp_path).read_text()
    assert "Anatomy of the divergence (kl_real)" in html and (tmp_path / "figures" / "anatomy.png").exists()
