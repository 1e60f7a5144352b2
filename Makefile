# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache

.PHONY: install tools test bench demo clean

install: $(STAMP)

# Rebuilt only when requirements.txt or pyproject.toml change.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# Tests drive real peers: headless Chromium for the dashboard, Alertmanager for alerts.
tools:
	bash scripts/install_test_tools.sh

test: install tools
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m benchmarks

demo: install
	$(BIN)/macrobase demo

clean:
	rm -rf $(VENV) .numba_cache .pytest_cache .hypothesis
