"""The VAE family: conformance, checkpoints, and the latent spread shrinking across generations (Supp. Fig. 7)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")

from modelcollapse.engine.plan import validate  # noqa: E402
from modelcollapse.engine.runner import execute  # noqa: E402
from modelcollapse.errors import RunError  # noqa: E402
from modelcollapse.plugins.models import MODELS  # noqa: E402
from modelcollapse.rundir.store import RunStore  # noqa: E402

SMALL = {"kind": "vae", "latent": 4, "hidden": 64, "epochs": 3, "batch_size": 64, "threads": 1}


def digits(n=256):
    from modelcollapse.plugins.data import SOURCES

    return SOURCES.build({"kind": "digits"}, "data").pool(1, n, np.random.default_rng(0))


def rng(i):
    return np.random.default_rng(i)


def test_conformance():
    x = np.array(digits())
    before = x.copy()
    model = MODELS.build(SMALL, "model")
    with pytest.raises(RunError, match="not fitted yet"):
        model.sample(3, rng=rng(0))
    assert model.fit(x, rng=rng(1)) is model
    assert np.array_equal(x, before)
    a, b, c = model.sample(16, rng=rng(2)), model.sample(16, rng=rng(2)), model.sample(16, rng=rng(3))
    assert a.shape == (1, 16, 8, 8) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert model.degenerate_.shape == (1,) and not model.degenerate_.any()
    # same fit stream, same weights
    again = MODELS.build(SMALL, "model").fit(x, rng=rng(1))
    assert np.array_equal(again.sample(16, rng=rng(2)), a)
    # checkpoints round-trip through safetensors
    import tempfile

    from modelcollapse.rundir.columns import load_arrays, save_arrays

    with tempfile.TemporaryDirectory() as d:
        save_arrays(f"{d}/s.safetensors", model.get_state())
        restored = MODELS.build(SMALL, "model").set_state(load_arrays(f"{d}/s.safetensors"))
    assert np.array_equal(restored.sample(16, rng=rng(2)), a)
    assert restored.encode_mean(x[:, :5]).shape == (1, 5, 4)


def test_bernoulli_decoding_gives_binary_pixels():
    model = MODELS.build({**SMALL, "decode": "bernoulli", "epochs": 1}, "model").fit(digits(64), rng=rng(1))
    assert set(np.unique(model.sample(8, rng=rng(2)))) <= {0.0, 1.0}


def test_conv_architecture_on_28x28():
    x = np.random.default_rng(0).random((1, 32, 28, 28), dtype=np.float32)
    model = MODELS.build(
        {"kind": "vae", "architecture": "conv", "latent": 3, "capacity": 4, "epochs": 1, "threads": 1}, "model"
    )
    assert model.fit(x, rng=rng(1)).sample(5, rng=rng(2)).shape == (1, 5, 28, 28)


def run_config(generations):
    return validate(
        {
            "name": "vae-ci",
            "seed": 0,
            "replicates": 1,
            "data": {"kind": "digits", "max_images": 500},
            "model": {**SMALL, "latent": 8, "hidden": 128, "epochs": 20, "batch_size": 32},
            "loop": {"generations": generations, "samples": 500, "regime": "replace", "heldout": 100},
            "metrics": ["latent_std", "frechet", "precision", "recall", "class_entropy"],
        }
    )


def metric(out, name):
    t = RunStore(out).read_metrics().to_pydict()
    rows = sorted((g, v) for m, g, v in zip(t["metric"], t["generation"], t["value"]) if m == name)
    return np.array([v for _, v in rows])


def test_latent_std_falls_and_run_resumes(tmp_path):
    """Paper (MNIST, conv): 0.67 -> 0.61 -> 0.53 -> 0.47 -> 0.43. Here: 8x8 digits, a small MLP, 3 generations."""
    from conftest import run_killed_after

    cfg, out = run_config(3), tmp_path / "run"
    run_killed_after(cfg, out, 1)
    assert RunStore(out).read_manifest()["status"] == "interrupted"
    assert execute(cfg, out, resume=True, quiet=True)["status"] == "complete"

    std = metric(out, "latent_std")
    assert len(std) == 3 and std[-1] < 0.85 * std[0] and np.all(np.diff(std) < 0.02)
    assert metric(out, "frechet")[-1] > metric(out, "frechet")[0]
    grid = np.load(out / "arrays" / "arm000-shard000-gen000002.npz")["sample_grid"]
    assert grid.shape == (1, 64, 8, 8)
    assert (out / "checkpoints" / "arm000-shard000" / "state.safetensors").exists()

    fresh = tmp_path / "fresh"
    execute(cfg, fresh, quiet=True)
    assert np.allclose(metric(fresh, "latent_std"), std)  # resuming draws exactly what a straight run draws


@pytest.mark.gpu
def test_cuda_paths():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    model = MODELS.build({**SMALL, "device": "cuda"}, "model").fit(digits(64), rng=rng(1))
    assert model.sample(4, rng=rng(2)).shape == (1, 4, 8, 8)
    from modelcollapse.plugins.data import SOURCES

    src = SOURCES.build({"kind": "news", "block": 16, "max_blocks": 32, "validation_blocks": 8}, "data")
    real = np.array(src.pool(1, 32, rng(0)))
    lm = (
        MODELS.build(
            {
                "kind": "lm-tiny",
                "n_layer": 1,
                "n_head": 2,
                "n_embd": 32,
                "vocab_size": 256,
                "epochs": 1,
                "device": "cuda",
                "num_beams": 2,
            },
            "model",
        )
        .bind(src, real)
        .fit(real, rng=rng(1))
    )
    assert lm.sample(4, rng=rng(2)).shape == (1, 4, 16) and np.isfinite(lm.sequence_nll(src.heldout())).all()


def test_bias_truncates_the_latent():
    import torch

    from modelcollapse.seeding import torch_generator

    model = MODELS.build({**SMALL, "epochs": 1}, "model").fit(digits(128), rng=rng(1))
    full = model.sample(256, rng=rng(2))
    # λ = 1 keeps the unbiased bits: the decoded ε ~ N(0, I) of the same stream, as before bias existed
    assert np.array_equal(model.sample(256, rng=rng(2), bias=1.0), full)
    with torch.no_grad():
        eps = torch.randn((256, 4), generator=torch_generator(rng(2)))
        by_hand = torch.sigmoid(model._nets[0].decode(eps)).numpy()
        np.testing.assert_allclose(
            model.sample(256, rng=rng(2), bias=0.25)[0],
            torch.sigmoid(model._nets[0].decode(0.5 * eps)).numpy(),
            atol=1e-6,
        )  # z = √λ ε
    np.testing.assert_allclose(full[0], by_hand, atol=1e-6)
    # a small λ concentrates the decoded images: per-pixel variance falls
    variance = lambda s: float(s[0].var(0).mean())  # noqa: E731
    assert variance(model.sample(256, rng=rng(2), bias=0.01)) < 0.2 * variance(full)
