"""The scaling view (analysis/scaling.py): a metric at the final generation against the training-set size, per arm,
beside the closed form; in a run whose grid varies a size key and in a sweep whose grid does.

Tolerances are 4 standard errors at the replicate count used; the missing mass's per-replicate standard deviation is
the analytic one (types' misses taken independent: an upper bound), since a few replicates estimate it badly.
"""

import numpy as np
import pytest

from conftest import run_small
from modelcollapse.analysis import theory
from modelcollapse.analysis.scaling import loglog_slope, run_scaling, size_key, sweep_scaling
from modelcollapse.config import load_raw
from modelcollapse.plugins.data import SOURCES

ZIPF = {"kind": "zipf", "exponent": 2.0, "types": 10_000}
SIZES = [100, 1_000, 10_000]
CUT = {"kind": "tail-cut", "source": ZIPF, "k": 10, "clean_share": 0.0}
R = 16


def missing_mass_sd(data: dict, train: int) -> float:
    """√(Σ p_i² u_i (1 − u_i)), u_i = (1 − q_i)^T: the missing mass's standard deviation over replicates with the
    types' misses taken independent (an upper bound: multinomial counts are negatively correlated)."""
    source = SOURCES.build(data)
    u = np.exp(train * np.log1p(-getattr(source, "train_probs", source.probs)))
    return float(np.sqrt(np.sum(source.probs**2 * u * (1 - u))))


@pytest.fixture(scope="module")
def tails(tmp_path_factory):
    """tails-zipf at CI scale: the clean arm and AI data cut at rank 10, on Zipf(2) over 10⁴ types, T = 10²–10⁴."""
    raw = load_raw("tails-zipf")
    raw.update(
        replicates=R,
        grid={"loop.samples": SIZES},
        report={"records": 0},  # no distribution pictures: faster
        arms={"clean": {"data": ZIPF}, "cut-k10": {"data": CUT}},
    )
    out = tmp_path_factory.mktemp("tails") / "run"
    run_small(raw, out)
    return out


def test_size_keys():
    assert size_key(["data.k", "loop.samples"]) == "loop.samples"
    assert size_key(["loop.regime.n_real"]) == "loop.regime.n_real"
    assert size_key(["model.ridge", "loop.generations"]) is None
    assert size_key(["data.max_blocks", "loop.samples"], "data.max_blocks") == "data.max_blocks"
    assert size_key(["loop.samples"], "data.max_blocks") is None  # declared but not varied: no view


def test_tails_zipf_medians_and_slopes_match_the_closed_form(tails):
    key, data = run_scaling(tails)
    assert key == "loop.samples" and list(data) == ["missing_mass"]
    curves = {c.label: c for c in data["missing_mass"]}
    assert sorted(curves) == ["clean", "cut-k10"]
    arms = {"clean": ZIPF, "cut-k10": CUT}
    for label, c in curves.items():
        np.testing.assert_array_equal(c.sizes, SIZES)
        assert list(c.replicates) == [R] * 3 and c.ref_stat == "mean"
        q = SOURCES.build(arms[label])
        expected = [theory.memoriser_error(q.probs, q.train_probs if label != "clean" else q.probs, t) for t in SIZES]
        np.testing.assert_allclose(c.ref_values[::2], expected, rtol=1e-12)  # the dashed curve at the sizes run
        sd = np.array([missing_mass_sd(arms[label], t) for t in SIZES])
        # the mean within 4 s.e.; the median within 4 s.e. of a median (√(π/2) s.e. of the mean for near-normal data)
        assert np.all(np.abs(c.mean - expected) < 4 * sd / np.sqrt(R)), (label, c.mean, expected)
        assert np.all(np.abs(c.median - expected) < 4 * np.sqrt(np.pi / 2) * sd / np.sqrt(R)), (
            label,
            c.median,
            expected,
        )
        # the midpoints of the dashed curve are the closed form at √(T_i T_(i+1))
        mid = theory.memoriser_error(q.probs, q.train_probs if label != "clean" else q.probs, int(round(np.sqrt(1e5))))
        assert c.ref_values[1] == pytest.approx(mid, rel=1e-12)
    # Slopes on log-log: the clean closed form falls as T^−½ (0.691 T^−½); the medians' least-squares slope matches it
    # within 4 s.e. (propagated from each median's relative s.e. through the least-squares weights).
    clean = curves["clean"]
    closed = loglog_slope(clean.sizes, clean.ref_values[::2])
    assert closed == pytest.approx(-0.5, abs=0.005)
    x = np.log(clean.sizes)
    w = (x - x.mean()) / np.sum((x - x.mean()) ** 2)
    rel_se = (
        np.sqrt(np.pi / 2) * np.array([missing_mass_sd(ZIPF, t) for t in SIZES]) / np.sqrt(R) / clean.ref_values[::2]
    )
    assert loglog_slope(clean.sizes, clean.median) == pytest.approx(closed, abs=4 * np.sqrt(np.sum(w**2 * rel_se**2)))
    # AI data cut at rank 10 breaks the law: from 10³ draws on, every replicate has seen the 10 types it can see, and
    # the error stays at the floor Σ_(i>10) p_i (slope 0)
    cut = curves["cut-k10"]
    np.testing.assert_allclose(cut.q25[1:], SOURCES.build(ZIPF).probs[10:].sum(), rtol=1e-9)
    assert loglog_slope(cut.sizes[1:], cut.median[1:]) == pytest.approx(0.0, abs=1e-9)


def test_the_report_of_a_size_grid_carries_the_scaling_figure(tails):
    from modelcollapse.analysis.report import build_report

    page = build_report(tails).read_text()
    assert "Scaling with the training-set size (loop.samples)" in page and 'alt="scaling-missing_mass"' in page
    assert (tails / "figures" / "scaling-missing_mass.png").stat().st_size > 10_000


def test_a_sweep_over_the_size_gets_the_scaling_view(tmp_path):
    # strong-collapse swept over n (the preset's own grid removed): the p = 0.3 arm against its closed form
    # E ≈ (σ² + p(1−p)‖Δ‖²)d/(n−d−1) + p²‖Δ‖² (1% allowed for the ≈, as in test_theory_newer), 4 s.e. of the mean.
    from modelcollapse.analysis.sweep_report import build_sweep_report
    from modelcollapse.engine.sweep import run_sweep

    raw = load_raw("strong-collapse")
    raw.update(replicates=24, shard_size=24, arms={"p0.3": {"data.shift_fraction": 0.3}})
    del raw["grid"]
    out, manifest = run_sweep(raw, {"loop.samples": [300, 3000]}, tmp_path / "sweep", [])
    assert manifest["status"] == "complete"
    key, data = sweep_scaling(out)
    (curve,) = data["test_mse"]
    assert key == "loop.samples" and curve.label == "p0.3" and list(curve.sizes) == [300, 3000]
    expected = [theory.strong_collapse_mse(1.0, 100, n, 0.3, 1.0) for n in (300, 3000)]
    np.testing.assert_allclose(curve.ref_values[::2], expected, rtol=1e-12)
    assert np.all(np.abs(curve.mean - expected) < 4 * curve.sem + 0.01 * np.array(expected)), (curve.mean, expected)
    assert curve.median[-1] > 0.09  # above the floor p²‖Δ‖² whatever n
    page = build_sweep_report(out).read_text()
    assert "Scaling with the training-set size (loop.samples)" in page and 'alt="scaling-test_mse"' in page
