"""precision / recall / frechet against brute force and closed forms."""

import numpy as np
import pytest

from modelcollapse.measures import frechet_sq, gaussian_w2_sq, prdc
from modelcollapse.plugins.metrics import Context
from modelcollapse.plugins.metrics.features import K, frechet, precision, recall


def brute_coverage(query, support, k):
    """Share of ``query`` (n, d) inside the union of balls around ``support`` (m, d) with k-NN radii, by loops."""
    radii = []
    for s in support:
        d = sorted(float(np.linalg.norm(s - t)) for t in support)
        radii.append(d[k])  # d[0] is the point itself
    inside = [any(np.linalg.norm(q - s) <= r + 1e-12 for s, r in zip(support, radii)) for q in query]
    return float(np.mean(inside))


def ctx(samples, heldout):
    return Context(None, samples, None, heldout, 0, np.random.default_rng(0))


def test_precision_recall_match_brute_force(rng):
    x = rng.normal(size=(3, 60, 2))
    y = rng.normal(0.5, 1.3, size=(60, 2))
    p, r = precision(ctx(x, y)), recall(ctx(x, y))
    for i in range(3):
        assert p[i] == pytest.approx(brute_coverage(x[i], y, K))
        assert r[i] == pytest.approx(brute_coverage(y, x[i], K))
    assert not np.allclose(p, r)


def test_identical_sets_give_precision_recall_one_and_frechet_zero(rng):
    y = rng.normal(size=(200, 3))
    x = np.broadcast_to(y, (2, 200, 3)).copy()
    np.testing.assert_allclose(precision(ctx(x, y)), 1.0)
    np.testing.assert_allclose(recall(ctx(x, y)), 1.0)
    np.testing.assert_allclose(frechet(ctx(x, y)), 0.0, atol=1e-9)


def test_collapsed_samples_keep_precision_and_lose_recall(rng):
    y = rng.normal(size=(500, 2))
    x = 0.1 * rng.normal(size=(1, 500, 2))  # a mode-collapsed model: all mass near the centre
    assert precision(ctx(x, y))[0] > 0.95 and recall(ctx(x, y))[0] < 0.2


def test_equal_sizes_at_most_1000(rng):
    y = rng.normal(size=(5000, 2))
    x = rng.normal(size=(1, 3000, 2))
    # the metric uses the first 1000 of each side: equal to the coverage of those subsets
    assert precision(ctx(x, y))[0] == pytest.approx(prdc(y[None, :1000], x[:, :1000], K)["precision"][0])


def test_frechet_of_large_gaussian_samples_matches_closed_form(rng):
    mu1, mu2 = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    a = np.array([[2.0, 0.6], [0.6, 1.0]])
    b = np.array([[0.5, -0.2], [-0.2, 1.5]])
    x = rng.multivariate_normal(mu1, a, size=(1, 200_000))
    y = rng.multivariate_normal(mu2, b, size=200_000)
    exact = gaussian_w2_sq(mu1, a, mu2, b)
    assert frechet_sq(x, y[None])[0] == pytest.approx(exact, rel=0.02)
    # 1-D closed form: (μ1 − μ2)² + (σ1 − σ2)²
    assert gaussian_w2_sq(np.array([1.0]), np.array([[4.0]]), np.array([0.0]), np.array([[1.0]])) == pytest.approx(2.0)
