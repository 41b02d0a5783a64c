"""Metrics against scipy and closed forms."""

import numpy as np
import pytest
from scipy import integrate, stats

from modelcollapse.measures import gaussian_w2_sq
from modelcollapse.plugins.data.categorical import CategoricalSource
from modelcollapse.plugins.data.gaussian import GaussianSource, MixtureSource
from modelcollapse.plugins.metrics import Context, measure
from modelcollapse.plugins.metrics.distances import energy_1, w1_1d
from modelcollapse.plugins.models.categorical import Categorical
from modelcollapse.plugins.models.gaussian import Gaussian


def ctx_for(model, source, samples, heldout):
    return Context(model, samples, source, heldout, 0, np.random.default_rng(0))


def test_w1_matches_scipy(rng):
    a, b = rng.normal(size=(4, 37)), rng.normal(1, 2, size=(4, 53))
    expected = [stats.wasserstein_distance(a[i], b[i]) for i in range(4)]
    np.testing.assert_allclose(w1_1d(a, b), expected, rtol=1e-10)


def test_energy_matches_scipy(rng):
    a, b = rng.normal(size=(3, 40, 1)), rng.normal(0.5, 1, size=(3, 60, 1))
    expected = [stats.energy_distance(a[i, :, 0], b[i, :, 0]) for i in range(3)]
    np.testing.assert_allclose(energy_1(a, b), expected, rtol=1e-10)


def test_gaussian_w2_closed_form_1d_and_commuting():
    mu1, mu2 = np.array([[1.0]]), np.array([[-0.5]])
    c1, c2 = np.array([[[4.0]]]), np.array([[[1.0]]])
    assert gaussian_w2_sq(mu1, c1, mu2, c2)[0] == pytest.approx(1.5**2 + (2 - 1) ** 2)
    # Diagonal (commuting) covariances: Σ (√a − √b)².
    a, b = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 1.0])
    assert gaussian_w2_sq(np.zeros(3), a, np.zeros(3), b) == pytest.approx(1 + 1 + 4)


def test_tail_mass_closed_form_and_sample_path_agree(rng):
    source = GaussianSource()
    model = Gaussian().fit(rng.normal(0, 2, size=(2, 100_000, 1)), rng=rng)
    exact = measure(["tail_mass"], ctx_for(model, source, None, None))["tail_mass"]
    sigma = np.sqrt(model.cov_[:, 0, 0])
    q = stats.norm.ppf(0.999)
    np.testing.assert_allclose(exact, 2 * stats.norm.sf(q / sigma), rtol=0.02)
    # The truth puts 0.2% in its own tails.
    truth = Gaussian().set_state(
        {"mean_": np.zeros((1, 1)), "cov_": np.ones((1, 1, 1)), "degenerate_": np.zeros(1, bool)}
    )
    assert measure(["tail_mass"], ctx_for(truth, source, None, None))["tail_mass"][0] == pytest.approx(0.002)


def test_nll_real_is_entropy_for_the_truth(rng):
    source = GaussianSource(std=2.0)
    truth = Gaussian().set_state(
        {"mean_": np.zeros((1, 1)), "cov_": np.full((1, 1, 1), 4.0), "degenerate_": np.zeros(1, bool)}
    )
    heldout = source.sample(1, 200_000, rng)[0]
    nll = measure(["nll_real"], ctx_for(truth, source, None, heldout))["nll_real"][0]
    assert nll == pytest.approx(0.5 * np.log(2 * np.pi * np.e * 4.0), abs=0.01)


@pytest.mark.parametrize("d", [1, 3])
def test_gaussian_mean_log_prob_from_sufficient_statistics_equals_the_direct_mean(rng, d):
    """The closed form (held-out mean and scatter) against log_prob per record, averaged: equal to rounding, for
    shared and per-replicate records, far from the origin, and for a collapsed (singular) fit."""
    x = rng.normal(3.0, 2.0, size=(5, 40, d))
    model = Gaussian().fit(x, rng=rng)
    model.cov_[0] = 0.0  # collapsed to a point: eigenvalues clipped at TINY in both routes
    heldout = rng.normal(3.0, 2.0, size=(300, d))
    for records in (np.broadcast_to(heldout, (5, 300, d)), rng.normal(size=(5, 300, d))):
        direct = model.log_prob(records).mean(1)
        np.testing.assert_allclose(model.mean_log_prob(records), direct, rtol=1e-10)
    source = GaussianSource(dim=d)
    nll = measure(["nll_real"], ctx_for(model, source, None, heldout))["nll_real"]
    np.testing.assert_allclose(nll, -model.log_prob(np.broadcast_to(heldout, (5, 300, d))).mean(1), rtol=1e-10)


def test_categorical_mean_log_prob_from_counts_equals_the_direct_mean(rng):
    source = CategoricalSource(categories=6)
    model = Categorical().bind(source, None).fit(rng.integers(0, 6, size=(4, 30)), rng=rng)
    model.probs_[1] = [0.5, 0.5, 0, 0, 0, 0]  # categories the held-out set has but the fit lost: -inf
    for records in (np.broadcast_to(rng.integers(0, 6, 500), (4, 500)), rng.integers(0, 6, size=(4, 500))):
        with np.errstate(divide="ignore"):
            direct = model.log_prob(records).mean(1)
        np.testing.assert_allclose(model.mean_log_prob(records), direct, rtol=1e-12)
    assert model.mean_log_prob(np.broadcast_to(np.array([0, 1, 1]), (4, 3)))[1] == pytest.approx(np.log(0.5))


def test_discrete_metrics_closed_form():
    source = CategoricalSource(categories=4)
    model = (
        Categorical()
        .bind(source, None)
        .set_state({"probs_": np.array([[0.5, 0.5, 0, 0]]), "degenerate_": np.zeros(1, bool)})
    )
    m = measure(["entropy", "support_size", "heterozygosity", "tv"], ctx_for(model, source, None, None))
    assert m["entropy"][0] == pytest.approx(np.log(2))
    assert (
        m["support_size"][0] == 2 and m["heterozygosity"][0] == pytest.approx(0.5) and m["tv"][0] == pytest.approx(0.5)
    )


def test_mixture_source_moments_and_density():
    src = MixtureSource(weights=[0.3, 0.7], means=[[-1.0], [2.0]], stds=[0.5, 1.0])
    total, _ = integrate.quad(lambda x: np.exp(src.log_prob(np.array([[x]])))[0], -20, 20)
    assert total == pytest.approx(1.0, abs=1e-8)
    mean, cov = src.moments()
    m1, _ = integrate.quad(lambda x: x * np.exp(src.log_prob(np.array([[x]])))[0], -20, 20)
    m2, _ = integrate.quad(lambda x: (x - m1) ** 2 * np.exp(src.log_prob(np.array([[x]])))[0], -20, 20)
    assert mean[0] == pytest.approx(m1) and cov[0, 0] == pytest.approx(m2)
    assert src.cdf(src.quantile(0.001)) == pytest.approx(0.001)


def test_w1_metric_equal_size_path_matches_scipy(rng):
    from modelcollapse.plugins.metrics.distances import w1

    samples, heldout = rng.normal(size=(3, 50, 1)), rng.normal(0.3, 1, size=(80, 1))
    got = w1(ctx_for(None, None, samples, heldout))
    expected = [stats.wasserstein_distance(samples[i, :, 0], heldout[:50, 0]) for i in range(3)]
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # Sliced W1 of a rotation-invariant pair: every projection has the same law, so it is close to the 1-D value.
    s2, h2 = rng.normal(size=(2, 2000, 2)), rng.normal(size=(4000, 2)) * 2
    sliced = w1(ctx_for(None, None, s2, h2))
    np.testing.assert_allclose(sliced, 2 * np.sqrt(2 / np.pi) - np.sqrt(2 / np.pi), rtol=0.1)
