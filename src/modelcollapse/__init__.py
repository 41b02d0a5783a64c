"""modelcollapse: a laboratory for self-consuming generative training loops.

The Python API (:mod:`modelcollapse.api`) is reachable from the package and loads on first use, so ``import
modelcollapse`` stays light (no pandas, torch or matplotlib until a function needs them)::

    import modelcollapse as mc
    run = mc.run("gaussian-replace", overrides={"replicates": 50})
"""

from .version import __version__

_API = (
    "run",
    "load",
    "sweep",
    "chain",
    "presets",
    "watermark_z",
    "audit",
    "Run",
    "GenerationEvent",
    "metric",
    "regime",
    "model",
    "data",
    "filter",
    "reward",
)
_ERRORS = ("ConfigError", "RunError", "PluginError")
__all__ = ["__version__", *_API, *_ERRORS]


def __getattr__(name: str):
    # The one upward reach of the package: a lazy façade, resolved at attribute access, never at import time
    # (tests/test_layers.py allows exactly this edge).
    if name == "audit":
        # The subpackage itself, callable as its audit function (audit/__init__.py says why): mc.audit is then the
        # same object before and after `import modelcollapse.audit`, which rebinds this attribute to the module.
        import importlib

        return importlib.import_module(".audit", __name__)  # not `from . import audit`: that asks this hook again
    if name in _API:
        from . import api

        return getattr(api, name)
    if name in _ERRORS:
        from . import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'modelcollapse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API, *_ERRORS])
