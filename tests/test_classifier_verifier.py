"""The ``classifier-verifier`` filter (keep-if-confident on images) and the ``verifier-digits`` preset."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from conftest import run_small  # noqa: E402
from modelcollapse.config import load_raw  # noqa: E402
from modelcollapse.engine.plan import validate  # noqa: E402
from modelcollapse.errors import ConfigError  # noqa: E402
from modelcollapse.plugins.data import SOURCES  # noqa: E402
from modelcollapse.plugins.filters import FilterContext, build_chain, class_confidence, curate, verifier_net  # noqa: E402
from modelcollapse.plugins.metrics import Context  # noqa: E402
from modelcollapse.plugins.metrics.images import classifier  # noqa: E402


@pytest.fixture(scope="module")
def source():
    return SOURCES.build({"kind": "digits"}, "data")


@pytest.fixture(scope="module")
def candidates(source):
    """``(2, 200, 8, 8)``: real test digits, half of them blurred towards the mean image (low confidence)."""
    test = np.asarray(source.heldout()[:200], np.float32)
    blurred = 0.35 * test + 0.65 * test.mean(0)
    return np.stack([np.concatenate([test[:100], blurred[100:]]), np.concatenate([blurred[:100], test[100:]])])


def run(spec, source, x, keep=None):
    ((_, fn),) = build_chain([spec])
    ctx = FilterContext(source, None, None, np.empty(0), 1, np.random.default_rng(0))
    keep = np.ones(x.shape[:2], bool) if keep is None else keep
    out, kept = fn(x, keep, ctx)
    return out, kept, ctx.stats


def test_keeps_exactly_the_records_the_verifier_is_confident_of(source, candidates):
    conf = class_confidence(verifier_net(source, 128, None, 1), candidates)
    keep_in = np.random.default_rng(3).random(candidates.shape[:2]) < 0.8  # a filter earlier in the chain dropped some
    for threshold in (0.5, 0.9):
        out, kept, stats = run({"kind": "classifier-verifier", "threshold": threshold}, source, candidates, keep_in)
        assert out is candidates and np.array_equal(kept, keep_in & (conf >= threshold))
        assert 0 < kept.sum() < keep_in.sum()
        assert np.array_equal(stats["verifier_kept_share"], kept.sum(1) / keep_in.sum(1))
        assert np.allclose(stats["verifier_confidence"], [conf[r][keep_in[r]].mean() for r in range(2)])
        assert np.all(stats["verifier_kept_confidence"] >= threshold)
    # the blurred images are the ones dropped: the real half of each replicate keeps more
    _, kept, _ = run({"kind": "classifier-verifier", "threshold": 0.9}, source, candidates)
    assert kept[0, :100].mean() > kept[0, 100:].mean() + 0.3 and kept[1, 100:].mean() > kept[1, :100].mean() + 0.3


def test_replicates_are_judged_in_one_batch_as_one_at_a_time(source, candidates):
    net = verifier_net(source, 128, None, 1)
    both = class_confidence(net, candidates)
    one = np.concatenate([class_confidence(net, candidates[r : r + 1]) for r in range(2)])
    assert np.allclose(both, one, rtol=0, atol=1e-6)


def test_the_verifier_is_accurate_and_not_the_measuring_instrument(source):
    net = verifier_net(source, 128, None, 1)
    ctx = Context(None, np.empty((1, 0)), source, source.heldout(), 0, None)
    instrument = classifier(ctx)
    widths = lambda m: [layer.out_features for layer in m if hasattr(layer, "out_features")]  # noqa: E731
    assert widths(net) == [128, 10] and widths(instrument) == [256, 64, 10]
    test, labels = np.asarray(source.heldout(), np.float32), source.class_labels("test")
    import torch

    with torch.no_grad():
        pred = net(torch.as_tensor(test)).argmax(1).numpy()
    assert (pred == labels).mean() > 0.9  # trained on the real training split, judged on the real test split
    assert verifier_net(source, 128, None, 1) is net  # cached: trained once per process


def test_threshold_zero_keeps_every_draw_bit_for_bit(source, candidates):
    chain = build_chain([{"kind": "classifier-verifier", "threshold": 0.0}])
    ctx = FilterContext(source, None, None, source.heldout(), 1, np.random.default_rng(0))
    x, stats = curate(lambda n: candidates[:, :n], 150, chain, ctx)
    assert np.array_equal(x, candidates[:, :150]) and np.all(stats["verifier_kept_share"] == 1)
    assert np.all(stats["filter_drawn"] == 150)


def test_settings_and_records_are_checked(source):
    raw = load_raw("verifier-digits")
    raw["arms"] = {"a": {"loop.filters": [{"kind": "classifier-verifier", "threshold": 1.5}]}}
    with pytest.raises(
        ConfigError, match=r"^loop.filters\[0\].threshold must be in \[0, 1\] \(a class probability\); got 1.5.$"
    ):
        validate(raw)
    with pytest.raises(ConfigError, match=r"needs grey images \(R, n, H, W\); got records of shape \(1, 3, 2\)"):
        run({"kind": "classifier-verifier"}, source, np.zeros((1, 3, 2)))
    gaussian = SOURCES.build({"kind": "gaussian"}, "data")
    with pytest.raises(ConfigError, match="needs an image source with class labels"):
        run({"kind": "classifier-verifier"}, gaussian, np.zeros((1, 3, 8, 8)))


@pytest.mark.slow
def test_verifier_loop_keeps_confident_samples_and_raises_the_generators_confidence(tmp_path):
    raw = load_raw("verifier-digits")
    raw.update(replicates=1, metrics=["recall", "class_entropy"])
    raw["model"].update(epochs=20, batch_size=16, lr=3e-3, threads=1, device="cpu")
    raw["loop"].update(generations=2, samples=500)
    raw["arms"] = {k: raw["arms"][k] for k in ("replace", "verifier-0.9")}
    m = run_small(raw, tmp_path / "run")
    share, drawn, kept = (m[("verifier-0.9", k)] for k in ("verifier_kept_share", "filter_drawn", "filter_kept"))
    assert np.all((share > 0) & (share <= 1)) and np.array_equal(share, kept / drawn)  # the loop's counts agree
    assert np.all(m[("verifier-0.9", "verifier_kept_confidence")] >= 0.9)
    assert np.all(m[("replace", "verifier_kept_share")] == 1)
    # trained on what the verifier kept, generation 1 produces images it is more confident of than the unfiltered arm's
    assert m[("verifier-0.9", "verifier_confidence")][1, 0] > m[("replace", "verifier_confidence")][1, 0] + 0.1
