"""The plug-in layer: aliases resolve to one canonical name everywhere, regimes take their own parameters, the legacy
loop keys are aliases of them, and a parameterised regime (window) behaves as its definition says."""

import numpy as np
import pytest
import yaml

from conftest import run_small
from modelcollapse.engine.plan import make_plan, validate
from modelcollapse.errors import ConfigError
from modelcollapse.plugins.metrics import METRICS
from modelcollapse.plugins.models import MODELS
from modelcollapse.plugins.regimes import REGIMES
from modelcollapse.registry import Registry

BASE = {
    "name": "p",
    "seed": 3,
    "replicates": 6,
    "data": {"kind": "gaussian"},
    "model": {"kind": "gaussian"},
    "loop": {"generations": 6, "samples": 20},
    "metrics": ["variance", "mean"],
}


def with_loop(**loop):
    return {**BASE, "loop": {**BASE["loop"], **loop}}


def test_alias_is_resolved_once_and_written_canonically():
    plan = make_plan(
        validate(with_loop(regime="fully-synthetic", sampling="exact"))
    )  # refused before: compared strings
    assert plan.resolved["loop"]["regime"] == {"kind": "replace"}
    assert REGIMES.canonical("fresh-data") == "fresh" and REGIMES.get("fresh-data") is REGIMES.get("fresh")


def test_alias_run_equals_canonical_run(tmp_path):
    a = run_small(with_loop(regime="synthetic-augmentation", real_fraction=0.25), tmp_path / "a")
    b = run_small(with_loop(regime={"kind": "mix", "real_fraction": 0.25}), tmp_path / "b")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_legacy_keys_and_regime_parameters_agree_or_fail():
    plan = make_plan(validate(with_loop(regime="mix", n_real=5)))
    assert plan.resolved["loop"]["regime"] == {"kind": "mix", "real_fraction": 0.0, "n_real": 5}
    with pytest.raises(ConfigError, match=r"loop.real_fraction 0.5 and loop.regime.real_fraction 0.1 disagree"):
        validate(with_loop(regime={"kind": "mix", "real_fraction": 0.1}, real_fraction=0.5))


def test_regime_parameters_are_validated_from_the_signature():
    with pytest.raises(ConfigError, match=r"^unknown key 'loop.regime.kk'; accepted keys here: k. Did you mean 'k'\?$"):
        validate(with_loop(regime={"kind": "window", "kk": 2}))
    with pytest.raises(ConfigError, match=r"^loop.regime.k must be >= 1; got 0.$"):
        validate(with_loop(regime={"kind": "window", "k": 0}))
    with pytest.raises(
        ConfigError, match=r"^loop.regime.kind must be one of .*'window'; got 'windw'. Did you mean 'window'\?$"
    ):
        validate(with_loop(regime={"kind": "windw"}))


def test_window_of_one_is_replace_bit_for_bit(tmp_path):
    a = run_small(with_loop(regime={"kind": "window", "k": 1}), tmp_path / "w")
    b = run_small(with_loop(regime="replace"), tmp_path / "r")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_window_trains_on_the_last_k_generations(tmp_path):
    out = run_small({**with_loop(regime={"kind": "window", "k": 3}), "metrics": ["variance"]}, tmp_path / "w")
    synthetic = out[("p", "train_synthetic")][:, 0]
    g = np.arange(len(synthetic))
    np.testing.assert_array_equal(synthetic, np.minimum(g, 3) * 20)  # generation g trains on min(g, k) samples of 20
    assert np.all(out[("p", "train_real")][1:] == 0)


def test_window_variance_shrinks_slower_than_replace(tmp_path):
    """Closed-form direction: pooling k generations' samples (all from nearby fits) gives each refit k·M records, so the
    per-generation variance loss (factor ≈ 1 − 1/(kM) for the MLE) is smaller than replace's (1 − 1/M)."""
    raw = {
        **BASE,
        "replicates": 400,
        "model": {"kind": "gaussian", "variance": "mle"},
        "loop": {"generations": 30, "samples": 10},
        "metrics": ["variance"],
        "arms": {"replace": {"loop.regime": "replace"}, "window": {"loop.regime": {"kind": "window", "k": 4}}},
    }
    out = run_small(raw, tmp_path / "v")
    final = {arm: np.median(out[(arm, "variance")][-1]) for arm in ("replace", "window")}
    assert final["window"] > 3 * final["replace"]


def test_metric_traits_replace_the_side_list():
    assert METRICS.traits("variance")["from_model"] is True
    assert not METRICS.trait("w1", "from_model")


def test_family_capabilities_are_traits():
    assert all(MODELS.provides("gaussian", c) for c in ("moments", "log_prob", "fit_next", "cov_"))
    assert MODELS.provides("gmm", "log_prob") and MODELS.provides("gmm", "covariances_")
    assert not MODELS.provides("linear-regression", "fit_next") and not MODELS.provides("gmm", "probs_")
    assert MODELS.provides("sklearn", "anything_")  # fitted=None: its attributes are known only after fit
    can = [name for name in MODELS if MODELS.provides(name, "fit_population")]
    assert "gaussian" in can and "linear-regression" not in can
    with pytest.raises(ConfigError, match="families that can: " + ", ".join(map(repr, can))):
        validate(
            {
                **with_loop(sampling="exact"),
                "data": {"kind": "regression"},
                "model": {"kind": "linear-regression"},
                "metrics": ["test_mse"],
            }
        )


def test_registry_rejects_a_name_registered_twice():
    reg = Registry("thing.kind")
    reg.register("a", "b")(lambda: None)
    with pytest.raises(ValueError, match="'b' is registered twice"):
        reg.register("b")(lambda: None)


def test_resolved_config_round_trips(tmp_path):
    plan = make_plan(validate(with_loop(regime={"kind": "window", "k": 2})))
    again = make_plan(
        validate(
            yaml.safe_load(
                yaml.safe_dump({k: v for k, v in plan.resolved.items() if k not in ("version", "arms_resolved")})
            )
        )
    )
    assert again.resolved["loop"] == plan.resolved["loop"]
