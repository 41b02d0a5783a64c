"""Every preset's final numbers at CI scale against benchmarks/reference_values.json.

The presets run through the public CLI (benchmarks/reference_values.py). On the machine that wrote the reference (its
fingerprint: CPU, BLAS kernel and threads, numpy SIMD targets, numpy / scipy / torch versions, torch's CPU
capability) the values must agree bit for bit; elsewhere within each preset's ``rtol``, set a safe factor above the
largest difference measured under other BLAS kernels, thread counts and torch kernels (benchmarks/README.md), and
the columns a preset lists as ``not_portable`` not at all. The comparison tests below play both sides: a one-ulp
change fails on the writer; elsewhere twice a preset's rtol fails and half of it passes. Regenerate the values with
``python benchmarks/reference_values.py --write`` only when a change of numbers is intended.
"""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import reference_values as rv  # noqa: E402

REFERENCE = rv.load_reference()


@pytest.fixture(scope="module")
def here():
    """This machine's fingerprint; the tests below store it with a copy of the reference to play the writer."""
    return rv.fingerprint()


def _elsewhere(fingerprint: dict) -> dict:
    return {**fingerprint, "blas": ["openblas 0.3.30 SomeOtherKernel threads=1"]}  # any machine but the writer


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
    for name, entry in REFERENCE["presets"].items():
        assert entry["rtol"] >= rv.rtol_from(
            max(entry["measured_rdiff"].values()), float32=rv.computes_in_float32(name)
        ), name
        for arm, metric in rv.not_portable(entry):  # names real columns, and says why
            assert metric in entry["values"][arm] and entry["not_portable"]["why"], name


def _copy(values: dict) -> dict:
    return {a: {m: dict(v, values=list(v["values"])) for m, v in ms.items()} for a, ms in values.items()}


def _largest(values: dict, skip: frozenset) -> tuple[str, str, int]:
    """(arm, metric, index) of the finite value of largest magnitude outside ``skip``: its column's scale is
    itself."""
    cells = [
        (abs(float.fromhex(h)), arm, metric, i)
        for arm, ms in values.items()
        for metric, v in ms.items()
        for i, h in enumerate(v["values"])
        if math.isfinite(float.fromhex(h)) and (arm, metric) not in skip
    ]
    return max(cells)[1:]


def test_a_changed_bit_is_reported_on_the_writing_machine(here):
    written_here = {**REFERENCE, "fingerprint": here}
    assert rv.tolerance("gaussian-replace", written_here, here) is None  # the writer compares bit for bit
    entry = REFERENCE["presets"]["gaussian-replace"]["values"]
    arm = next(iter(entry))
    metric = next(iter(entry[arm]))
    changed = _copy(entry)
    value = float.fromhex(changed[arm][metric]["values"][3])
    changed[arm][metric]["values"][3] = math.nextafter(value, math.inf).hex()  # one ulp
    diff = rv.first_difference("gaussian-replace", entry, changed, None)
    assert diff is not None and f"arm {arm!r} metric {metric!r} replicate 3" in diff


@pytest.mark.parametrize("name", list(rv.PRESETS))
def test_elsewhere_twice_the_tolerance_is_caught_and_half_of_it_passes(name, here):
    rtol = rv.tolerance(name, {**REFERENCE, "fingerprint": here}, _elsewhere(here))
    assert rtol == REFERENCE["presets"][name]["rtol"]
    entry = REFERENCE["presets"][name]["values"]
    skip = rv.not_portable(REFERENCE["presets"][name])
    arm, metric, i = _largest(entry, skip)
    value = float.fromhex(entry[arm][metric]["values"][i])
    for factor, caught in ((1 + 2 * rtol, True), (1 + rtol / 2, False)):
        changed = _copy(entry)
        changed[arm][metric]["values"][i] = (value * factor).hex()
        diff = rv.first_difference(name, entry, changed, rtol, skip)
        assert (diff is not None) == caught, (factor, diff)
        if caught:
            rep = entry[arm][metric].get("replicates", range(i + 1))[i]  # chains number replicates across arms
            assert f"arm {arm!r} metric {metric!r} replicate {rep}" in diff and f"> rtol {rtol:g}" in diff


def test_relative_difference_is_against_the_column_scale():
    assert rv.relative_difference(1e-17, 0.0, 1.0) == 1e-17  # rounding noise at zero in a column of ones
    assert rv.relative_difference(1e-17, 0.0, 0.0) == 1.0  # a column of zeros has no scale to hide it in
    assert rv.relative_difference(2.0, 1.0, 0.5) == 0.5
    assert rv.relative_difference(math.nan, math.nan, 1.0) == 0.0
    assert rv.relative_difference(math.inf, 1.0, 1.0) == math.inf
    assert rv.column_scale([(-3.0).hex(), (2.0).hex(), "nan"]) == 3.0


def test_a_difference_of_shape_is_reported_in_both_modes():
    entry = REFERENCE["presets"]["gaussian-replace"]["values"]
    changed = _copy(entry)
    arm = next(iter(changed))
    changed[arm].popitem()
    for rtol in (None, 0.5):
        assert "only in reference" in rv.first_difference("gaussian-replace", entry, changed, rtol)
    assert rv.max_difference(entry, changed)[0] == math.inf


def test_a_not_portable_column_is_compared_only_on_the_writing_machine():
    # no preset lists one today (gaussian-multivariate's means were, until its draws became sign-free): mark one
    name = "gaussian-multivariate"
    arm, metric = "replace-n32", "mean_sq_error"
    skip = rv.not_portable({"not_portable": {"why": "a test", "columns": [[arm, metric]]}})
    entry = REFERENCE["presets"][name]["values"]
    changed = _copy(entry)
    changed[arm][metric]["values"][0] = (2 * float.fromhex(entry[arm][metric]["values"][0])).hex()
    assert rv.first_difference(name, entry, changed, 1e-9, skip) is None
    assert f"arm {arm!r} metric {metric!r} replicate 0" in rv.first_difference(name, entry, changed, None, skip)


def test_the_fingerprint_names_what_differs(here):
    stored = REFERENCE["fingerprint"]
    if stored is not None:
        assert sorted(here) == sorted(stored)  # the stored one has every field this version records
    assert rv.fingerprint_differences(here, here) == []
    assert rv.fingerprint_differences(here, _elsewhere(here)) == ["blas"]
    other_env = {**here, "env": {**here["env"], "OPENBLAS_CORETYPE": "Prescott"}}
    assert rv.fingerprint_differences(here, other_env) == ["env.OPENBLAS_CORETYPE"]
    assert rv.fingerprint_differences(None, here) == ["fingerprint"]
    unknown_writer = {**REFERENCE, "fingerprint": None}  # no machine compares bit for bit
    assert rv.tolerance("gmm-paper", unknown_writer, here) == REFERENCE["presets"]["gmm-paper"]["rtol"]


def test_the_fingerprint_reads_the_blas_kernel_and_degrades_without_threadpoolctl(monkeypatch):
    pytest.importorskip("threadpoolctl")
    libraries = rv.blas_libraries()
    assert libraries and all(" threads=" in lib for lib in libraries)
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # as if it were not installed: import raises
    assert rv.blas_libraries() is None
