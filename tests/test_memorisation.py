"""The memorisation share (Shi et al. 2025) against closed cases: copies of the training set score 1, fresh draws
from the training distribution score about the quantile, and the loop metric reads the generation's training set."""

import numpy as np
import pytest

from conftest import needs
from modelcollapse.measures import memorisation, memorisation_share, nearest_sq
from modelcollapse.plugins.metrics import Context, measure
from modelcollapse.plugins.regimes import REAL, Chunk


def test_samples_that_are_training_records_are_all_memorised():
    train = np.random.default_rng(0).normal(size=(3, 40, 5))
    for q in (0.0, 0.05, 0.5):
        np.testing.assert_array_equal(memorisation_share(train[:, ::-1], train, q), [1.0, 1.0, 1.0])


def test_fresh_draws_from_a_smooth_density_score_about_the_quantile():
    """A sample drawn from the training distribution is exchangeable with a training record, so its nearest-training
    distance falls below the q-quantile of the training records' nearest-other distances with probability about q.
    Over 100 replicates of n = m = 200 in 2-D the mean share is q within 0.01 (q = 0.05) and 0.015 (q = 0.2), and at
    q = 0 (the minimum) under 0.02. (At n = 50 the 5% bar is the 3rd smallest of 50 distances, which come in mutual
    nearest-neighbour pairs: fresh draws then score about 0.08.)"""
    rng = np.random.default_rng(1)
    train, fresh = rng.normal(size=(100, 200, 2)), rng.normal(size=(100, 200, 2))
    assert abs(memorisation_share(fresh, train, 0.05).mean() - 0.05) < 0.01
    assert abs(memorisation_share(fresh, train, 0.2).mean() - 0.2) < 0.015
    assert memorisation_share(fresh, train, 0.0).mean() < 0.02


def test_near_copies_count_and_far_records_do_not():
    """Training records on a grid of spacing 1 (nearest-other squared distance 1 for each): a sample within 0.5 of a
    record (squared 0.25 <= 1) counts, one 1.5 away from every record does not."""
    grid = np.stack(np.meshgrid(np.arange(6.0), np.arange(6.0)), -1).reshape(1, 36, 2)
    near, far = grid[:, :10] + 0.5 * np.array([0.6, 0.8]), grid[:, :10] + 10.0
    np.testing.assert_array_equal(memorisation_share(np.concatenate([near, far], 1), grid), [0.5])


def test_nearest_distances_match_brute_force_in_any_block_size(monkeypatch):
    a, b = np.random.default_rng(2).normal(size=(2, 2, 30, 4))
    brute = ((a[:, :, None] - b[:, None]) ** 2).sum(-1).min(-1)
    self_sq = ((a[:, :, None] - a[:, None]) ** 2).sum(-1) + np.where(np.eye(30, dtype=bool), np.inf, 0)
    for budget in (memorisation.PAIR_BUDGET, 70, 200):  # one block; blocks of one row; of three rows
        monkeypatch.setattr(memorisation, "PAIR_BUDGET", budget)
        np.testing.assert_allclose(nearest_sq(a, b), brute, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(nearest_sq(a, a, exclude_self=True), self_sq.min(-1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_a_quantile_outside_0_1_is_refused_by_name(bad):
    with pytest.raises(ValueError, match=rf"quantile must be in \[0, 1\]; got {bad}"):
        memorisation_share(np.zeros((1, 2, 1)), np.zeros((1, 2, 1)), bad)


def test_the_loop_metric_reads_every_training_chunk_on_digits():
    """On real 8x8 digits: the generation's own training images (split over a real and a synthetic chunk) score 1;
    held-out real digits, as novel as a perfect generaliser's samples, score about 0.05."""
    needs("sklearn")
    from modelcollapse.plugins.data import SOURCES

    source = SOURCES.build({"kind": "digits"}, "data")
    train = source.pool(1, 10**6, np.random.default_rng(0))[:, :600]
    chunks = [Chunk.tagged(train[:, :300], REAL), Chunk.tagged(train[:, 300:], 0)]

    def share(samples):
        ctx = Context(None, samples, source, None, 1, None, train=chunks)
        return measure(["memorisation_share"], ctx)["memorisation_share"]

    np.testing.assert_array_equal(share(train[:, ::-1]), [1.0])
    held_out = source.heldout()[None, :300]
    assert 0.0 < share(held_out)[0] < 0.12
