"""The README's "Python" section runs as written (at tiny sizes: every replicates, generations and samples number is
scaled down, and the chain call is left out, since it needs the telephone extra)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pandas")
README = Path(__file__).resolve().parents[1] / "README.md"
SRC = Path(__file__).resolve().parents[1] / "src"


def python_block() -> str:
    section = README.read_text().split("## Python\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def shrink(code: str) -> str:
    """Scale the example's sizes down so the whole block runs in seconds."""
    code = re.sub(r'"replicates": \d+', '"replicates": 4', code)
    code = re.sub(r'"generations": \d+', '"generations": 3', code)
    code = re.sub(r'"samples": \d+', '"samples": 20', code)
    code = re.sub(r'"loop.samples": \[\d+, \d+\]', '"loop.samples": [10, 20]', code)
    return code


def test_the_readme_python_example_runs(tmp_path):
    code = shrink(python_block())
    assert "mc.run(" in code and "@mc.metric" in code
    check = (
        code + "\nassert set(df.columns) >= {'arm', 'replicate', 'generation', 'metric', 'value'}\n"
        "assert set(cur.columns) >= {'median', 'q25', 'q75', 'mean', 'sem'}\n"
        "assert set(sw.metrics()['loop.samples']) == {10, 20}\nprint('README OK')\n"
    )
    env = {"PYTHONPATH": str(SRC) + ":" + ":".join(sys.path[1:]), "MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "README OK" in done.stdout and (tmp_path / "runs/x/report.html").exists()
