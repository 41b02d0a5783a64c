"""Renamed config keys: ``loop.sampling`` is now ``loop.fit_to`` and ``model.sampler`` is now ``model.next_fit``.
The old spellings still run the same thing, with a RenamedKey (DeprecationWarning) naming the new one."""

import warnings

import numpy as np
import pytest

from conftest import run_small
from modelcollapse.config import RenamedKey, current_spelling, expand_arms
from modelcollapse.engine.plan import resolve, validate
from modelcollapse.errors import ConfigError


def small(loop=None, model=None, **top):
    return {
        "seed": 4,
        "replicates": 6,
        "data": {"kind": "gaussian"},
        "model": model or {"kind": "gaussian"},
        "loop": {"generations": 4, "samples": 20, **(loop or {})},
        "metrics": ["variance", "mean"],
        **top,
    }


def test_loop_sampling_exact_runs_as_fit_to_population_and_warns(tmp_path):
    with pytest.warns(RenamedKey, match="loop.sampling: exact is now spelled loop.fit_to: population"):
        old = run_small(small({"sampling": "exact"}), tmp_path / "old")
    new = run_small(small({"fit_to": "population"}), tmp_path / "new")
    finite = run_small(small(), tmp_path / "finite")
    assert old.keys() == new.keys()
    for key in old:
        np.testing.assert_array_equal(old[key], new[key])
    assert not np.array_equal(old[("run", "variance")], finite[("run", "variance")])  # the switch did something


def test_model_sampler_spellings_map_to_next_fit():
    for old, new in (("exact", "direct"), ("samples", "samples"), ("auto", "direct")):
        with pytest.warns(RenamedKey, match=f"model.sampler: {old} is now spelled model.next_fit"):
            resolved = resolve(validate(small(model={"kind": "gaussian", "sampler": old})))
        assert resolved["model"]["next_fit"] == new and "sampler" not in resolved["model"]


def test_old_spellings_in_arms_and_grid():
    raw = small(
        arms={
            "pop": {"loop.sampling": "exact"},
            "whole": {"loop": {"generations": 2, "sampling": "exact"}},
            "plain": {},
        }
    )
    with pytest.warns(RenamedKey):
        arms = dict(expand_arms(validate(raw)))
    assert [arms[a].loop.fit_to for a in ("pop", "whole", "plain")] == ["population", "population", "samples"]
    with pytest.warns(RenamedKey):
        arms = dict(expand_arms(validate(small(grid={"model.sampler": ["exact", "samples"]}))))
    assert [arm.model["next_fit"] for arm in arms.values()] == ["direct", "samples"]
    assert list(arms) == ["model.sampler=exact", "model.sampler=samples"]  # arm names (and so streams) as spelled


def test_both_spellings_or_an_unknown_old_value_are_config_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RenamedKey)
        with pytest.raises(
            ConfigError,
            match="loop.sampling is the earlier name of loop.fit_to, and both are set; set loop.fit_to only.",
        ):
            validate(small({"sampling": "exact", "fit_to": "population"}))
    with pytest.raises(
        ConfigError,
        match=r"loop.sampling \(now loop.fit_to\) must be one of 'exact', 'finite'; "
        r"got 'exactly'",
    ):
        validate(small({"sampling": "exactly"}))


def test_the_diffusion_family_keeps_its_own_sampler_key():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RenamedKey)
        assert current_spelling("model.sampler", "ddim") == ("model.sampler", "ddim")
        assert current_spelling("loop.samples", 5) == ("loop.samples", 5)


def test_a_run_started_under_the_old_spellings_resumes(tmp_path):
    """config.yaml written before the rename (``loop.sampling``, ``model.sampler``) still matches the same config:
    killed after generation 1 and resumed, the run equals an uninterrupted one, bit for bit."""
    from conftest import metric_arrays, run_killed_after
    from modelcollapse.engine.runner import execute
    from modelcollapse.rundir.store import RunStore

    cfg = validate(small(model={"kind": "gaussian", "next_fit": "direct"}, arms={"a": {}, "b": {"loop.samples": 30}}))
    run_killed_after(cfg, tmp_path / "run", 1)
    store = RunStore(tmp_path / "run")
    old = store.read_config()
    for config in (old, *old["arms_resolved"].values()):  # as the version before the rename wrote it
        loop, model = config.pop("loop"), config.pop("model")
        config["loop"] = {k: v for k, v in loop.items() if k != "fit_to"} | {"sampling": "finite"}
        config["model"] = {k: v for k, v in model.items() if k != "next_fit"} | {"sampler": "exact"}
    store.write_config(old)
    assert "sampling" in store.read_config()["loop"]
    assert execute(cfg, tmp_path / "run", resume=True, quiet=True)["status"] == "complete"
    execute(cfg, tmp_path / "whole", quiet=True)
    resumed, whole = metric_arrays(tmp_path / "run"), metric_arrays(tmp_path / "whole")
    assert resumed.keys() == whole.keys() and all(np.array_equal(resumed[k], whole[k]) for k in whole)


def test_an_old_spelling_in_set_overrides_a_preset_written_with_the_new_one():
    """heat-death sets ``loop.fit_to: population``; ``--set loop.sampling=finite`` (or ``overrides=`` in Python)
    overrides it, as it did before the rename."""
    from modelcollapse.api import raw_config
    from modelcollapse.config import apply_overrides, load_raw

    with pytest.warns(RenamedKey):
        cli = apply_overrides(load_raw("heat-death"), ["loop.sampling=finite"])
        python = raw_config("heat-death", {"loop.sampling": "finite"})
    assert load_raw("heat-death")["loop"]["fit_to"] == "population"
    assert cli["loop"]["fit_to"] == python["loop"]["fit_to"] == "samples" and "sampling" not in cli["loop"]
