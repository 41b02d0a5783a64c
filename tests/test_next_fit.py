"""Direct fits (model.next_fit): the same distribution as drawing the samples, at O(1) per replicate."""

import warnings

import numpy as np
import pytest
from scipy import stats

from conftest import run_small
from modelcollapse.engine.plan import resolve, validate
from modelcollapse.errors import ConfigError
from modelcollapse.plugins.models.gaussian import wishart


def gaussian_raw(sampler, **loop):
    return {
        "seed": 1 if sampler == "direct" else 2,
        "replicates": 4000,
        "data": {"kind": "gaussian"},
        "model": {"kind": "gaussian", "next_fit": sampler},
        "loop": {"generations": 10, "samples": 20, **loop},
        "metrics": ["variance", "mean"],
    }


def test_gaussian_direct_and_samples_agree_in_distribution(tmp_path):
    """Variance and mean after 10 generations, M = 20, 4000 replicates each way (independent seeds)."""
    exact = run_small(gaussian_raw("direct"), tmp_path / "e")
    samples = run_small(gaussian_raw("samples"), tmp_path / "s")
    for metric in ("variance", "mean"):
        a, b = exact[("run", metric)][9], samples[("run", metric)][9]
        assert stats.ks_2samp(a, b).pvalue > 0.001
        with warnings.catch_warnings():  # p is capped to [0.001, 0.25]; only the lower side matters here
            warnings.simplefilter("ignore", UserWarning)
            assert stats.anderson_ksamp([a, b], variant="midrank").pvalue > 0.001


def test_gaussian_direct_d3_mle_matches_samples(tmp_path):
    raw = lambda sampler, seed: {
        "seed": seed,
        "replicates": 1500,
        "data": {"kind": "gaussian", "dim": 3, "std": [1.0, 2.0, 0.5]},  # noqa: E731
        "model": {"kind": "gaussian", "variance": "mle", "next_fit": sampler},
        "loop": {"generations": 8, "samples": 12},
        "metrics": ["trace_ratio", "w2_sq"],
    }
    e, s = run_small(raw("direct", 1), tmp_path / "e"), run_small(raw("samples", 2), tmp_path / "s")
    for metric in ("trace_ratio", "w2_sq"):
        assert stats.ks_2samp(e[("run", metric)][7], s[("run", metric)][7]).pvalue > 0.001


def test_categorical_direct_is_bit_identical_to_samples(tmp_path):
    """Both paths draw the same multinomial counts from the same keyed stream."""
    raw = lambda sampler: {
        "replicates": 300,
        "data": {"kind": "categorical", "categories": 6, "distribution": "zipf"},  # noqa: E731
        "model": {"kind": "categorical", "next_fit": sampler},
        "loop": {"generations": 30, "samples": 15},
        "metrics": ["entropy", "support_size"],
    }
    e, s = run_small(raw("direct"), tmp_path / "e"), run_small(raw("samples"), tmp_path / "s")
    for key in e:
        np.testing.assert_array_equal(e[key], s[key])


def test_categorical_direct_agrees_in_distribution_with_other_seed(tmp_path):
    raw = lambda sampler, seed: {
        "seed": seed,
        "replicates": 3000,
        "data": {"kind": "categorical", "categories": 10},  # noqa: E731
        "model": {"kind": "categorical", "next_fit": sampler},
        "loop": {"generations": 8, "samples": 20},
        "metrics": ["heterozygosity"],
    }
    e, s = run_small(raw("direct", 5), tmp_path / "e"), run_small(raw("samples", 6), tmp_path / "s")
    assert stats.ks_2samp(e[("run", "heterozygosity")][7], s[("run", "heterozygosity")][7]).pvalue > 0.001


def test_wishart_bartlett_mean_and_trace_distribution():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    sigma = a @ a.T + 0.5 * np.eye(3)
    df, n = 7.0, 20_000
    w = wishart(df, np.broadcast_to(np.linalg.cholesky(sigma), (n, 3, 3)), rng)
    # E[W] = df·Σ; Var(W_ij) = df(Σ_ij² + Σ_ii Σ_jj), so the standard error of the mean is known.
    se = np.sqrt(df * (sigma**2 + np.outer(np.diag(sigma), np.diag(sigma))) / n)
    assert np.all(np.abs(w.mean(0) - df * sigma) < 4.5 * se)
    np.testing.assert_allclose(w, np.swapaxes(w, -1, -2))
    reference = stats.wishart(df=df, scale=sigma).rvs(size=4000, random_state=1)
    assert stats.ks_2samp(np.trace(w, axis1=1, axis2=2), np.trace(reference, axis1=1, axis2=2)).pvalue > 0.001


def test_wishart_one_d_is_scaled_chi_square():
    w = wishart(19.0, np.full((20_000, 1, 1), 2.0), np.random.default_rng(3))[:, 0, 0]
    assert stats.kstest(w / 4.0, stats.chi2(19).cdf).pvalue > 0.001


def test_auto_picks_direct_only_where_valid():
    def chosen(**over):
        raw = {
            "data": {"kind": "gaussian"},
            "model": {"kind": "gaussian", "next_fit": "auto"},
            "metrics": ["variance"],
            **over,
        }
        return resolve(validate(raw))["model"]["next_fit"]

    assert chosen() == "direct"
    assert chosen(loop={"regime": "accumulate"}) == "samples"
    assert chosen(metrics=["variance", "w1"]) == "samples"
    assert chosen(metrics=["tail_mass"]) == "direct"  # 1-D: the closed form, no samples
    assert chosen(data={"kind": "gaussian", "dim": 3}, metrics=["tail_mass"]) == "samples"
    assert chosen(data={"kind": "gaussian", "dim": 3}, loop={"samples": 3}) == "samples"
    assert chosen(loop={"bias": 0.5}) == "direct"  # fit_next draws from the biased sampling distribution
    assert chosen(loop={"filters": [{"kind": "dedup"}]}) == "samples"
    assert (
        resolve(validate({"data": {"kind": "gaussian"}, "model": {"kind": "gaussian"}}))["model"]["next_fit"]
        == "samples"
    )


def test_categorical_defaults_to_auto_because_its_bits_do_not_change():
    raw = {"data": {"kind": "categorical"}, "model": {"kind": "categorical"}, "metrics": ["entropy"]}
    assert resolve(validate(raw))["model"]["next_fit"] == "direct"


def test_explicit_direct_refuses_sample_metrics():
    raw = {
        "data": {"kind": "gaussian"},
        "model": {"kind": "gaussian", "next_fit": "direct"},
        "metrics": ["variance", "w1"],
    }
    with pytest.raises(
        ConfigError, match=r"model.next_fit 'direct' is not valid here: metrics \['w1'\] need the samples"
    ):
        validate(raw)
    raw = {**raw, "metrics": ["variance"], "loop": {"regime": "accumulate"}}
    with pytest.raises(ConfigError, match="loop.regime is 'accumulate', not 'replace'"):
        validate(raw)


class Killed(Exception):
    pass


def test_direct_resume_equals_uninterrupted(tmp_path):
    """Kill a unit after generation 3, run it again (it resumes from its checkpoint): the same bits as one run."""
    from modelcollapse.engine.loop import Unit, run_unit
    from modelcollapse.rundir.store import RunStore

    raw = {
        "replicates": 50,
        "data": {"kind": "gaussian", "dim": 2},
        "model": {"kind": "gaussian", "next_fit": "direct"},
        "loop": {"generations": 9, "samples": 30},
        "metrics": ["trace_ratio"],
    }
    cfg, unit = validate(raw), Unit(0, 0, 50)

    def kill_at_3(g):
        if g == 3:
            raise Killed

    tables = []
    for name, callbacks in (("whole", [lambda g: None]), ("killed", [kill_at_3, lambda g: None])):
        store = RunStore(tmp_path / name)
        for callback in callbacks:
            try:
                run_unit(cfg, unit, store, callback)
            except Killed:
                assert store.last_generation(0, 0) == 3
        store.finish(["run"], cfg.shard_size)
        tables.append(store.read_metrics())
    assert tables[0].equals(tables[1])


def test_gaussian_direct_follows_the_sampling_bias(tmp_path):
    raw = lambda sampler, seed: {
        "seed": seed,
        "replicates": 3000,
        "data": {"kind": "gaussian"},  # noqa: E731
        "model": {"kind": "gaussian", "next_fit": sampler},
        "loop": {"generations": 5, "samples": 20, "bias": 0.7},
        "metrics": ["variance"],
    }
    e, s = run_small(raw("direct", 1), tmp_path / "e"), run_small(raw("samples", 2), tmp_path / "s")
    assert stats.ks_2samp(e[("run", "variance")][4], s[("run", "variance")][4]).pvalue > 0.001
    assert np.median(e[("run", "variance")][4]) < 0.4  # 0.7⁴ shrink on top of the collapse: clearly biased
