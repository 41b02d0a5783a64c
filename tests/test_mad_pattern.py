"""The report's "published pattern beside ours" section (analysis/mad_pattern.py): each of MAD's claims (and Shi et
al.'s, with the memorisation share) is read by its stated rule from the medians, and shows in a run's report."""

import numpy as np
import pytest

from modelcollapse.analysis.mad_pattern import ARMS, pattern_rows, section
from modelcollapse.analysis.report import Curve


def curve(*medians: float) -> Curve:
    m = np.asarray(medians, float)
    return Curve(np.arange(len(m)), m, m - 0.01, m + 0.01, m)


#: MAD's pattern as published: (precision, recall, memorisation share) from generation 0 to 2, per arm.
MAD = {
    "fully-synthetic": ((0.6, 0.5, 0.4), (0.7, 0.4, 0.2), (0.05, 0.2, 0.5)),
    "fully-synthetic-biased": ((0.7, 0.7, 0.68), (0.6, 0.2, 0.05), (0.05, 0.3, 0.6)),
    "synthetic-augmentation": ((0.6, 0.55, 0.5), (0.7, 0.6, 0.5), (0.05, 0.1, 0.1)),
    "fresh-data": ((0.6, 0.6, 0.6), (0.7, 0.68, 0.66), (0.05, 0.05, 0.06)),
}


def data_of(table: dict) -> dict:
    out = {}
    for arm, (p, r, m) in table.items():
        out[(arm, "precision")], out[(arm, "recall")], out[(arm, "memorisation_share")] = (
            curve(*p),
            curve(*r),
            curve(*m),
        )
    return out


def test_the_published_pattern_holds_claim_by_claim():
    rows = pattern_rows(data_of(MAD))
    assert [r["holds"] for r in rows] == [True] * 5
    assert rows[0]["ours"] == "fully-synthetic: precision 0.6 → 0.4 (gen 2), recall 0.7 → 0.2 (gen 2)"
    assert rows[4]["source"] == "Shi et al. 2025"


@pytest.mark.parametrize(
    "arm, which, values, broken",
    [
        ("fully-synthetic", 0, (0.6, 0.65, 0.7), 0),  # precision rises: no loss of quality
        ("fully-synthetic-biased", 0, (0.7, 0.5, 0.5), 1),  # precision falls to 71% of its first
        ("synthetic-augmentation", 1, (0.7, 0.3, 0.1), 2),  # ends below fully synthetic's 0.2
        ("fresh-data", 1, (0.7, 0.6, 0.5), 3),  # loses 29%
        ("fresh-data", 2, (0.05, 0.3, 0.6), 4),  # memorises more than fully synthetic
    ],
)
def test_each_rule_fails_when_its_arm_breaks_the_pattern(arm, which, values, broken):
    table = {a: list(v) for a, v in MAD.items()}
    table[arm][which] = values
    holds = [r["holds"] for r in pattern_rows(data_of(table))]
    assert holds == [i != broken for i in range(5)]


def test_the_section_needs_all_four_arms_and_skips_shi_without_the_memorisation_share():
    data = data_of(MAD)
    assert section({k: v for k, v in data.items() if k[0] != "fresh-data"}) is None
    no_share = {k: v for k, v in data.items() if k[1] != "memorisation_share"}
    assert [row[0] for row in section(no_share)["rows"]][
        -1
    ] == "fresh data stabilises (recall ends within 20% of generation 0's)"
    assert section(data)["held"] == 5 and len(ARMS) == 4


def test_a_mad_run_report_shows_the_section(tmp_path):
    """mad-loops (Gaussian, seconds) has MAD's four arms: its report holds the table, one row per claim."""
    from click.testing import CliRunner

    from modelcollapse.cli import main

    out = tmp_path / "run"
    args = ["run", "mad-loops", "--out", str(out), "--quiet", "--set", "replicates=2", "--set", "loop.generations=3"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "Published pattern beside ours" in page
    assert page.count("Alemohammad et al. 2024 (MAD)") == 4 and "Shi et al. 2025" not in page
