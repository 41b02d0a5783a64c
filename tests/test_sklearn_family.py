"""The per-replicate scikit-learn family (the slow path): randomness, order, errors, checkpoints."""

import numpy as np
import pytest

pytest.importorskip("sklearn")


from modelcollapse.errors import ConfigError  # noqa: E402
from modelcollapse.plugins.models import MODELS  # noqa: E402
from modelcollapse.plugins.models.sklearn_family import Sklearn  # noqa: E402

GMM_PATH = "sklearn.mixture:GaussianMixture"


def fitted(rng, **params):
    x = rng.normal(size=(3, 300, 2))
    return Sklearn(GMM_PATH, {"n_components": 2, **params}).fit(x, rng=np.random.default_rng(0)), x


def test_fresh_randomness_on_every_sample_call(rng):
    m, _ = fitted(rng)
    gen = np.random.default_rng(1)
    a, b = m.sample(100, rng=gen), m.sample(100, rng=gen)
    assert a.shape == (3, 100, 2) and not np.array_equal(a, b)
    np.testing.assert_array_equal(
        m.sample(100, rng=np.random.default_rng(2)), m.sample(100, rng=np.random.default_rng(2))
    )


def test_samples_are_not_sorted_by_component(rng):
    x = np.concatenate([rng.normal(size=(1, 500, 1)) - 10, rng.normal(size=(1, 500, 1)) + 10], axis=1)
    m = Sklearn(GMM_PATH, {"n_components": 2}).fit(x, rng=rng)
    s = m.sample(1000, rng=rng)
    assert 0.2 < (s[0, :100, 0] > 0).mean() < 0.8


def test_stacked_state_moments_and_round_trip(rng):
    m, x = fitted(rng)
    assert m.weights_.shape == (3, 2) and m.covariances_.shape == (3, 2, 2, 2)
    mean, cov = m.moments()
    assert mean.shape == (3, 2) and cov.shape == (3, 2, 2)
    clone = Sklearn(GMM_PATH, {"n_components": 2}).set_state(m.get_state())
    np.testing.assert_array_equal(
        m.sample(20, rng=np.random.default_rng(3)), clone.sample(20, rng=np.random.default_rng(3))
    )
    np.testing.assert_allclose(clone.log_prob(x), m.log_prob(x))


def test_sample_random_state_argument(rng):
    x = rng.normal(size=(2, 100, 1))
    m = Sklearn("sklearn.neighbors:KernelDensity", {"bandwidth": 0.5}).fit(x, rng=rng)
    gen = np.random.default_rng(4)
    assert not np.array_equal(m.sample(10, rng=gen), m.sample(10, rng=gen))
    assert m.log_prob(x).shape == (2, 100)


def test_clear_errors():
    with pytest.raises(ConfigError, match="cannot import module 'sklearn.mixtur'"):
        MODELS.build({"kind": "sklearn", "estimator": "sklearn.mixtur:GaussianMixture"}, "model")
    with pytest.raises(ConfigError, match="has no 'GaussianMixtur'. Did you mean 'GaussianMixture'?"):
        Sklearn("sklearn.mixture:GaussianMixtur")
    with pytest.raises(ConfigError, match=r"must have fit\(\) and sample\(\) methods; it lacks sample\(\)"):
        Sklearn("sklearn.linear_model:LinearRegression")


def test_the_dotted_estimator_path_is_a_deprecated_alias():
    with pytest.warns(DeprecationWarning, match="write it as 'sklearn.mixture:GaussianMixture'"):
        old = Sklearn("sklearn.mixture.GaussianMixture")
    assert old._cls is Sklearn(GMM_PATH)._cls
    with pytest.raises(ConfigError, match="model.params"):
        Sklearn(GMM_PATH, {"n_componentz": 2})
