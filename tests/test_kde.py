"""The batched KDE family against scipy.stats.gaussian_kde."""

import numpy as np
import pytest
from scipy import stats

from modelcollapse.errors import ConfigError
from modelcollapse.plugins.models.kde import KDE


@pytest.mark.parametrize("bandwidth", ["scott", "silverman", 0.3])
@pytest.mark.parametrize("d", [1, 2])
def test_log_prob_matches_scipy(rng, bandwidth, d):
    x = rng.normal(size=(3, 200, d)) * np.arange(1, d + 1)
    q = rng.normal(size=(3, 50, d)) * 2
    m = KDE(bandwidth).fit(x, rng=rng)
    for r in range(3):
        ref = stats.gaussian_kde(x[r].T, bw_method=bandwidth)
        np.testing.assert_allclose(m.log_prob(q)[r], ref.logpdf(q[r].T), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(m.kernel_cov_[r], ref.covariance, rtol=1e-12)


def test_log_prob_in_blocks(rng, monkeypatch):
    from modelcollapse.plugins.models import kde

    x, q = rng.normal(size=(2, 100, 2)), rng.normal(size=(2, 37, 2))
    m = KDE().fit(x, rng=rng)
    whole = m.log_prob(q)
    monkeypatch.setattr(kde, "QUERY_BLOCK", 500)  # 5 queries per block
    np.testing.assert_allclose(m.log_prob(q), whole, rtol=1e-12)


def test_moments_cdf_and_sampling(rng):
    x = rng.normal(size=(2, 300, 1))
    m = KDE().fit(x, rng=rng)
    mean, cov = m.moments()
    np.testing.assert_allclose(mean, x.mean(1))
    np.testing.assert_allclose(cov[:, 0, 0], x[..., 0].var(1) + m.kernel_cov_[:, 0, 0])
    for r in range(2):
        assert m.cdf(0.3)[r] == pytest.approx(stats.gaussian_kde(x[r, :, 0]).integrate_box_1d(-np.inf, 0.3), rel=1e-9)
    s = m.sample(100_000, rng=np.random.default_rng(1))
    np.testing.assert_allclose(s.mean(1), mean, atol=0.02)
    np.testing.assert_allclose(s.var(1)[:, 0], cov[:, 0, 0], rtol=0.03)


def test_identical_records_are_degenerate(rng):
    x = rng.normal(size=(2, 50, 2))
    x[1] = 3.0
    m = KDE().fit(x, rng=rng)
    assert m.degenerate_.tolist() == [False, True]
    np.testing.assert_allclose(m.sample(4, rng=rng)[1], 3.0)


def test_bad_bandwidth():
    with pytest.raises(ConfigError, match="model.bandwidth must be 'scott', 'silverman' or a number > 0; got -1"):
        KDE(-1)
