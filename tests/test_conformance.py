"""The conformance suite every model family passes."""

import numpy as np
import pytest


from modelcollapse.plugins.data import SOURCES
from modelcollapse.plugins.data.regression import RegressionSource
from modelcollapse.errors import RunError
from modelcollapse.plugins.models import MODELS

# (model spec, data spec, n records): every toy family against a source it can fit.
CASES = {
    "gaussian-1d": ({"kind": "gaussian"}, {"kind": "gaussian", "mean": 2.0, "std": 3.0}, 400),
    "gaussian-3d-mle": ({"kind": "gaussian", "variance": "mle"}, {"kind": "gaussian", "dim": 3, "std": [1.0, 2.0, 0.5]}, 400),
    "categorical": ({"kind": "categorical"}, {"kind": "categorical", "categories": 6, "distribution": "zipf"}, 400),
    "linear-regression": ({"kind": "linear-regression"}, {"kind": "regression", "dim": 4}, 400),
}
CASES["gaussian-sgd"] = ({"kind": "gaussian-sgd"}, {"kind": "gaussian", "mean": 2.0, "std": 3.0}, 400)
for extra in ("gmm", "kde"):
    if extra in MODELS:
        CASES[extra] = ({"kind": extra}, {"kind": "gaussian-mixture"}, 400)


def setup(case, replicates=3, n=None):
    model_spec, data_spec, default_n = CASES[case]
    source = SOURCES.build(data_spec, "data")
    x = source.pool(replicates, n or default_n, np.random.default_rng(0))
    model = MODELS.build(model_spec, "model").bind(source, x)
    return model, source, x


@pytest.fixture(params=sorted(CASES))
def case(request):
    return request.param


def test_fit_returns_self(case):
    model, _, x = setup(case)
    assert model.fit(x, rng=np.random.default_rng(1)) is model


def test_same_rng_same_samples_and_successive_calls_differ(case):
    model, _, x = setup(case)
    model.fit(x, rng=np.random.default_rng(1))
    a = model.sample(50, rng=np.random.default_rng(7))
    b = model.sample(50, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    gen = np.random.default_rng(8)
    assert not np.array_equal(model.sample(50, rng=gen), model.sample(50, rng=gen))
    assert a.shape[:2] == (3, 50) and a.shape[2:] == x.shape[2:]


def test_fit_does_not_mutate_input(case):
    model, _, x = setup(case)
    x = np.array(x)
    before = x.copy()
    model.fit(x, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(x, before)


def test_sample_before_fit_raises(case):
    model, _, _ = setup(case)
    with pytest.raises(RunError, match="not fitted yet"):
        model.sample(5, rng=np.random.default_rng(0))


def test_state_round_trip_reproduces_samples(case):
    model, source, x = setup(case)
    model.fit(x, rng=np.random.default_rng(1))
    clone = MODELS.build(CASES[case][0], "model").bind(source, x).set_state(model.get_state())
    np.testing.assert_array_equal(model.sample(20, rng=np.random.default_rng(3)), clone.sample(20, rng=np.random.default_rng(3)))


def test_large_n_recovers_parameters(case):
    model, source, x = setup(case, replicates=2, n=200_000)
    model.fit(x, rng=np.random.default_rng(1))
    if hasattr(source, "probs"):
        np.testing.assert_allclose(model.probs_, np.broadcast_to(source.probs, model.probs_.shape), atol=5e-3)
    elif isinstance(source, RegressionSource):
        np.testing.assert_allclose(model.weights_, np.broadcast_to(source.weights_, model.weights_.shape), atol=2e-2)
    else:
        mean, cov = source.moments()
        fit_mean, fit_cov = model.moments()
        np.testing.assert_allclose(fit_mean, np.broadcast_to(mean, fit_mean.shape), atol=0.05 * np.sqrt(cov.max()))
        np.testing.assert_allclose(fit_cov, np.broadcast_to(cov, fit_cov.shape), rtol=0.05, atol=0.05 * cov.max())
