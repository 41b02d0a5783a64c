"""Property-based fuzzing of configs: whatever tree a user writes, ``modelcollapse run`` exits 0, 1 or 2 with no
traceback, an error is one line, and it finishes quickly (tiny sizes; a size too large is refused, not run)."""

import time

import pytest
import yaml
from click.testing import CliRunner

from conftest import assert_clean_exit
from modelcollapse.cli import main

hypothesis = pytest.importorskip("hypothesis", reason="needs 'hypothesis': pip install 'modelcollapse[test]'")
st = hypothesis.strategies

SECONDS = 20  # per example: a generous bound for a tiny run on a loaded 2-core machine

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 60),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(
        [
            "gaussian",
            "categorical",
            "gmm",
            "kde",
            "replace",
            "accumulate",
            "mix",
            "fresh",
            "mean",
            "entropy",
            "w1",
            "exact",
            "finite",
            "population",
            "samples",
            "sklearn",
            "verifier",
            "file",
            "1e3",
            "nan",
            ".inf",
            "*a",
            "&a",
        ]
    ),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
small = st.one_of(st.integers(-1, 12), scalars)
loop = st.fixed_dictionaries(
    {},
    optional={
        "generations": small,
        "samples": small,
        "regime": st.one_of(scalars, st.fixed_dictionaries({"kind": scalars}, optional={"n_real": small})),
        "real_fraction": st.one_of(st.floats(-1, 2), scalars),
        "bias": st.one_of(st.floats(0, 3), scalars),
        "heldout": small,
        "sampling": scalars,
        "fit_to": scalars,
        "filters": st.one_of(junk, st.lists(st.fixed_dictionaries({"kind": scalars}), max_size=2)),
        "on_degenerate": scalars,
        "junk": junk,
    },
)
plugin = st.one_of(
    scalars,
    st.fixed_dictionaries(
        {"kind": scalars},
        optional={
            "dim": small,
            "std": scalars,
            "mean": junk,
            "categories": small,
            "variance": scalars,
            "estimator": scalars,
            "junk": junk,
        },
    ),
)
configs = st.fixed_dictionaries(
    {},
    optional={
        "name": scalars,
        "seed": small,
        "replicates": small,
        "shard_size": small,
        "data": plugin,
        "model": plugin,
        "loop": st.one_of(loop, junk),
        "metrics": st.one_of(junk, st.lists(scalars, max_size=3)),
        "arms": st.one_of(
            junk,
            st.dictionaries(
                st.text(min_size=1, max_size=4),
                st.one_of(
                    junk,
                    st.dictionaries(
                        st.sampled_from(["loop.samples", "model.kind", "seed", "replicates", "loop.regime", "x.y"]),
                        small,
                        max_size=2,
                    ),
                ),
                max_size=2,
            ),
        ),
        "grid": st.one_of(
            junk,
            st.dictionaries(
                st.sampled_from(["loop.samples", "loop.bias", "model.kind"]), st.lists(small, max_size=2), max_size=1
            ),
        ),
        "anatomy": junk,
        "alarm": junk,
        "sweep": junk,
        "unknown": junk,
    },
)


def tiny(raw: dict) -> dict:
    """Keep sizes small where the fuzzer left them valid, so a run that validates is quick."""
    for key, cap in (("replicates", 6), ("shard_size", 6)):
        if isinstance(raw.get(key), int) and not isinstance(raw[key], bool) and raw[key] > cap:
            raw[key] = cap
    raw.setdefault("replicates", 3)
    if isinstance(raw.get("loop"), dict):
        for key, cap in (("generations", 3), ("samples", 12), ("heldout", 20)):
            value = raw["loop"].get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > cap:
                raw["loop"][key] = cap
        raw["loop"].setdefault("generations", 2)
        raw["loop"].setdefault("samples", 8)
        raw["loop"].setdefault("heldout", 20)
    elif "loop" not in raw:
        raw["loop"] = {"generations": 2, "samples": 8, "heldout": 20}
    return raw


@hypothesis.settings(max_examples=150, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(raw=configs)
def test_any_config_tree_exits_cleanly(tmp_path_factory, raw):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump(tiny(raw), allow_unicode=True))
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(folder / "out"), "--quiet", "--no-report"])
    assert_clean_exit(result, raw, time.perf_counter() - started, SECONDS)


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(text=st.text(max_size=200), blob=st.binary(max_size=64))
def test_any_config_file_exits_cleanly(tmp_path_factory, text, blob):
    folder = tmp_path_factory.mktemp("fuzzfile")
    for i, data in enumerate((text.encode("utf-8", "surrogatepass"), blob)):
        path = folder / f"c{i}.yaml"
        path.write_bytes(data)
        result = CliRunner().invoke(
            main, ["run", str(path), "--out", str(folder / f"out{i}"), "--quiet", "--no-report"]
        )
        assert result.exit_code in (0, 1, 2), (data, result.output, result.exception)
        assert "Traceback" not in result.output
        if result.exit_code:
            assert len(result.output.strip().splitlines()) == 1, (data, result.output)
