"""Text and image metrics against hand-computed values and closed forms."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from modelcollapse.measures import bleu, frechet_sq, prdc  # noqa: E402
from modelcollapse.plugins.metrics import METRICS, Context  # noqa: E402


def ctx(samples):
    return Context(
        model=object(),
        samples=np.asarray(samples),
        source=None,
        heldout=None,
        generation=0,
        rng=np.random.default_rng(0),
    )


def test_distinct_and_repetition_by_hand():
    samples = [[[1, 2, 1, 2, 1, 2], [3, 4, 5, 6, 7, 8]]]  # (R=1, n=2, B=6)
    c = ctx(samples)
    assert METRICS.get("distinct_1")(c)[0] == pytest.approx(8 / 12)
    assert METRICS.get("distinct_2")(c)[0] == pytest.approx((2 + 5) / 10)
    # trigrams of the first block: 121 212 121 212 -> 2 unique of 4 -> 0.5 repeated; second: none
    assert METRICS.get("repetition_rate")(c)[0] == pytest.approx(0.25)


def test_bleu_identical_and_disjoint():
    assert bleu([1, 2, 3, 4, 5], [[1, 2, 3, 4, 5]]) == pytest.approx(1.0)
    assert bleu([1, 2, 3, 4, 5], [[6, 7, 8, 9, 10]]) < 0.01
    same = ctx([[[1, 2, 3, 4, 5, 6]] * 4])
    assert METRICS.get("self_bleu")(same)[0] == pytest.approx(1.0)


def test_frechet_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20000, 2))
    b = rng.standard_normal((20000, 2)) * 2 + np.array([3.0, 0.0])
    # ||mu||^2 + tr(I + 4I - 2*2I) = 9 + 2 = 11
    assert frechet_sq(a[None], b[None])[0] == pytest.approx(11.0, rel=0.03)
    assert frechet_sq(a[None], a[None])[0] == pytest.approx(0.0, abs=1e-4)


def test_precision_recall_coverage():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((500, 2))
    same = prdc(real[None], real[None], 3)
    assert same["precision"][0] == same["recall"][0] == same["coverage"][0] == 1.0
    collapsed = np.zeros((500, 2)) + rng.standard_normal((500, 2)) * 0.01  # every fake at the mode
    fell = prdc(real[None], collapsed[None], 3)
    assert fell["precision"][0] == 1.0  # precision stays high
    assert fell["recall"][0] < 0.05 and fell["coverage"][0] < 0.05  # recall and coverage fall
