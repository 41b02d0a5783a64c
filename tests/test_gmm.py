"""The batched GMM family against scikit-learn (reference only), closed forms and its degenerate guard."""

import numpy as np
import pytest
from scipy import integrate, stats

from conftest import needs
from modelcollapse.errors import ConfigError
from modelcollapse.plugins.metrics import Context
from modelcollapse.plugins.metrics.mixtures import component_std, gaussian_overlap, gmm_l2_sq, gmm_l2_to_gen0
from modelcollapse.plugins.models import MODELS
from modelcollapse.plugins.models.gmm import GMM


def mixture_data(rng, R, n, means, weights, std=1.0):
    comp = rng.choice(len(weights), size=(R, n), p=weights)
    return np.asarray(means, float)[comp] + std * rng.standard_normal((R, n, len(means[0])))


def test_log_likelihood_matches_sklearn(rng):
    needs("sklearn")
    from sklearn.mixture import GaussianMixture

    x = rng.normal(size=(6, 500, 2))
    ours = GMM().fit(x, rng=np.random.default_rng(1)).log_prob(x).mean(1)
    theirs = np.array(
        [GaussianMixture(2, covariance_type="full", random_state=r).fit(x[r]).score(x[r]) for r in range(6)]
    )
    np.testing.assert_allclose(ours, theirs, atol=0.01)  # both are local optima of the same likelihood


def test_recovers_well_separated_mixture(rng):
    x = mixture_data(rng, 2, 20_000, [[-4.0, 0.0], [4.0, 1.0]], [0.3, 0.7])
    m = GMM().fit(x, rng=np.random.default_rng(2))
    order = np.argsort(m.means_[..., 0], axis=1)
    means = np.take_along_axis(m.means_, order[..., None], 1)
    weights = np.take_along_axis(m.weights_, order, 1)
    covs = np.take_along_axis(m.covariances_, order[..., None, None], 1)
    np.testing.assert_allclose(means, np.broadcast_to([[-4.0, 0.0], [4.0, 1.0]], means.shape), atol=0.05)
    np.testing.assert_allclose(weights, np.broadcast_to([0.3, 0.7], weights.shape), atol=0.01)
    np.testing.assert_allclose(covs, np.broadcast_to(np.eye(2), covs.shape), atol=0.06)
    assert m.converged_.all() and not m.degenerate_.any()


def test_identical_points_are_degenerate_not_an_error(rng):
    x = rng.normal(size=(2, 600, 2))
    x[0, :300] = [5.0, 5.0]  # one component's records collapse onto a single point
    m = GMM(reg_covar=1e-6).fit(x, rng=np.random.default_rng(3))
    assert m.degenerate_.tolist() == [True, False]
    assert np.isfinite(m.covariances_).all() and np.isfinite(m.log_prob(x)).all()
    np.testing.assert_allclose(np.sort(m.weights_[0]), [0.5, 0.5], atol=1e-6)
    assert m.sample(10, rng=np.random.default_rng(4)).shape == (2, 10, 2)


def test_all_records_identical_keeps_going():
    x = np.ones((1, 50, 2))
    m = GMM().fit(x, rng=np.random.default_rng(0))
    assert m.degenerate_.all() and np.isfinite(m.means_).all()
    np.testing.assert_allclose(m.sample(5, rng=np.random.default_rng(1)), 1.0, atol=0.01)


def test_log_prob_moments_and_cdf_match_scipy(rng):
    x = mixture_data(rng, 3, 400, [[-2.0], [1.0]], [0.4, 0.6], std=0.7)
    m = GMM().fit(x, rng=np.random.default_rng(5))
    w, mu, cov = m.weights_, m.means_, m.covariances_
    q = rng.normal(size=(3, 7, 1)) * 2
    expected = np.log(sum(w[:, j, None] * stats.norm.pdf(q[..., 0], mu[:, j], np.sqrt(cov[:, j, 0])) for j in range(2)))
    np.testing.assert_allclose(m.log_prob(q), expected, rtol=1e-10)
    mean, var = m.moments()
    np.testing.assert_allclose(mean[:, 0], (w * mu[..., 0]).sum(1))
    np.testing.assert_allclose(var[:, 0, 0], (w * (cov[..., 0, 0] + mu[..., 0] ** 2)).sum(1) - mean[:, 0] ** 2)
    numeric = [
        integrate.quad(lambda t, r=r: np.exp(m.log_prob(np.full((3, 1, 1), t)))[r, 0], -np.inf, 0.5)[0]
        for r in range(3)
    ]
    np.testing.assert_allclose(m.cdf(0.5), numeric, atol=1e-7)


def test_sample_counts_and_order(rng):
    m = GMM().fit(mixture_data(rng, 4, 2000, [[-5.0, 0], [5.0, 0]], [0.25, 0.75]), rng=np.random.default_rng(6))
    s = m.sample(4000, rng=np.random.default_rng(7))
    share = (s[..., 0] > 0).mean(1)
    np.testing.assert_allclose(share, np.sort(m.weights_, 1)[:, 1], atol=0.03)
    assert (s[:, :200, 0] > 0).mean() < 0.9  # not sorted by component: the first records mix both
    np.testing.assert_allclose(s.mean(1), m.moments()[0], atol=0.2)


def test_random_init_and_many_components(rng):
    x = mixture_data(rng, 2, 3000, [[-6.0, 0], [0, 6.0], [6.0, 0]], [1 / 3] * 3)
    for init in ("k-means++", "kmeans", "random"):
        m = GMM(components=3, init=init, max_iter=300).fit(x, rng=np.random.default_rng(8))
        assert m.means_.shape == (2, 3, 2) and np.isfinite(m.lower_bound_).all()
    assert m.responsibilities(x).shape == (2, 3000, 3)


def test_config_errors_name_the_parameter():
    with pytest.raises(ConfigError, match=r"model.components must be an int >= 1; got 0"):
        MODELS.build({"kind": "gmm", "components": 0}, "model")
    with pytest.raises(
        ConfigError, match=r"model.init must be one of 'k-means\+\+', 'kmeans' or 'random'; got 'kmean'"
    ):
        MODELS.build({"kind": "gmm", "init": "kmean"}, "model")
    with pytest.raises(ConfigError, match=r"model.reg_covar must be > 0"):
        GMM(reg_covar=0.0)


def test_l2_distance_closed_forms():
    w = np.array([[0.3, 0.7]])
    mu = np.array([[[0.0], [1.5]]])
    cov = np.array([[[[0.5]], [[0.2]]]])
    assert gmm_l2_sq((w, mu, cov), (w, mu, cov))[0] == pytest.approx(0.0, abs=1e-12)
    a, b = (
        (np.ones((1, 1)), np.zeros((1, 1, 1)), np.ones((1, 1, 1, 1))),
        (np.ones((1, 1)), np.ones((1, 1, 1)), 4 * np.ones((1, 1, 1, 1))),
    )
    numeric = integrate.quad(lambda t: (stats.norm.pdf(t, 0, 1) - stats.norm.pdf(t, 1, 2)) ** 2, -np.inf, np.inf)[0]
    assert gmm_l2_sq(a, b)[0] == pytest.approx(numeric, rel=1e-8)
    one = integrate.quad(
        lambda t: (0.3 * stats.norm.pdf(t, 0, np.sqrt(0.5)) + 0.7 * stats.norm.pdf(t, 1.5, np.sqrt(0.2))) ** 2,
        -np.inf,
        np.inf,
    )[0]
    assert gaussian_overlap(w, mu, cov, w, mu, cov)[0] == pytest.approx(one, rel=1e-8)


def test_mixture_metrics_on_a_context(rng):
    x = rng.normal(size=(3, 500, 2))
    gen0 = GMM().fit(x, rng=np.random.default_rng(0))
    later = GMM().fit(0.1 * x, rng=np.random.default_rng(0))
    ctx = Context(later, x, None, x[0], 5, rng, gen0)
    assert np.all(gmm_l2_to_gen0(Context(gen0, x, None, x[0], 0, rng, gen0)) < 1e-6)
    assert np.all(gmm_l2_to_gen0(ctx) > 0.5)
    expected = np.sqrt(np.trace(later.covariances_, axis1=-2, axis2=-1) / 2).mean(1)
    np.testing.assert_allclose(component_std(ctx), expected)
    np.testing.assert_allclose(
        component_std(ctx), 0.1 * component_std(Context(gen0, x, None, x[0], 0, rng, gen0)), rtol=1e-3
    )


def test_shared_records_take_the_broadcast_path(rng):
    m = GMM().fit(rng.normal(size=(4, 300, 2)) + [[[0.0, 0.0]], [[3.0, 0.0]], [[0.0, -2.0]], [[1.0, 1.0]]], rng=rng)
    held = rng.normal(size=(500, 2))
    shared = np.broadcast_to(held, (4, 500, 2))
    np.testing.assert_allclose(m.log_prob(shared), m.log_prob(np.array(shared)), rtol=1e-10, atol=1e-10)


def test_two_component_estep_matches_the_general_one(rng):
    from modelcollapse.plugins.models.gmm_em import features, mixture_estep, two_component_estep

    x = rng.normal(size=(5, 300, 2)) * [[[1.0, 3.0]]]
    m = GMM().fit(x, rng=np.random.default_rng(0))
    m.covariances_[1] *= 1e-4  # replicate 1: tight components, so most records have |log-odds| far beyond 37
    phi = features(x)
    coef = m._coefficients(m.weights_, m.means_, m.covariances_)
    fast, general = two_component_estep(coef, phi, phi.sum(-1)), mixture_estep(coef, phi, None)
    np.testing.assert_allclose(fast[0], general[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(fast[1], general[1], rtol=1e-12)


def test_mean_log_prob_is_the_mean_of_log_prob(rng):
    m = GMM().fit(rng.normal(size=(3, 400, 2)), rng=np.random.default_rng(1))
    held = rng.normal(size=(700, 2)) * 2
    for x in (np.broadcast_to(held, (3, 700, 2)), rng.normal(size=(3, 700, 2))):
        np.testing.assert_allclose(m.mean_log_prob(x), m.log_prob(x).mean(1), rtol=1e-12)
    m3 = GMM(components=3).fit(rng.normal(size=(2, 400, 1)), rng=np.random.default_rng(2))
    np.testing.assert_allclose(m3.mean_log_prob(held[None, :, :1]), m3.log_prob(held[None, :, :1]).mean(1))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_precision_matches_linalg(rng, d):
    from modelcollapse.plugins.models.gmm_em import precision

    a = rng.normal(size=(4, 2, d, d))
    cov = a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(d)
    prec, logdet = precision(cov, 1e-6)
    np.testing.assert_allclose(prec, np.linalg.inv(cov), rtol=1e-10)
    np.testing.assert_allclose(logdet, np.linalg.slogdet(cov)[1], rtol=1e-10)


def test_kmeans_labels_are_a_lloyd_fixed_point(rng):
    from modelcollapse.plugins.models.gmm_em import kmeans_labels

    x = mixture_data(rng, 4, 500, [[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]], [0.3, 0.3, 0.4])
    linear = np.concatenate([np.swapaxes(x, 1, 2), np.ones((4, 1, 500))], axis=1)
    for k in (2, 3):
        labels = kmeans_labels(linear, k, 50, np.random.default_rng(3))
        centres = np.stack([np.stack([x[r][labels[r] == c].mean(0) for c in range(k)]) for r in range(4)])
        nearest = ((x[:, :, None, :] - centres[:, None]) ** 2).sum(-1).argmin(-1)
        np.testing.assert_array_equal(labels, nearest)


def test_kmeans_plus_plus_finds_separated_modes():
    """Four modes 6 apart (MAD's setting): k-means++ seeding puts a component on every mode in every replicate, where k
    random records as centres leave some component between modes (the cause of row 11's lost precision)."""
    from modelcollapse.plugins.models.gmm import GMM

    rng = np.random.default_rng(0)
    modes = np.array([[-3, -3], [-3, 3], [3, -3], [3, 3]], float)
    x = modes[rng.integers(0, 4, (100, 200))] + 0.7 * rng.normal(size=(100, 200, 2))

    def off_mode(**kw):
        m = GMM(components=4, **kw).fit(x, rng=np.random.default_rng(1))
        return np.sqrt(((m.means_[:, :, None] - modes[None, None]) ** 2).sum(-1)).min(-1)  # (R, k)

    assert off_mode().max() < 0.5
    assert (off_mode(init="kmeans", kmeans_iter=10) > 1).any(axis=1).mean() > 0.05


def test_n_init_keeps_the_best_lower_bound():
    from modelcollapse.plugins.models.gmm import GMM

    x = np.random.default_rng(2).normal(size=(40, 150, 2))
    x[:, :50] += 3
    one = GMM(components=3, init="random").fit(x, rng=np.random.default_rng(3))
    many = GMM(components=3, init="random", n_init=4).fit(x, rng=np.random.default_rng(3))
    assert np.all(many.lower_bound_ >= one.lower_bound_)  # the first start is the same draw; the best is kept
    assert np.any(many.lower_bound_ > one.lower_bound_ + 1e-9)
