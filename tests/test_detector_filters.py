"""The ``detector`` and ``importance`` filters on token blocks, at tiny scale, and the ``detector-filter`` preset."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("transformers")

from modelcollapse.config import load_raw  # noqa: E402
from modelcollapse.engine.plan import validate  # noqa: E402
from modelcollapse.plugins.data import SOURCES  # noqa: E402
from modelcollapse.plugins.detectors import calibrate  # noqa: E402
from modelcollapse.plugins.filters import FilterContext, build_chain, density_ratio  # noqa: E402
from modelcollapse.plugins.models import MODELS  # noqa: E402

DATA = {"kind": "news", "block": 16, "max_blocks": 64, "validation_blocks": 24, "heldout_blocks": 8}
TINY = {
    "kind": "lm-tiny",
    "n_layer": 1,
    "n_head": 2,
    "n_embd": 32,
    "vocab_size": 512,
    "epochs": 2,
    "batch_size": 16,
    "decoding": "sample",
    "threads": 1,
}


@pytest.fixture(scope="module")
def setting():
    source = SOURCES.build(DATA, "data")
    real = np.array(source.pool(1, 64, np.random.default_rng(0)))
    model = MODELS.build(TINY, "model").bind(source, real).fit(real, rng=np.random.default_rng(1))
    # candidates: the model's own continuations and real blocks, interleaved
    candidates = np.concatenate([model.sample(16, rng=np.random.default_rng(2)), real[:, 48:64]], axis=1)
    return source, model, candidates


def ctx(source, model, seed=0):
    return FilterContext(source, model, model, source.heldout(), 1, np.random.default_rng(seed))


def run(spec, source, model, x, seed=0):
    ((_, fn),) = build_chain([spec])
    c = ctx(source, model, seed)
    out, keep = fn(x, np.ones(x.shape[:2], bool), c)
    return out, keep, c.stats


def test_preset_validates():
    cfg = validate(load_raw("detector-filter"))
    assert cfg.model["kind"] == "lm-tiny"


def test_detector_drops_exactly_the_scores_above_the_calibrated_threshold(setting):
    source, model, x = setting
    score = model.detector_scores(x, "fast-detectgpt")
    real = model.detector_scores(source.validation(), "fast-detectgpt")[0]
    for fpr in (0.1, 0.5):
        out, keep, stats = run({"kind": "detector", "fpr": fpr}, source, model, x)
        expected = calibrate(real[:12], fpr, heldout=real[12:])
        assert out is x and stats["detector_threshold"][0] == expected["threshold"]
        assert np.array_equal(keep, score <= expected["threshold"])
        assert stats["detector_fpr"][0] == expected["measured_fpr"]
    # a larger target FPR lowers the threshold: it keeps a subset of what the smaller one keeps
    loose = run({"kind": "detector", "fpr": 0.5}, source, model, x)[1]
    strict = run({"kind": "detector", "fpr": 0.05}, source, model, x)[1]
    assert np.all(loose <= strict) and loose.sum() < x.shape[1]


def test_density_ratio_matches_two_gaussians():
    # N(0,1) real vs N(1,1) synthetic scores: log r(s) = 0.5 − s exactly; 20,000 scores a class give the logistic
    # fit's coefficients a standard error of about 0.02, so 0.08 is four of them
    rng = np.random.default_rng(0)
    ratio = density_ratio(rng.normal(0, 1, (2, 20_000)), rng.normal(1, 1, (2, 20_000)))
    s = np.array([[-1.0, 0.0, 2.0], [-1.0, 0.0, 2.0]])
    assert np.allclose(np.log(ratio(s)), 0.5 - s, atol=0.08)


def test_importance_resamples_kept_records_in_proportion_to_the_density_ratio(setting):
    source, model, x = setting
    score = model.detector_scores(x, "fast-detectgpt")
    real = model.detector_scores(source.validation(), "fast-detectgpt")
    w = density_ratio(real, score)(score)[0]
    p = w / w.sum()
    means = []
    for seed in range(20):
        out, keep, stats = run({"kind": "importance"}, source, model, x, seed)
        assert keep.all() and out.shape == x.shape
        rows = {tuple(r) for r in x[0]}
        assert all(tuple(r) in rows for r in out[0])  # every output record is an input record
        index = [next(i for i in range(len(x[0])) if np.array_equal(x[0, i], r)) for r in out[0]]
        means.append(score[0, index].mean())
    # the mean score of a resample of n is an average of n draws from p: its expectation Σ pᵢ sᵢ, its standard error
    # sd_p(s) / √(n · 20) over 20 resamples; 4 standard errors
    expected = (p * score[0]).sum()
    se = np.sqrt((p * (score[0] - expected) ** 2).sum() / (len(p) * 20))
    assert abs(np.mean(means) - expected) < 4 * se + 1e-12
    assert 0 < stats["importance_ess"][0] <= 1


def test_filters_refuse_records_that_are_not_token_blocks(setting):
    from modelcollapse.errors import ConfigError

    source, model, _ = setting
    with pytest.raises(ConfigError, match="needs a language-model family"):
        run({"kind": "detector"}, source, model, np.zeros((1, 4, 3, 3)))
