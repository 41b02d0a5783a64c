"""The notebooks in examples/ run top to bottom offline (nbclient, a fresh kernel, a timeout), and what they compute
agrees with theory: the test reads the notebook's ``results`` dict back from the kernel."""

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


def execute(name: str, cwd: Path, timeout: int = 600) -> dict:
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name} is stored with outputs"
    nb.cells.append(nbformat.v4.new_code_cell("import json; print('RESULTS=' + json.dumps(results))"))
    os.environ.update({"PYTHONPATH": os.pathsep.join([SRC, *sys.path[1:]]), "MPLBACKEND": "module://matplotlib_inline.backend_inline",
                       "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    client.execute()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    return json.loads(text.split("RESULTS=", 1)[1])


@pytest.mark.slow
def test_collapse_in_ten_minutes(tmp_path):
    pytest.importorskip("torch")
    r = execute("collapse-in-ten-minutes.ipynb", tmp_path)
    # 300 chains: the median's standard error on the log scale is about 1.25 * sqrt(200/99) / sqrt(300) ≈ 0.10
    assert abs(r["gaussian_final_median_variance"] / r["gaussian_closed_form"] - 1) < 0.35
    assert 0.8 < r["gmm_component_std_first"] < 1.0 and r["gmm_component_std_last"] < r["gmm_component_std_first"]
    assert r["categorical_absorbed_share"] > 0.95 and 12 < r["categorical_mean_absorption"] < 28
    final = r["regimes_final_median_variance"]
    assert final["replace"] < 0.3 and final["accumulate"] > 0.8 and final["real-10%"] > 0.5
    assert r["lm_distinct_2"][-1] < r["lm_distinct_2"][0]


@pytest.mark.slow
def test_extend_modelcollapse(tmp_path):
    r = execute("extend-modelcollapse.ipynb", tmp_path)
    for M, simulated, closed, sd, chains in r["closed_form"]:  # exact mean of log σ̂²; 4 standard errors
        assert abs(np.log(simulated / closed)) < 4 * sd / np.sqrt(chains), (M, simulated, closed)
    table = r["phase_table"]
    assert table["4,200"] > table["1,20"]  # a longer window and more samples keep more variance
