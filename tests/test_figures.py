"""What a person sees in the figures, read from the drawn matplotlib objects: how many lines, how many points each
spans (the generations), the axis labels and the legend entries. ``Run.plot`` for a single run, arms, a sweep, a
suite and a telephone run; then every figure each report builds (loop runs, arms with an anatomy, a run's own grid,
survival, a sweep, telephone chains, detectors, galleries). Tiny toy runs: the module takes seconds."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

import modelcollapse as mc  # noqa: E402
from conftest import LocalServer, send_json  # noqa: E402
from modelcollapse.analysis import gallery, plots  # noqa: E402

G = 4  # generations of every toy run here
BASE = {"name": "toy", "seed": 0, "replicates": 6, "loop": {"generations": G, "samples": 20}, "metrics": ["variance"]}
SMALL = {"replicates": 6, "loop.generations": G, "loop.samples": 20, "metrics": ["variance"]}
ARMS = {"replace": {}, "accumulate": {"loop.regime": "accumulate"}}


@pytest.fixture
def drawn(monkeypatch):
    """Every figure a report saves, by file name: every report saves through the one ``plots.save_figure``. The real
    one still writes each PNG; this keeps the (closed) Figure, whose axes and lines stay readable."""
    figures = {}
    save = plots.save_figure

    def keep(fig, path, **savefig):
        figures[Path(path).name] = fig
        save(fig, path, **savefig)

    monkeypatch.setattr(plots, "save_figure", keep)
    return figures


def points(ax) -> list[int]:
    """How many points each drawn line of ``ax`` spans (legend-only proxies, drawn empty, excluded)."""
    return [len(line.get_xdata()) for line in ax.lines if len(line.get_xdata())]


def legend(ax) -> list[str] | None:
    found = ax.get_legend()
    return None if found is None else [t.get_text() for t in found.get_texts()]


def spans_generations(line, generations: int = G) -> bool:
    return list(np.asarray(line.get_xdata(), float)) == list(range(generations))


# -- Run.plot -----------------------------------------------------------------------------------------------------
def test_run_plot_draws_one_median_line_over_the_generations(tmp_path):
    run = mc.run(BASE, out=tmp_path / "run")
    ax = run.plot("variance")
    assert points(ax) == [G] and spans_generations(ax.lines[0])
    assert list(ax.lines[0].get_ydata()) == run.curves("variance")["median"].tolist()
    assert len(ax.collections) == 1  # the interquartile band
    assert ax.get_xlabel() == "generation" and ax.get_ylabel() == "variance (median; band: IQR)"
    assert legend(ax) is None  # one line: nothing to tell apart


def test_run_plot_draws_one_line_per_arm(tmp_path):
    run = mc.run({**BASE, "arms": ARMS}, out=tmp_path / "run")
    ax = run.plot("variance", logy=True)
    assert points(ax) == [G, G] and all(spans_generations(line) for line in ax.lines)
    assert legend(ax) == ["accumulate", "replace"]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "generation"


def test_sweep_plot_draws_one_line_per_point_named_by_its_grid_values(tmp_path):
    sweep = mc.sweep(BASE, grid={"loop.samples": [10, 20], "seed": [1, 2]}, out=tmp_path / "sweep")
    assert sweep.kind == "sweep"
    ax = sweep.plot("variance")
    assert points(ax) == [G] * 4
    assert legend(ax) == [
        "loop.samples=10, seed=1",
        "loop.samples=10, seed=2",
        "loop.samples=20, seed=1",
        "loop.samples=20, seed=2",
    ]
    with_arms = mc.sweep({**BASE, "arms": ARMS}, grid={"loop.samples": [10, 20]}, out=tmp_path / "arms")
    assert legend(with_arms.plot("variance")) == [
        "loop.samples=10, accumulate",
        "loop.samples=10, replace",
        "loop.samples=20, accumulate",
        "loop.samples=20, replace",
    ]


def test_suite_plot_draws_one_line_per_member_arm(tmp_path):
    suite = mc.run(
        {
            "name": "su",
            "suite": [{"preset": "gaussian-replace", "set": SMALL}, {"preset": "stability-mix", "set": SMALL}],
        },
        out=tmp_path / "suite",
    )
    ax = suite.plot("variance")
    arms = sorted(suite.members["stability-mix"].manifest["arms"])
    assert points(ax) == [G] * (1 + len(arms))
    assert legend(ax) == ["gaussian-replace"] + [f"stability-mix, {a}" for a in arms]  # a lone arm: its run's name


# -- a telephone run against a local OpenAI-compatible server ---------------------------------------------------------
START = [
    "The Aston Martin DB9 was launched in 2004 by Aston Martin. It was designed by Ian Callum and Henrik Fisker.",
    "Albedo is the fraction of sunlight that a surface reflects. Fresh snow reflects about 90 percent of it.",
]


def _rewrite(handler, n, body):
    """A deterministic 'model': drop the second word of the text in the prompt."""
    words = body["messages"][-1]["content"].split("\n\n", 1)[1].split()
    text = " ".join(w for i, w in enumerate(words) if i != 1)
    send_json(
        handler,
        {
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        },
    )


@pytest.fixture
def telephone(tmp_path):
    starts = tmp_path / "starts.jsonl"
    starts.write_text("".join(json.dumps({"text": t}) + "\n" for t in START))
    with LocalServer(_rewrite) as server:
        return mc.chain(
            {
                "name": "toy",
                "task": ["rephrase"],
                "generations": G - 1,
                "seeds": [0, 1],
                "start": {"source": str(starts)},
                "metrics": ["length_words", "type_token_ratio"],
                "backend": {"kind": "openai", "base_url": server.url, "model": "toy", "backoff_s": 0.01},
            },
            out=tmp_path / "chain",
        )


def test_telephone_plot_and_report_figures(telephone, drawn):
    ax = telephone.plot("length_words")
    assert telephone.kind == "telephone"
    assert points(ax) == [G] and spans_generations(ax.lines[0])  # generation 0 is the start text
    assert legend(ax) is None and ax.get_xlabel() == "generation"

    telephone.report()
    assert set(drawn) >= {"drift.png"}
    panels = [a for a in drawn["drift.png"].axes if a.axison]
    assert [a.get_title() for a in panels] == ["length_words", "type_token_ratio"]
    assert all(points(a) == [G] and a.get_xlabel() == "generation" for a in panels)
    assert legend(panels[0]) == ["rephrase"]
    if "attractors.png" in drawn:
        for a in (a for a in drawn["attractors.png"].axes if a.axison):
            assert a.get_xlabel() == "initial (generation 0)" and a.get_ylabel() == "final"
            assert len(a.collections) == 1 and len(a.collections[0].get_offsets()) == 4  # one point per chain


# -- the figures of a loop run's report -------------------------------------------------------------------------------
def test_report_metric_and_distribution_figures(tmp_path, drawn):
    run = mc.run("gaussian-replace", out=tmp_path / "run", overrides={"replicates": 8, "loop.generations": G})
    run.report()
    metrics = ["w2_sq", "mean", "variance", "tail_mass", "nll_real", "train_real", "train_synthetic"]
    assert sorted(drawn) == sorted([f"{m}.png" for m in metrics] + ["distribution-gaussian-replace.png"])
    for m in metrics:
        (ax,) = drawn[f"{m}.png"].axes
        assert ax.get_xlabel() == "generation" and ax.get_ylabel() == m, m
        assert all(spans_generations(line) for line in ax.lines), m
        assert ax.lines[0].get_label() == "median"
    # a closed form beside the median where theory gives one, and a legend only where there is more than one line
    assert legend(drawn["w2_sq.png"].axes[0]) == ["median", "replicate mean", "E: (3/2)σ²(g+1)/M"]
    assert legend(drawn["variance.png"].axes[0])[0] == "median" and len(drawn["variance.png"].axes[0].lines) == 2
    assert legend(drawn["mean.png"].axes[0]) is None and len(drawn["mean.png"].axes[0].lines) == 1

    (ax,) = drawn["distribution-gaussian-replace.png"].axes
    shown = [f"generation {g}" for g in range(G)]
    assert legend(ax) == shown  # a step histogram per generation, labelled
    assert points(ax) == [200] * G  # and the fitted density over it, dashed
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "density"


def test_report_figures_of_arms_and_the_anatomy(tmp_path, drawn):
    # kl_real only: the anatomy reads it, and the other metrics would add figures this test does not read
    overrides = {"replicates": 4, "loop.generations": G, "metrics": ["kl_real"]}
    run = mc.run("error-sources", out=tmp_path / "run", overrides=overrides)
    run.report()
    arms = run.manifest["arms"]
    (ax,) = drawn["kl_real.png"].axes
    assert points(ax) == [G] * len(arms) and legend(ax) == [f"{a} (median)" for a in arms]
    left, right = drawn["anatomy.png"].axes
    assert points(left) == [G] * 8 and len(legend(left)) == 8
    assert legend(right) == [
        "baseline",
        "sampling",
        "family",
        "learner",
        "sampling×family",
        "sampling×learner",
        "family×learner",
        "sampling×family×learner",
    ]
    assert points(right) == [G] * 8 + [2]  # eight terms and the zero line
    assert all(a.get_xlabel() == "generation" and a.get_ylabel() == "median kl_real" for a in (left, right))
    assert sum(name.startswith("distribution-") for name in drawn) == len(arms)


def test_report_scaling_figure_of_a_run_grid(tmp_path, drawn):
    run = mc.run({**BASE, "grid": {"loop.samples": [10, 40, 160]}}, out=tmp_path / "run")
    run.report()
    (ax,) = drawn["scaling-variance.png"].axes
    assert ax.get_xlabel() == "training-set size T (loop.samples)" and ax.get_ylabel() == "variance"
    assert ax.lines[0].get_marker() == "o" and len(ax.lines[0].get_xdata()) == 3  # the median at the three sizes
    assert legend(ax)[0].startswith("toy (slope ") and legend(ax)[-1] == "closed form (E)"
    (curves,) = drawn["variance.png"].axes
    medians = [line for line in curves.lines if line.get_label().endswith("(median)")]
    assert [m.get_label() for m in medians] == [f"loop.samples={n} (median)" for n in (10, 40, 160)]
    assert all(spans_generations(line) for line in curves.lines)  # the medians and their closed forms
    assert legend(curves)[1].startswith("median: exp(")  # the closed form, named once


def test_report_survival_figure(tmp_path, drawn):
    run = mc.run(
        {
            "name": "forget",
            "seed": 0,
            "replicates": 4,
            "data": {"kind": "zipf", "exponent": 1.1, "types": 300},
            "model": {"kind": "categorical"},
            "loop": {"generations": 6, "samples": 300},
            "metrics": ["support_size", "survival"],
        },
        out=tmp_path / "run",
    )
    run.report()
    (ax,) = drawn["survival.png"].axes
    assert ax.get_xlabel() == "generation-0 count c" and ax.get_ylabel() == "P(still present)"
    entries = legend(ax)
    assert entries == ["1 − exp(−c g_g)"] + [f"generation {g}" for g in (1, 2, 5)]  # the closed form, then the bins
    assert ax.get_xscale() == "log"


# -- a sweep's report -----------------------------------------------------------------------------------------------
def test_sweep_report_heatmap_and_scaling(tmp_path, drawn):
    sweep = mc.sweep(BASE, grid={"loop.samples": [10, 40], "seed": [1, 2, 3]}, out=tmp_path / "sweep")
    sweep.report()
    (ax, bar) = drawn["heatmap.png"].axes
    assert ax.images[0].get_array().shape == (2, 3)
    assert ax.get_ylabel() == "loop.samples" and ax.get_xlabel() == "seed"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3"]
    assert len(ax.texts) == 6  # each cell's value written in it
    (ax,) = drawn["scaling-variance.png"].axes
    assert [len(line.get_xdata()) for line in ax.lines if line.get_marker() == "o"] == [2, 2, 2]
    assert [e.split(" (slope")[0] for e in legend(ax)[:3]] == ["seed=1", "seed=2", "seed=3"]


# -- the detectors' page and the galleries ------------------------------------------------------------------------
def test_detector_report_figures(tmp_path, drawn):
    from modelcollapse.analysis.detector_report import build_detector_report, write_scores

    rng = np.random.default_rng(0)
    scores = {
        (length, name): {
            "calibration": rng.normal(0, 1, 200),
            "test": rng.normal(0, 1, 200),
            "machine": rng.normal(shift, 1, 200),
        }
        for length in (32, 64)
        for name, shift in (("likelihood", 1.0), ("entropy", 2.0))
    }
    write_scores(tmp_path, scores, [0.01, 0.1], note="toy scores")
    build_detector_report(tmp_path)
    panels = drawn["roc.png"].axes
    assert [a.get_title() for a in panels] == ["32 tokens", "64 tokens"]
    for ax in panels:
        assert ax.get_xlabel().startswith("false-positive rate") and ax.get_ylabel().startswith("true-positive rate")
        entries = legend(ax)
        assert entries[0].startswith("likelihood (AUC ") and entries[1].startswith("entropy (AUC ")
        assert entries[2:] == [
            "target FPR 0.01: hollow target, filled measured",
            "target FPR 0.1: hollow target, filled measured",
        ]
        curves = [line for line in ax.lines if "AUC" in line.get_label()]
        assert len(curves) == 2 and min(len(line.get_xdata()) for line in curves) > 10  # a step per distinct score
    histograms = drawn["histograms.png"].axes
    assert len(histograms) == 4 and legend(histograms[0]) == [
        "real (test)",
        "machine",
        "threshold, FPR 0.01",
        "threshold, FPR 0.1",
    ]
    assert all(a.get_xlabel().startswith("score") for a in histograms[-2:])


def test_gallery_figures(tmp_path):
    rng = np.random.default_rng(0)
    grid = gallery.image_grid_figure({g: rng.random((1, 12, 8, 8)) for g in (0, 2, 5)}, "arm", tmp_path / "grid.png")
    assert len(grid.axes) == 3 * 12 and all(len(a.images) == 1 for a in grid.axes)
    assert [grid.axes[12 * row].get_ylabel() for row in range(3)] == ["gen 0", "gen 2", "gen 5"]
    hist = gallery.perplexity_figure({g: rng.lognormal(3 + g, 0.3, 50) for g in (0, 2, 5)}, "arm", tmp_path / "ppl.png")
    (ax,) = hist.axes
    assert legend(ax) == ["generation 0", "generation 2", "generation 5"] and ax.get_ylabel() == "density"
    assert ax.get_xlabel().startswith("log10 perplexity")
    assert (tmp_path / "grid.png").stat().st_size > 0 and (tmp_path / "ppl.png").stat().st_size > 0
