"""Every preset's final numbers at CI scale, bit for bit against benchmarks/reference_values.json.

The presets run through the public CLI (benchmarks/reference_values.py); regenerate the reference with
``python benchmarks/reference_values.py --write`` only when a change of numbers is intended.
"""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import reference_values as rv  # noqa: E402

REFERENCE = rv.load_reference()


def _check(name: str) -> None:
    for module in rv.PRESETS[name].get("needs", []):
        pytest.importorskip(module)
    diff, _ = rv.check_preset(name, REFERENCE)
    assert diff is None, diff


@pytest.mark.parametrize("name", [n for n in rv.PRESETS if not rv.is_slow(n)])
def test_reference_values(name):
    _check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in rv.PRESETS if rv.is_slow(n)])
def test_reference_values_slow(name):
    _check(name)


def test_every_preset_is_covered():
    presets_dir = Path(rv.__file__).resolve().parents[1] / "src" / "modelcollapse" / "presets"
    presets = sorted(p.stem for p in presets_dir.glob("*.yaml"))
    assert sorted([*rv.PRESETS, *rv.SKIPPED]) == presets
    assert sorted(REFERENCE["presets"]) == sorted(rv.PRESETS)


def test_a_changed_bit_is_reported():
    entry = REFERENCE["presets"]["gaussian-replace"]["values"]
    arm = next(iter(entry))
    metric = next(iter(entry[arm]))
    changed = {a: {m: dict(v, values=list(v["values"])) for m, v in ms.items()} for a, ms in entry.items()}
    value = float.fromhex(changed[arm][metric]["values"][3])
    changed[arm][metric]["values"][3] = math.nextafter(value, math.inf).hex()  # one ulp
    diff = rv.first_difference("gaussian-replace", entry, changed)
    assert diff is not None and f"arm {arm!r} metric {metric!r} replicate 3" in diff
