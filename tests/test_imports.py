"""Importing any module of the package (as ``--doctest-modules`` collection does) loads no optional dependency."""

import subprocess
import sys

HEAVY = ("torch", "transformers", "ray", "mlflow", "sklearn", "gensim", "sentence_transformers", "vaderSentiment")

CODE = f"""
import importlib, pkgutil, sys
import modelcollapse
names = [
    m.name for m in pkgutil.walk_packages(modelcollapse.__path__, "modelcollapse.") if not m.name.endswith("__main__")
]
for name in names:
    importlib.import_module(name)
print(len(names), sorted(m for m in {HEAVY!r} if m in sys.modules))
"""


def test_every_module_imports_without_optional_dependencies():
    count, loaded = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True
    ).stdout.split(" ", 1)
    assert int(count) > 50  # the walk reached the whole tree (plugins, engine, chains, analysis, cli)
    assert loaded.strip() == "[]"
