# The README's two commands: `make demo` (the main job on the embedded Shakespeare default) and `make test`.
# Both create or reuse the local virtual environment .venv and install what they need themselves.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Seconds of training per seed for the demo; the CPU track's full budget is 180.
DEMO_SECONDS ?= 180
DEMO_SEEDS ?= 42 1337 2025

.PHONY: demo test lint venv bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the project's dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .

demo: $(VENV)/.installed
	DEMO_SECONDS=$(DEMO_SECONDS) DEMO_SEEDS="$(DEMO_SEEDS)" $(BIN)/python -m tools.demo

bench: $(VENV)/.installed
	$(BIN)/python bench/bench_baseline.py

clean-venv:
	rm -rf $(VENV)
