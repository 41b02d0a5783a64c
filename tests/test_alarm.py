"""Collapse alarms on synthetic tidy tables, and through a run's report and `show`."""

import numpy as np
from click.testing import CliRunner

from conftest import run_small
from modelcollapse.analysis.alarm import alarms, describe, lead, run_alarms
from modelcollapse.cli import main


def table(series: dict[str, list[float]], replicates: int = 3, arm: str = "a"):
    """A tidy table whose every replicate of ``metric`` follows ``series[metric]`` (replicate r adds r·1e-3)."""
    cols = {"arm": [], "generation": [], "metric": [], "value": []}
    for metric, values in series.items():
        for g, v in enumerate(values):
            for r in range(replicates):
                cols["arm"].append(arm)
                cols["generation"].append(g)
                cols["metric"].append(metric)
                cols["value"].append(v + r * 1e-3)
    return {k: np.array(v, dtype=object if k in ("arm", "metric") else float) for k, v in cols.items()}


def test_diversity_fires_at_first_relative_drop_and_likelihood_at_first_rise():
    t = table({"recall": [0.9, 0.8, 0.5, 0.44, 0.1], "nll_real": [1.4, 1.6, 2.3, 2.5, 3.0]})
    found = {a.metric: a for a in alarms(t)}
    assert found["recall"].generation == 3  # 0.44 < 0.5 × 0.901; 0.5 is not
    assert found["nll_real"].generation == 3  # 2.501 − 1.401 > 1; 2.301 − 1.401 = 0.9 is not
    assert lead(list(found.values()), "a") == 0
    found = {a.metric: a for a in alarms(t, diversity_drop=0.1, likelihood_rise=0.5)}
    assert (found["recall"].generation, found["nll_real"].generation) == (1, 2)  # 0.801 < 0.9 × 0.901


def test_infinite_nll_is_a_rise():
    t = table({"nll_real": [2.0, 2.1, np.inf, np.inf]}, replicates=4)
    [a] = alarms(t)
    assert a.generation == 2 and a.value == np.inf


def test_perplexity_rise_is_in_nats_and_silent_metrics_are_reported():
    t = table({"test_perplexity": [20.0, 40.0, 60.0], "support_size": [10, 10, 9], "distinct_2": [0.4, 0.3, 0.1]})
    found = {a.metric: a for a in alarms(t)}
    assert found["test_perplexity"].generation == 2  # log(60/20) = 1.10 > 1; log 2 = 0.69 is not
    assert found["distinct_2"].generation == 2  # 0.1 < 0.5 × 0.4; 0.3 is not
    assert found["support_size"].generation is None
    assert "a: no alarm from support_size" in describe(list(found.values()))
    assert alarms(table({"w2_sq": [0.0, 5.0]})) == []  # not a watched metric


def test_alarm_in_show_and_report(tmp_path):
    raw = {
        "seed": 1,
        "replicates": 16,
        "data": {"kind": "gaussian", "dim": 1},
        "model": {"kind": "gaussian", "variance": "mle"},
        "loop": {"generations": 30, "samples": 10, "heldout": 500},
        "metrics": ["recall", "nll_real"],
        "alarm": {"diversity_drop": 0.3, "likelihood_rise": 0.5},
    }
    run_small(raw, tmp_path / "r")
    found = run_alarms(tmp_path / "r")
    assert {a.metric for a in found if a.generation is not None} == {"recall", "nll_real"}
    result = CliRunner().invoke(main, ["show", str(tmp_path / "r")])
    assert result.exit_code == 0 and "diversity alarm at generation" in result.output
    result = CliRunner().invoke(main, ["report", str(tmp_path / "r")])
    assert "Collapse alarms" in (tmp_path / "r" / "report.html").read_text()
