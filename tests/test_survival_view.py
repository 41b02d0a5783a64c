"""The survival view (analysis/survival.py) and the ``survival`` metric: per generation-0 count c, the share of
categories still present after g refits, against the exact Wright–Fisher law and the report's Poisson-limit closed
form 1 − exp(−c g_g), on a synthetic Zipf and on wordfreq's English words."""

import importlib.util

import numpy as np
import pytest
from scipy import stats

from conftest import run_small
from modelcollapse.analysis import theory
from modelcollapse.analysis.survival import count_bins, shown_generations, survival_bins, survival_tables
from modelcollapse.config import load_raw

N, R, G = 1000, 40, 21
WORDFREQ = importlib.util.find_spec("wordfreq") is not None


def wright_fisher_survival(n: int, generations: int) -> np.ndarray:
    """``(generations + 1, n + 1)``: P(a category with count c at generation 0 is present at generation g) when each
    generation draws n records from the last fit, its count following Binomial(n, count / n) exactly."""
    c = np.arange(n + 1)
    step = stats.binom.pmf(c[None, :], n, c[:, None] / n)
    extinct = [(c == 0).astype(float)]
    for _ in range(generations):
        extinct.append(step @ extinct[-1])
    return 1 - np.array(extinct)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The forgetting preset's categorical arms at CI scale: N = 1,000 draws a generation, 40 replicates, 21 fits."""
    arm = {
        "model": {"kind": "categorical"},
        "metrics": ["support_size", "survival"],
        "replicates": R,
        "loop.samples": N,
        "loop.generations": G,
    }
    arms = {"zipf": {**arm, "data": {"kind": "zipf", "exponent": 1.1, "types": N}}}
    if WORDFREQ:
        arms["wordfreq"] = {**arm, "data": {"kind": "categorical", "distribution": "wordfreq", "categories": N}}
    raw = load_raw("forgetting")
    raw.update(arms=arms, report={"records": 0})
    out = tmp_path_factory.mktemp("forgetting") / "run"
    return out, run_small(raw, out)


def test_the_poisson_limit_is_close_to_the_exact_law():
    # The report's closed form against the exact Wright–Fisher law at N = 1,000 (the tolerance of the next test).
    exact = wright_fisher_survival(N, G - 1)
    c = np.arange(1, N + 1)
    for g in (1, 5, 20):
        assert np.max(np.abs(theory.survival_by_count(c, g) - exact[g, 1:])) < 0.004
    assert theory.survival_by_count(np.array([0, 1, 7]), 0).tolist() == [0.0, 1.0, 1.0]
    assert theory.survival_by_count(np.array([1]), 1)[0] == pytest.approx(1 - np.exp(-1))


def test_survival_by_count_matches_the_law(run):
    out, metrics = run
    tables = survival_tables(out)
    assert sorted(tables) == sorted(["zipf"] + (["wordfreq"] if WORDFREQ else []))
    exact = wright_fisher_survival(N, G - 1)
    for arm, table in tables.items():
        assert table.generations.tolist() == list(range(G)) and table.alive.shape == (G, len(table.counts))
        # every generation-0 category is present at generation 0; the pairs are the generation-0 support summed
        np.testing.assert_array_equal(table.alive[0], table.total)
        assert table.total.sum() == metrics[(arm, "support_size")][0].sum()
        # the metric (share of the generation-0 support still present, per replicate) pools to the table's share
        pooled = (metrics[(arm, "survival")] * metrics[(arm, "support_size")][0]).sum(1) / table.total.sum()
        np.testing.assert_allclose(pooled, table.alive.sum(1) / table.total.sum(), rtol=1e-12)
        assert shown_generations(table.generations) == [1, 2, 5, 10, 20]
        for g in (1, 5, 20):
            mean, share, se, closed, n = survival_bins(table, g)
            which = np.searchsorted(count_bins(int(table.counts.max())), table.counts, side="right") - 1
            keep = np.bincount(which, table.total) >= 10
            law = (np.bincount(which, table.total * exact[g, table.counts]) / np.bincount(which, table.total))[keep]
            # 4 binomial s.e. of the share at the exact law (pairs in one replicate are negatively correlated, so
            # this over-states the spread a little)
            assert np.all(np.abs(share - law) <= 4 * np.sqrt(law * (1 - law) / n) + 1e-12), (arm, g, share, law)
            assert np.all(np.abs(closed - law) < 0.004)  # the drawn closed form: the Poisson limit
        # survival rises with the count and falls with the generations
        first, last = survival_bins(table, 1)[1], survival_bins(table, 20)[1]
        assert first[0] > last[0] and last[-1] > last[0]


def test_the_report_draws_the_survival_view(run):
    from modelcollapse.analysis.report import build_report

    out, _ = run
    page = build_report(out).read_text()
    assert "Survival of categories (forgetting)" in page and 'alt="survival"' in page
    assert (out / "figures" / "survival.png").stat().st_size > 10_000


def test_survival_needs_categorical_fits():
    from modelcollapse.engine.plan import validate
    from modelcollapse.errors import ConfigError

    with pytest.raises(ConfigError, match="metric 'survival' needs model.kind to provide probs_"):
        validate({"data": {"kind": "poisson"}, "model": {"kind": "poisson"}, "metrics": ["survival"]})
