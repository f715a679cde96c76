# The two commands: `make demo` (main job) and `make test` (whole test suite).
# Both create .venv on first use and install the core and every plugin under plugins/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
STAMP := $(VENV)/.qsimcells-installed
TEST_PLUGINS := build/test-plugins
TEST_PLUGIN_SOURCES := $(wildcard tests/plugins/*/pyproject.toml tests/plugins/*/src/*/*.py)
RESULTS ?= results
PYTEST_WORKERS ?= 2

.PHONY: venv demo test lint docs bench clean

venv: $(STAMP)

# torch first, pinned to the CPU build on disk, so nothing pulls a CUDA build later.
$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml) Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[all,test,docs]" $(addprefix -e ./,$(PLUGIN_DIRS))
	touch $(STAMP)

# Test-only plugins (one working, one deliberately broken) are installed into their own
# target folder; the tests that need them put it on the path of a fresh interpreter.
$(TEST_PLUGINS)/.stamp: $(STAMP) $(TEST_PLUGIN_SOURCES)
	rm -rf $(TEST_PLUGINS)
	$(PIP) install --quiet --no-deps --no-build-isolation --target $(TEST_PLUGINS) \
		$(addprefix ./,$(patsubst %/pyproject.toml,%,$(wildcard tests/plugins/*/pyproject.toml)))
	touch $@

demo: $(STAMP)
	$(VENV)/bin/qsimcells demo --out $(RESULTS)

test: $(STAMP) $(TEST_PLUGINS)/.stamp
	QSIMCELLS_TEST_PLUGINS=$(abspath $(TEST_PLUGINS)) $(PY) -m pytest -n $(PYTEST_WORKERS) \
		tests $(addsuffix /tests,$(PLUGIN_DIRS))

# ruff (lint and format) on everything and mypy on the package and the plugins (settings in
# pyproject.toml); CI runs it before the tests (.ci/run)
lint: $(STAMP)
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy

docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

bench: $(STAMP)
	$(PIP) install --quiet -e ".[bench]"
	$(PY) benchmarks/simulate.py
	$(PY) benchmarks/ising.py
	$(PY) benchmarks/qbmvae.py
	$(PY) benchmarks/pqc.py
	$(PY) benchmarks/perturbation.py
	$(PY) benchmarks/calibration.py
	$(PY) benchmarks/qbmvae_de.py
	$(PY) benchmarks/spiqgan.py
	$(PY) benchmarks/spiqgan_kloss.py
	$(PY) benchmarks/atlas.py
	$(PY) benchmarks/spatial.py

clean:
	rm -rf build docs/_build $(RESULTS)
