"""The notebooks in examples/ run top to bottom offline (nbclient, a fresh kernel, a timeout), and what they compute
agrees with theory: the test reads the notebook's ``results`` dict back from the kernel. Every figure they show is
checked as a person would look at it: a hidden first cell records, each time the inline backend renders a figure to
PNG, its axes' lines and images, so the test can ask that each image draws a line over the generations (or is the
heatmap it says it is) and weighs under 300 KB."""

import base64
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")
pytest.importorskip("pandas")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SRC = str(Path(__file__).resolve().parents[1] / "src")


#: Wraps the canvas's print_figure (what the inline backend calls to turn a shown figure into its PNG output) to
#: record, per rendered figure, each axes' lines (x range, points) and images (shape).
RECORD = """
import matplotlib.backend_bases as _bb
_FIGURES, _print_figure = [], _bb.FigureCanvasBase.print_figure
def _recorded(canvas, *args, **kwargs):
    _FIGURES.append([{"lines": [[float(min(l.get_xdata())), float(max(l.get_xdata())), len(l.get_xdata())]
                                for l in ax.lines if len(l.get_xdata())],
                      "images": [list(im.get_array().shape) for im in ax.images]} for ax in canvas.figure.axes])
    return _print_figure(canvas, *args, **kwargs)
_bb.FigureCanvasBase.print_figure = _recorded
"""


def execute(name: str, cwd: Path, timeout: int = 600) -> tuple[dict, list, list[bytes]]:
    """Run the notebook; return its ``results``, the record of every figure it showed, and its PNG outputs."""
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} is stored with outputs"
    nb.cells.insert(0, nbformat.v4.new_code_cell(RECORD))
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import json; print('RESULTS=' + json.dumps(results)); print('FIGURES=' + json.dumps(_FIGURES))"
        )
    )
    os.environ.update(
        {
            "PYTHONPATH": os.pathsep.join([SRC, *sys.path[1:]]),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
    )
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    if os.environ.get("MODELCOLLAPSE_KEEP_NOTEBOOKS"):  # a folder: keep the executed copy there, to look at
        nbformat.write(nb, Path(os.environ["MODELCOLLAPSE_KEEP_NOTEBOOKS"]) / name)
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    results, figures = text.split("RESULTS=", 1)[1].split("FIGURES=", 1)
    images = [
        base64.b64decode(o["data"]["image/png"])
        for c in nb.cells[:-1]
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    return json.loads(results), json.loads(figures), images


def check_figures(figures: list, images: list[bytes], generations: list[int | str]) -> None:
    """One recorded figure per image output, in order; each image under 300 KB; figure i draws a line from
    generation 0 to ``generations[i]`` - 1 through every generation (one point each), or, where ``generations[i]``
    is ``"heatmap"``, shows an image and no line."""
    assert len(images) == len(figures) == len(generations), (len(images), len(figures), generations)
    for i, (axes, png, expected) in enumerate(zip(figures, images, generations)):
        assert len(png) < 300_000, f"figure {i} weighs {len(png)} bytes"
        if expected == "heatmap":
            assert any(ax["images"] for ax in axes) and not any(ax["lines"] for ax in axes), (i, axes)
        else:
            assert [0.0, expected - 1.0, expected] in [line for ax in axes for line in ax["lines"]], (i, expected, axes)


@pytest.mark.slow
def test_collapse_in_ten_minutes(tmp_path):
    pytest.importorskip("torch")
    r, figures, images = execute("collapse-in-ten-minutes.ipynb", tmp_path)
    check_figures(figures, images, [200, 150, 150, 100, 3])  # gaussian, gmm, categorical, regimes, lm
    # 300 chains: the median's standard error on the log scale is about 1.25 * sqrt(200/99) / sqrt(300) ≈ 0.10
    assert abs(r["gaussian_final_median_variance"] / r["gaussian_closed_form"] - 1) < 0.35
    assert 0.8 < r["gmm_component_std_first"] < 1.0 and r["gmm_component_std_last"] < r["gmm_component_std_first"]
    assert r["categorical_absorbed_share"] > 0.95 and 12 < r["categorical_mean_absorption"] < 28
    final = r["regimes_final_median_variance"]
    assert final["replace"] < 0.3 and final["accumulate"] > 0.8 and final["real-10%"] > 0.5
    assert r["lm_distinct_2"][-1] < r["lm_distinct_2"][0]


@pytest.mark.slow
def test_extend_modelcollapse(tmp_path):
    r, figures, images = execute("extend-modelcollapse.ipynb", tmp_path)
    check_figures(figures, images, [30, "heatmap", 30])  # the sweep's curves, the phase diagram, the closed form
    for M, simulated, closed, sd, chains in r["closed_form"]:  # exact mean of log σ̂²; 4 standard errors
        assert abs(np.log(simulated / closed)) < 4 * sd / np.sqrt(chains), (M, simulated, closed)
    table = r["phase_table"]
    assert table["4,200"] > table["1,20"]  # a longer window and more samples keep more variance


def test_progress_bars_draw_in_a_notebook(tmp_path):
    """``quiet=False`` draws the one progress bar (rich, as a Jupyter widget) for a run and for an audit, in a
    kernel."""
    pytest.importorskip("ipywidgets")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import modelcollapse as mc\n"
            "mc.run('gaussian-replace', out='r', quiet=False,\n"
            "       overrides={'replicates': 4, 'loop.generations': 3}, report=False)"
        ),
        nbformat.v4.new_code_cell(
            "import numpy as np\n"
            "rng = np.random.default_rng(0)\n"
            "a = mc.audit(rng.normal(size=(200, 2)), [rng.normal(size=(200, 2))], quiet=False,"
            " repeats=5)"
        ),
    ]
    os.environ.update({"PYTHONPATH": os.pathsep.join([SRC, *sys.path[1:]]), "HF_HUB_OFFLINE": "1"})
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    for cell, label in zip(nb.cells, ["gaussian-replace: generations", "audit: calibration"]):
        widgets = [o for o in cell.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert widgets, (label, cell.outputs)
    state = json.dumps(nb.metadata.get("widgets", {}))  # the bars' text lives in the widgets' saved state
    assert "gaussian-replace: generations" in state and "audit: calibration" in state, state[:2000]
