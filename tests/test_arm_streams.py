"""Random streams are keyed by the arm's name: adding, removing or reordering arms leaves every other arm's numbers
unchanged, and a config without arms or grid does not depend on its ``name``."""

import numpy as np
import pyarrow.parquet as pq

from modelcollapse.engine.plan import validate
from modelcollapse.engine.runner import execute
from modelcollapse.seeding import arm_key

ARMS = {
    "small": {"loop.samples": 10},
    "large": {"loop.samples": 40},
    "accumulate": {"loop.samples": 10, "loop.regime": "accumulate"},
}


def run(tmp_path, folder, **raw):
    base = {
        "name": "order",
        "seed": 7,
        "replicates": 6,
        "shard_size": 4,
        "data": {"kind": "gaussian", "dim": 2},
        "loop": {"generations": 4},
        "metrics": ["trace_ratio", "mean"],
        **raw,
    }
    execute(validate(base), tmp_path / folder, quiet=True)
    t = pq.read_table(tmp_path / folder / "metrics.parquet").to_pydict()
    out: dict = {}
    for arm, rep, gen, metric, value in zip(t["arm"], t["replicate"], t["generation"], t["metric"], t["value"]):
        out.setdefault(arm, {})[rep, gen, metric] = value
    return out


def test_arm_values_do_not_depend_on_the_other_arms(tmp_path):
    full = run(tmp_path, "full", arms=ARMS)
    reordered = run(tmp_path, "reordered", arms=dict(reversed(list(ARMS.items()))))
    fewer = run(tmp_path, "fewer", arms={k: v for k, v in ARMS.items() if k != "small"})
    assert set(full) == set(ARMS) and len(full["large"]) == 6 * 4 * 4  # trace_ratio, mean, train_real, train_synthetic
    for arm in ARMS:
        assert reordered[arm] == full[arm], arm  # bit-identical
    for arm in ("large", "accumulate"):
        assert fewer[arm] == full[arm], arm
    # and the arms do draw different numbers from one another (same settings, different names)
    twins = run(tmp_path, "twins", arms={"a": {}, "b": {}})
    assert not np.allclose(list(twins["a"].values()), list(twins["b"].values()))


def test_grid_arms_keyed_by_name_and_single_arm_by_zero(tmp_path):
    grid = run(tmp_path, "grid", grid={"loop.samples": [10, 40]})
    one = run(tmp_path, "one", grid={"loop.samples": [40]})
    assert one["loop.samples=40"] == grid["loop.samples=40"]
    plain = run(tmp_path, "plain", name="first")
    renamed = run(tmp_path, "renamed", name="second")
    assert list(plain.values())[0] == list(renamed.values())[0]  # the run's name is not part of its stream key


def test_arm_key_is_stable_and_63_bit():
    assert arm_key(None) == 0
    assert arm_key("large") == arm_key("large") != arm_key("small")
    assert all(0 <= arm_key(n) < 2**63 for n in ("", "a", "x" * 1000))
    assert arm_key("large") == 0x69AE20B542DC03F4  # pinned: stored results depend on it (sha256, not hash())
