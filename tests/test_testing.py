"""modelcollapse.testing: every family, metric and regime shipped passes the conformance checks a plug-in author runs,
and plug-ins broken on purpose fail them with a message that names the plug-in and the fix."""

import subprocess
import sys

import numpy as np
import pytest
from test_conformance import CASES, SLOW

from conftest import needs
from modelcollapse.plugins.metrics import METRICS
from modelcollapse.plugins.models import MODELS, Family
from modelcollapse.plugins.regimes import REGIMES
from modelcollapse.testing import ConformanceError, check_family, check_metric, check_regime

# One conformance case per family (the smallest that exercises it), reused from the family conformance suite.
FAMILY_CASES = {c.model["kind"]: name for name, c in reversed(sorted(CASES.items()))}
NEURAL = {
    "vae": ("torch", "sklearn"),
    "diffusion": ("torch",),
    "lm-tiny": CASES["lm-tiny"].needs,
    "lm-hf": CASES["lm-hf"].needs,
    "sklearn": ("sklearn",),
}


@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=pytest.mark.slow) if FAMILY_CASES[k] in SLOW else k for k in sorted(FAMILY_CASES)]
)
def test_every_shipped_family_passes_check_family(kind):
    case = CASES[FAMILY_CASES[kind]]
    needs(*case.needs)
    params = {k: v for k, v in case.model.items() if k != "kind"}
    check_family(kind, data=case.data, params=params, replicates=case.replicates, n=case.n, draws=case.draws)


GAUSS_1D, GAUSS_2D = {"kind": "gaussian", "mean": 1.0, "std": 2.0}, {"kind": "gaussian", "dim": 2}
MIXTURE = {"kind": "gaussian-mixture"}
CATS = {"kind": "categorical", "categories": 6, "distribution": "zipf"}
LM = ({**CASES["lm-tiny"].model}, CASES["lm-tiny"].data)
VAE = ({**CASES["vae"].model}, CASES["vae"].data)
# The (model, data) each metric is checked on: a family and source that declare what it needs.
ON = {
    **dict.fromkeys(
        [
            "mean",
            "variance",
            "trace_ratio",
            "det_ratio",
            "mean_sq_error",
            "w2_sq",
            "nll_real",
            "kl_real",
            "tail_mass",
            "w1",
            "energy",
            "degenerate",
        ],
        ({"kind": "gaussian"}, GAUSS_1D),
    ),
    **dict.fromkeys(["precision", "recall", "frechet", "memorisation_share"], ({"kind": "gaussian"}, GAUSS_2D)),
    **dict.fromkeys(
        ["component_std", "gmm_l2_to_gen0", "gmm_l2_sq_to_gen0", "mode_coverage", "chi2_to_data", "kl_to_data"],
        ({"kind": "gmm"}, MIXTURE),
    ),
    **dict.fromkeys(
        [
            "entropy",
            "support_size",
            "heterozygosity",
            "tv",
            "top_category",
            "l2_sq_to_truth",
            "missing_mass",
            "survival",
        ],
        ({"kind": "categorical"}, CATS),
    ),
    "nonzero": ({"kind": "poisson"}, {"kind": "poisson", "rate": [0.5, 3.0]}),
    "test_mse": ({"kind": "linear-regression"}, {"kind": "regression", "dim": 4}),
    "accuracy": ({"kind": "mean-difference"}, {"kind": "classification", "dim": 3}),
    **dict.fromkeys(["latent_std", "class_entropy", "class_coverage"], VAE),
    **dict.fromkeys(
        [
            "test_perplexity",
            "gen0_perplexity",
            "distinct_1",
            "distinct_2",
            "distinct_3",
            "repetition_rate",
            "self_bleu",
            "vocab_coverage",
            "rare_words_lost",
        ],
        LM,
    ),
}


def shipped(registry) -> set[str]:
    """The names ``registry`` holds from the package itself (other tests register plug-ins of their own)."""
    return {name for name in registry if registry.get(name).__module__.startswith("modelcollapse.")}


def test_every_shipped_metric_has_a_case():
    assert set(ON) == shipped(METRICS)


@pytest.mark.parametrize("name", sorted(ON))
def test_every_shipped_metric_passes_check_metric(name):
    model, data = ON[name]
    needs(*NEURAL.get(model["kind"], ()))
    small = {"replicates": 2, "n": case_n(model["kind"]), "draws": 8} if model["kind"] in NEURAL else {}
    check_metric(name, model=model, data=data, **small)


def case_n(kind: str) -> int:
    return CASES[FAMILY_CASES[kind]].n


@pytest.mark.parametrize("name", sorted(REGIMES))
def test_every_shipped_regime_passes_check_regime(name):
    check_regime(name)
    if REGIMES.trait(name, "mixes_real"):
        check_regime(name, params={"real_fraction": 0.5})


# -- broken on purpose ------------------------------------------------------------------------------------------------
class Shifted(Family):
    """A 1-D family that fits the mean and samples N(mean, 1): correct, except where a test breaks it."""

    def fit(self, x, *, rng):
        self.mean_ = x.mean(axis=(1, 2))
        self.degenerate_ = np.zeros(len(self.mean_), bool)
        return self

    def sample(self, n, *, rng):
        self.check_fitted("mean_")
        return self.mean_[:, None, None] + rng.standard_normal((len(self.mean_), n, 1))


@pytest.fixture
def register():
    """Register plug-ins for one test; unregister them after."""
    added = []

    def add(registry, name, obj, **traits):
        registry.register(name, **traits)(obj)
        added.append((registry, name))
        return obj

    yield add
    for registry, name in added:
        registry.unregister(name)


def test_a_correct_family_passes(register):
    register(MODELS, "shifted", Shifted, fitted=("mean_", "degenerate_"))
    check_family(Shifted)


def test_a_family_keeping_randomness_on_the_object_fails(register):
    class Frozen(Shifted):
        def sample(self, n, *, rng):  # GaussianMixture.sample's mistake: its own seed, the same draws every call
            return super().sample(n, rng=np.random.default_rng(0))

    register(MODELS, "frozen", Frozen, fitted=("mean_", "degenerate_"))
    with pytest.raises(
        ConformanceError,
        match=r"^family 'frozen': sample\(\) with the same generator gave different|"
        r"^family 'frozen': two successive sample\(\) calls gave the same records",
    ):
        check_family("frozen")


def test_an_undeclared_capability_fails(register):
    class WithMoments(Shifted):
        def moments(self):
            return self.mean_[:, None], np.ones((len(self.mean_), 1, 1))

    register(MODELS, "with-moments", WithMoments, fitted=("mean_", "degenerate_"))
    with pytest.raises(
        ConformanceError,
        match=r"^family 'with-moments': defines moments\(\) .* but does not declare "
        r"it, so the engine never uses it; add 'moments' to provides",
    ):
        check_family("with-moments")


def test_a_declared_capability_the_family_lacks_fails(register):
    register(MODELS, "boasting", Shifted, fitted=("mean_", "degenerate_"), provides=("log_prob",))
    with pytest.raises(ConformanceError, match=r"family 'boasting': declares provides='log_prob', but log_prob\(x"):
        check_family("boasting")


def test_an_undeclared_fitted_attribute_fails(register):
    register(MODELS, "secretive", Shifted, fitted=("degenerate_",))
    with pytest.raises(
        ConformanceError, match=r"family 'secretive': fit\(\) set mean_, which fitted=\('degenerate_',\)"
    ):
        check_family("secretive")


def test_a_state_that_misses_what_sample_reads_fails(register):
    class Hidden(Shifted):
        def fit(self, x, *, rng):
            super().fit(x, rng=rng)
            self._scale = 2.0 + x.std()  # read by sample, but not in get_state()
            return self

        def sample(self, n, *, rng):
            return super().sample(n, rng=rng) * getattr(self, "_scale", 1.0)

    register(MODELS, "hidden", Hidden, fitted=("mean_", "degenerate_"))
    with pytest.raises(
        ConformanceError, match=r"family 'hidden': a model restored from get_state\(\) \(saved as npz\)"
    ):
        check_family("hidden")


def test_an_unregistered_family_fails_naming_the_fix():
    with pytest.raises(ConformanceError, match=r"model Shifted: it is not registered; register it first"):
        check_family(Shifted)


def test_a_metric_that_reads_samples_but_claims_from_model_fails(register):
    register(METRICS, "sample_mean", lambda ctx: ctx.samples.mean(axis=(1, 2)), from_model=True)
    with pytest.raises(
        ConformanceError,
        match=r"metric 'sample_mean': it is registered from_model=True but its "
        r"values change with the samples",
    ):
        check_metric("sample_mean")
    register(METRICS, "sample_mean_ok", lambda ctx: ctx.samples.mean(axis=(1, 2)))
    check_metric("sample_mean_ok")


def test_a_metric_with_an_unseeded_draw_fails(register):
    register(METRICS, "jittery", lambda ctx: np.random.default_rng().random(len(ctx.samples)))
    with pytest.raises(ConformanceError, match=r"metric 'jittery': the same inputs and seed gave different values"):
        check_metric("jittery")


def test_a_metric_asking_what_the_family_lacks_fails(register):
    register(METRICS, "needs_probs", lambda ctx: ctx.model.probs_[:, 0], needs=("probs_",))
    with pytest.raises(
        ConformanceError,
        match=r"metric 'needs_probs': it declares needs=\('probs_',\), but "
        r"model.kind 'gaussian' does not provide probs_",
    ):
        check_metric("needs_probs")


def test_a_regime_reading_history_without_declaring_it_fails(register):
    def two_back(inputs):
        return [inputs.synthetic[-2]]

    register(REGIMES, "two-back", two_back)
    with pytest.raises(
        ConformanceError,
        match=r"regime 'two-back': it used synthetic data of generation 2 .* "
        r"does not declare keeps_history=True",
    ):
        check_regime("two-back")
    register(REGIMES, "two-back-kept", two_back, keeps_history=True)
    check_regime("two-back-kept")


def test_a_regime_drawing_fresh_data_without_declaring_it_fails(register):
    register(REGIMES, "always-fresh", lambda inputs: [inputs.fresh(inputs.samples)])
    with pytest.raises(ConformanceError, match=r"regime 'always-fresh': it drew fresh real data .* needs_fresh=True"):
        check_regime("always-fresh")


def test_a_regime_returning_records_not_chunks_fails(register):
    register(REGIMES, "bare", lambda inputs: inputs.synthetic[-1].x)
    with pytest.raises(ConformanceError, match=r"regime 'bare': it must return a non-empty list of Chunk; got ndarray"):
        check_regime("bare")


def test_a_misspelt_trait_fails_at_registration():
    with pytest.raises(
        ValueError,
        match=r"loop.regime: 'typo' declares unknown trait\(s\) keep_history; accepted: "
        r"keeps_history, mixes_real, needs_fresh",
    ):
        REGIMES.register("typo", keep_history=True)


def test_importing_modelcollapse_does_not_import_testing():
    code = "import sys, modelcollapse; print('modelcollapse.testing' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )
