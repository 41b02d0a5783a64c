"""The divergence view of Khelifa, Turner and Venkataramanan (ICML 2026): the grid kernels against the closed forms
for Gaussians, the (1 − α)² contraction the discount rests on, the discounted sum where it is exact, and the
``chi2_to_data`` / ``kl_to_data`` metrics and the report section on a small run of ``khelifa-divergence``."""

import numpy as np
import pytest
from scipy import integrate, stats

from conftest import run_small
from modelcollapse.analysis import theory
from modelcollapse.analysis.divergence import GridFits, divergence_figure, divergences, grid_fits
from modelcollapse.config import load_raw
from modelcollapse.measures.grid import box_grid, grid_chi2, grid_kl
from modelcollapse.plugins.data.gaussian import MixtureSource
from modelcollapse.plugins.metrics.divergence import mixture_grid

# Two correlated 2-D Gaussians, p narrower than 2q (so χ²(p‖q) is finite).
MU_P, COV_P = np.array([0.3, -0.2]), np.array([[1.0, 0.3], [0.3, 0.8]])
MU_Q, COV_Q = np.array([0.0, 0.1]), np.array([[1.2, -0.1], [-0.1, 1.0]])
# Measured: grid and closed form differ by 2e-16 relative (KL) and 0 (χ²) at steps 0.25, 0.3 and 0.5 on [-12, 12]²:
# the Riemann sum of a Gaussian integrand converges faster than any power of the step. Stated tolerance: 1e-12.
GRID_RTOL = 1e-12


def log_normal(points, mu, cov):
    return stats.multivariate_normal(mu, cov).logpdf(points)


def test_grid_divergences_match_the_gaussian_closed_forms():
    points, cell = box_grid(np.full(2, -12.0), np.full(2, 12.0), 0.25)
    lp, lq = log_normal(points, MU_P, COV_P), log_normal(points, MU_Q, COV_Q)
    kl, chi2 = theory.gaussian_kl(MU_P, COV_P, MU_Q, COV_Q), theory.gaussian_chi2(MU_P, COV_P, MU_Q, COV_Q)
    assert 0.05 < kl < chi2 < 1  # a case far from trivial
    assert grid_kl(lp, lq, cell) == pytest.approx(kl, rel=GRID_RTOL)
    assert grid_chi2(lp, lq, cell) == pytest.approx(chi2, rel=GRID_RTOL)
    # Batched: a leading axis of two pairs, and the divergence of a density from itself is exactly 0.
    both = grid_kl(np.stack([lp, lq]), np.stack([lq, lq]), cell)
    assert both[0] == pytest.approx(kl, rel=GRID_RTOL) and both[1] == 0.0


def test_the_gaussian_chi2_closed_form_against_quadrature():
    # The completed square of gaussian_chi2 against scipy's quadrature of ∫ p²/q − 1, in 1-D with unequal variances.
    for mu, s1, s2 in [(0.7, 0.8, 1.1), (-1.0, 1.2, 1.0), (0.0, 0.5, 2.0)]:
        p, q = stats.norm(mu, s1), stats.norm(0.0, s2)
        # ∫ exp(2 log p − log q): no 0/0 where both densities underflow in the tails.
        quad = integrate.quad(lambda x, p=p, q=q: np.exp(2 * p.logpdf(x) - q.logpdf(x)), -30, 30, points=[0.0, mu])
        quad = quad[0] - 1
        assert theory.gaussian_chi2([mu], [[s1**2]], [0.0], [[s2**2]]) == pytest.approx(quad, rel=1e-9)
    # p²/q is not integrable once p's variance reaches twice q's.
    assert theory.gaussian_chi2([0.0], [[2.0]], [0.0], [[1.0]]) == float("inf")
    assert theory.gaussian_kl([0.0], [[2.0]], [0.0], [[1.0]]) == pytest.approx(0.5 * (2 - 1 - np.log(2)))


@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.7])
def test_mixing_real_data_contracts_chi2_by_one_minus_alpha_squared(alpha):
    # χ²(α p_data + (1 − α) p ‖ p_data) = (1 − α)² χ²(p ‖ p_data), exactly: the discount's origin. KL contracts by less.
    src = MixtureSource([1, 1, 1, 1], [[-3, -3], [-3, 3], [3, -3], [3, 3]], [0.7] * 4)
    points, cell = mixture_grid(src.means_, src.stds_)
    ld = src.log_prob(points)
    lp = MixtureSource([1, 3, 1, 1], [[-2.5, -3], [-3, 3], [3, -3.4], [3, 3]], [0.8, 0.6, 0.7, 0.7]).log_prob(points)
    lq = np.logaddexp(np.log(alpha) + ld, np.log1p(-alpha) + lp)
    assert grid_chi2(lq, ld, cell) == pytest.approx((1 - alpha) ** 2 * grid_chi2(lp, ld, cell), rel=1e-12)
    assert grid_kl(lq, ld, cell) < (1 - alpha) * grid_kl(lp, ld, cell)  # convexity only, no square


def test_discounted_sum_of_a_constant_one_step_error():
    # e_k = e every generation: S_m = e (1 − r^{m+1}) / (1 − r), r = (1 − α)², levelling off at e / (1 − r) for α > 0;
    # α = 0 leaves the plain sum e (m + 1), which grows without bound.
    m = np.arange(40)
    for alpha in (0.1, 0.3):
        r = (1 - alpha) ** 2
        s = theory.discounted_sum(np.full(40, 0.2), np.full(40, alpha))
        assert s == pytest.approx(0.2 * (1 - r ** (m + 1)) / (1 - r), rel=1e-12)
        assert s[-1] < 0.2 / (1 - r)
    assert theory.discounted_sum(np.full(40, 0.2), np.zeros(40)) == pytest.approx(0.2 * (m + 1), rel=1e-12)


def perfect_refits(alpha: float, generations: int) -> GridFits:
    """Generation 0 fits a distorted mixture; every later fit is exactly its training density q (e_m = 0 for m ≥ 1)."""
    src = MixtureSource([1, 1, 1, 1], [[-3, -3], [-3, 3], [3, -3], [3, 3]], [0.7] * 4)
    points, cell = mixture_grid(src.means_, src.stds_)
    ld = src.log_prob(points)
    fits = [MixtureSource([1, 1, 2, 1], [[-3, -2.6], [-3, 3], [3, -3], [3.3, 3]], [0.7] * 4).log_prob(points)]
    for _ in range(generations - 1):
        fits.append(np.logaddexp(np.log(alpha) + ld, np.log1p(-alpha) + fits[-1]))
    shares = np.r_[1.0, np.full(generations - 1, alpha)][None]
    return GridFits(np.stack(fits)[None], ld, cell, shares)


@pytest.mark.parametrize("alpha", [0.1, 0.3])
def test_perfect_refits_follow_the_discounted_sum_exactly(alpha):
    # The derivable case: no fit adds error after generation 0, so D_m = (1 − α)^{2m} D_0 = S_m, while the plain sum
    # stays at D_0.
    d = divergences(perfect_refits(alpha, 12), grid_chi2)
    d0 = d["accumulated"][0, 0]
    assert d0 > 0.1 and d["one_step"][0, 0] == d0
    assert np.abs(d["one_step"][0, 1:]).max() < 1e-12 * d0
    expected = (1 - alpha) ** (2 * np.arange(12)) * d0
    assert d["accumulated"][0] == pytest.approx(expected, rel=1e-9)
    assert d["discounted"][0] == pytest.approx(expected, rel=1e-9)
    assert d["plain"][0] == pytest.approx(np.full(12, d0), rel=1e-9)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``khelifa-divergence`` at CI scale: 3 replicates, 5 generations of 100 records."""
    raw = load_raw("khelifa-divergence")
    raw.update(replicates=3)
    raw["loop"].update(generations=5, samples=100, heldout=200)
    out = tmp_path_factory.mktemp("khelifa") / "run"
    return out, run_small(raw, out)


def test_the_metrics_and_the_view_agree_bit_for_bit(run):
    out, metrics = run
    fits = grid_fits(out)
    assert sorted(fits) == ["alpha-0", "alpha-0.1", "alpha-0.3"]
    for arm, alpha in [("alpha-0", 0.0), ("alpha-0.1", 0.1), ("alpha-0.3", 0.3)]:
        f = fits[arm]
        assert f.log_fit.shape[:2] == (3, 5)
        assert f.shares[:, 0].tolist() == [1.0] * 3 and np.all(f.shares[:, 1:] == alpha)
        for name, kernel in [("chi2_to_data", grid_chi2), ("kl_to_data", grid_kl)]:
            d = divergences(f, kernel)
            assert np.array_equal(d["accumulated"].T, metrics[(arm, name)])
            assert np.array_equal(d["one_step"][:, 0], d["accumulated"][:, 0])
            assert np.all(d["one_step"] > 0) and np.all(np.isfinite(d["discounted"]))


def test_the_report_shows_the_view(run):
    from modelcollapse.analysis.report import build_report

    out, _ = run
    html = build_report(out).read_text()
    assert "Accumulated divergence against the discounted sum" in html
    for name in ("χ²", "KL"):  # a row per arm and divergence, the arm's α beside its name
        assert f'<td class="l">alpha-0.3</td><td class="l">0.3</td><td class="l">{name}</td>' in html
    fits = grid_fits(out)
    panels = {
        arm: (0.1, {n: divergences(f, k) for n, k in (("χ²", grid_chi2), ("KL", grid_kl))}) for arm, f in fits.items()
    }
    fig = divergence_figure(panels, out / "figures" / "divergence-test.png")
    assert fig.axes and len(fig.axes) == 6  # two rows (χ², KL) by three arms
    assert all(len(ax.lines) == 4 for ax in fig.axes)  # D, S, Σ e, e
    assert len(fig.axes[0].get_legend().get_texts()) == 4
    assert all(ax.get_yscale() == "log" for ax in fig.axes)


def test_a_source_without_a_grid_is_refused(tmp_path):
    raw = load_raw("khelifa-divergence")
    raw.update(replicates=1, arms={"alpha-0": {}})
    raw["data"] = {"kind": "gaussian-mixture", "weights": [1, 1], "means": [[0, 0, 0], [3, 3, 3]], "stds": [1, 1]}
    raw["loop"].update(generations=1, samples=20, heldout=20)
    with pytest.raises(Exception, match="integrates on a grid over a Gaussian-mixture source of 1 or 2 dimensions"):
        run_small(raw, tmp_path / "run")
