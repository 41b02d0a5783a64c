"""The diffusion family against closed forms: on Gaussian data the affine denoiser's samples are N(x̄, S) up to a
discretisation error measured here; its replace loop follows row 2's trace decay; a killed run resumes bit for bit.

Measured discretisation (``Diffusion.moments()`` against the training set's MLE covariance, d = 3, relative to the
largest entry; the error is a shrink of the covariance, about 4.5/T under DDPM and 2.5/T under DDIM, cosine schedule):
T = 100: DDPM 4.5e-2, DDIM 2.5e-2; T = 1000: DDPM 4.9e-3, DDIM 2.6e-3. The linear schedule's is about 1.5 to 1.7 times
larger.
"""

import numpy as np
import pytest

pytest.importorskip("torch")

from conftest import run_small  # noqa: E402
from modelcollapse.plugins.models import MODELS  # noqa: E402

MEAN = np.array([1.0, -2.0, 3.0])
COV = np.array([[2.0, 0.6, -0.3], [0.6, 1.0, 0.2], [-0.3, 0.2, 0.5]])


def affine(**kw):
    return MODELS.build({"kind": "diffusion", "network": "affine", "threads": 1, **kw}, "model")


def gaussian_data(replicates=2, n=2000, seed=0):
    return np.random.default_rng(seed).multivariate_normal(MEAN, COV, size=(replicates, n))


def mle(x):
    c = x - x.mean(1, keepdims=True)
    return np.einsum("rni,rnj->rij", c, c) / x.shape[1]


@pytest.mark.parametrize(
    "sampler, timesteps, measured", [("ddpm", 100, 0.0455), ("ddim", 100, 0.0250), ("ddim", 1000, 0.00255)]
)
def test_affine_fit_samples_have_the_training_mean_and_covariance(sampler, timesteps, measured):
    x = gaussian_data()
    model = affine(sampler=sampler, timesteps=timesteps).fit(x, rng=np.random.default_rng(1))
    target = mle(x)
    mean, cov = model.moments()
    np.testing.assert_allclose(mean, x.mean(1), rtol=0, atol=1e-12)
    # discretisation: a shrink of about 4.5/T (DDPM) or 2.5/T (DDIM) of every entry, within 10% of the measured value
    discretisation = np.abs(cov - target).max((1, 2)) / np.abs(target).max((1, 2))
    np.testing.assert_allclose(discretisation, measured, rtol=0.1)
    # the samples: the moments above within sampling error (5 standard errors of each entry)
    m = 10_000
    s = model.sample(m, rng=np.random.default_rng(2)).astype(np.float64)
    var = np.diagonal(cov, axis1=1, axis2=2)
    assert np.all(np.abs(s.mean(1) - mean) < 5 * np.sqrt(var / m))
    se = np.sqrt((var[:, :, None] * var[:, None, :] + cov**2) / m)
    assert np.all(np.abs(mle(s) - cov) < 5 * se)
    # and so the training data's mean and covariance within sampling error plus the discretisation
    assert np.all(np.abs(mle(s) - target) < 5 * se + 1.1 * measured * np.abs(target).max((1, 2))[:, None, None])


def test_bias_scales_the_sample_covariance_by_lambda():
    """λ scales x_T and every step's noise: on Gaussian data the affine model's samples are N(x̄, λ·Σ_model)."""
    model = affine(timesteps=50).fit(gaussian_data(), rng=np.random.default_rng(1))
    _, cov = model.moments()
    s = model.sample(40_000, rng=np.random.default_rng(2), bias=0.5).astype(np.float64)
    var = np.diagonal(cov, axis1=1, axis2=2)
    se = np.sqrt((var[:, :, None] * var[:, None, :] + cov**2) / 40_000) * 0.5
    assert np.all(np.abs(mle(s) - 0.5 * cov) < 5 * se)


def test_discretisation_error_falls_as_one_over_t():
    x = gaussian_data()
    errors = [np.abs(affine(timesteps=t).fit(x, rng=None).moments()[1] - mle(x)).max() for t in (100, 1000)]
    assert 8 < errors[0] / errors[1] < 12


def test_replace_loop_follows_row_2():
    """Row 2: E[tr Σ̂_g / tr Σ₀] = ((n−1)/n)^(g+1) for an MLE Gaussian refitted to n of its own samples. The affine
    diffusion model is that fit up to its discretisation shrink δ (measured here, about 2.5e-3 at T = 1000 under
    DDIM), so its loop follows ((n−1)/n · (1−δ))^(g+1); the mean over 120 replicates stays within 4 standard errors of
    it, and within 4 standard errors plus (1 − (1−δ)^(g+1)) of the published closed form."""
    n, generations, d = 32, 12, 10
    model_cfg = {"kind": "diffusion", "network": "affine", "timesteps": 1000, "sampler": "ddim", "threads": 1}
    raw = {
        "seed": 0,
        "replicates": 120,
        "data": {"kind": "gaussian", "dim": d},
        "model": model_cfg,
        "loop": {"generations": generations, "samples": n, "regime": "replace"},
        "metrics": ["trace_ratio"],
    }
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        ratio = run_small(raw, out)[("run", "trace_ratio")]
    x = np.random.default_rng(5).normal(size=(50, n, d))
    fit = MODELS.build(model_cfg, "model").fit(x, rng=None)
    delta = 1 - np.mean(np.trace(fit.moments()[1], axis1=1, axis2=2) / np.trace(mle(x), axis1=1, axis2=2))
    assert 0.002 < delta < 0.003
    g = np.arange(generations) + 1
    closed = ((n - 1) / n) ** g
    expected = closed * (1 - delta) ** g
    se = ratio.std(1) / np.sqrt(ratio.shape[1])
    assert np.all(np.abs(ratio.mean(1) - expected) < 4 * se)
    assert np.all(np.abs(ratio.mean(1) - closed) < 4 * se + closed * (1 - (1 - delta) ** g))


def test_killed_run_resumes_bit_for_bit(tmp_path):
    """The MLP network, killed after generation 1 and resumed, gives the metrics of an uninterrupted run, bit for
    bit."""
    from conftest import metric_arrays, run_killed_after
    from modelcollapse.engine.plan import validate
    from modelcollapse.engine.runner import execute
    from modelcollapse.rundir.store import RunStore

    raw = {
        "name": "diffusion-ci",
        "seed": 0,
        "replicates": 2,
        "data": {"kind": "gaussian-mixture"},
        "model": {
            "kind": "diffusion",
            "hidden": 16,
            "layers": 1,
            "timesteps": 20,
            "train_steps": 30,
            "batch_size": 32,
            "threads": 1,
        },
        "loop": {"generations": 4, "samples": 64, "regime": "replace", "heldout": 200},
        "metrics": ["precision", "recall", "frechet"],
    }
    cfg, out = validate(raw), tmp_path / "run"
    run_killed_after(cfg, out, 1)
    assert RunStore(out).last_generation(0, 0) == 1
    assert execute(cfg, out, resume=True, quiet=True)["status"] == "complete"
    execute(cfg, tmp_path / "straight", quiet=True)
    resumed, straight = metric_arrays(out), metric_arrays(tmp_path / "straight")
    assert resumed.keys() == straight.keys() and {m for _, m in resumed} >= {"precision", "recall", "frechet"}
    assert np.all(resumed[("diffusion-ci", "frechet")] > 0)
    for key in resumed:
        assert resumed[key].shape == (4, 2)
        np.testing.assert_array_equal(resumed[key], straight[key])


# -- mode coverage -----------------------------------------------------------------------------------------------------
def mixture_context(samples):
    from modelcollapse.plugins.data import SOURCES
    from modelcollapse.plugins.metrics import Context

    source = SOURCES.build(
        {
            "kind": "gaussian-mixture",
            "weights": [1, 1, 1, 1],
            "stds": [0.7] * 4,
            "means": [[-3, -3], [-3, 3], [3, -3], [3, 3]],
        },
        "data",
    )
    return Context(model=None, samples=samples, source=source, heldout=None, generation=0, rng=None)


def test_mode_coverage_closed_forms():
    """All records in one of K = 4 equal modes: 1/K; records drawn from the mixture itself: 1; records far from
    every mode: 0; three modes with their share and one with under a quarter of it: 3/4."""
    from modelcollapse.plugins.metrics import measure

    ctx = mixture_context(None)
    rng = np.random.default_rng(0)
    one = np.array([3.0, -3.0]) + 0.7 * rng.standard_normal((2, 400, 2))
    spread = ctx.source.sample(2, 400, rng)
    far = np.full((2, 400, 2), 20.0)
    starved = spread.copy()
    starved[np.linalg.norm(spread - [-3, -3], axis=-1) < 3] = [3, 3]  # mode (-3, -3) emptied
    starved[:, :20] = [-3, -3]  # 20 of 400 records: 0.05 < 0.25 × 0.25 of them
    for x, expected in ((one, 0.25), (spread, 1.0), (far, 0.0), (starved, 0.75)):
        ctx = mixture_context(x)
        np.testing.assert_array_equal(measure(["mode_coverage"], ctx)["mode_coverage"], [expected, expected])


def test_fully_synthetic_loses_modes_that_fresh_data_keeps(tmp_path):
    """A planted easy setting: two modes at ±2 (std 0.7) fitted by the affine (Gaussian) diffusion model from 20
    records a generation. Fully synthetic, the fitted spread shrinks and wanders (row 2's ((n−1)/n)^g, plus a random
    walk of the mean) until the samples sit in one mode or none; with half of each training set fresh real data the
    spread holds and both modes keep their records."""
    model = {"kind": "diffusion", "network": "affine", "timesteps": 20, "sampler": "ddim", "threads": 1}
    raw = {
        "name": "cov",
        "seed": 0,
        "replicates": 8,
        "model": model,
        "data": {"kind": "gaussian-mixture", "means": [[-2.0], [2.0]], "stds": [0.7, 0.7]},
        "loop": {"generations": 40, "samples": 20, "regime": "fully-synthetic", "heldout": 100},
        "metrics": ["mode_coverage"],
        "arms": {"fully-synthetic": {}, "fresh-data": {"loop.regime": "fresh-data", "loop.n_real": 10}},
    }
    cov = run_small(raw, tmp_path)
    replace, fresh = cov[("fully-synthetic", "mode_coverage")], cov[("fresh-data", "mode_coverage")]
    assert replace[0].mean() >= 0.9 and fresh[0].mean() >= 0.9  # generation 0: one Gaussian over both modes
    assert replace[-1].mean() <= 0.5  # seeds 0-2 give 0.375, 0.31, 0.5: most replicates hold one mode or none
    assert fresh[-5:].mean() >= 0.95


def test_clip_keeps_samples_in_the_data_range():
    """``clip: [0, 1]`` clips x̂₀ at every step, so the last step lands inside the range; the same briefly trained
    network without it strays outside (and the same generator gives the same draws otherwise)."""
    x = np.random.default_rng(0).uniform(size=(2, 200, 4)) ** 3  # skewed, with a hard edge at 0
    cfg = {"kind": "diffusion", "hidden": 16, "layers": 1, "timesteps": 20, "train_steps": 20, "threads": 1}
    plain = MODELS.build(cfg, "model").fit(x, rng=np.random.default_rng(1)).sample(500, rng=np.random.default_rng(2))
    clipped = MODELS.build({**cfg, "clip": [0, 1]}, "model").fit(x, rng=np.random.default_rng(1))
    s = clipped.sample(500, rng=np.random.default_rng(2))
    assert s.min() >= -1e-6 and s.max() <= 1 + 1e-6
    assert plain.min() < -0.05 or plain.max() > 1.05


def test_clip_must_be_an_increasing_pair():
    from modelcollapse.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"model.clip must be null or \[low, high\] with low < high; got \[1.0, 0.0\]"
    ):
        MODELS.build({"kind": "diffusion", "clip": [1, 0]}, "model")
