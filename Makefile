# The README's two commands: `make demo` (the main job on the embedded Shakespeare default) and `make test`.
# Both create or reuse the local virtual environment .venv and install what they need themselves (`make test` also
# installs bubblewrap, the sandbox record code runs in, and redis-server, the broker of the run service's workers:
# `make sandbox`).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch's CPU build: its own wheel index first (no multi-GB CUDA build where no GPU is wanted), PyPI for torch's
# dependencies. A torch==2.13.0 wheel already in pip's find-links (an offline machine's local wheels) is taken as
# it is, and an index that cannot be reached is skipped after a retry. `make venv TORCH_INDEX=` (empty) takes
# PyPI's default build instead: the CUDA one, for a GPU machine.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PYPI_INDEX ?= https://pypi.org/simple
TORCH_FROM := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url $(PYPI_INDEX) --retries 1)
# Seconds of training per seed for the demo; the CPU track's full budget is 180.
DEMO_SECONDS ?= 180
DEMO_SEEDS ?= 42 1337 2025

.PHONY: demo test lint venv bench clean-venv sandbox redis

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the project's dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_FROM) torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# Record code runs only under bubblewrap (tools/verify/sandbox/__init__.py); the judge refuses and the tests fail without it.
# Installs it when `bwrap` is missing (apt-get as root, else through sudo), and where Ubuntu's AppArmor forbids
# unprivileged user namespaces (24.04+), gives bwrap alone a profile that allows them. Quiet and idempotent.
BWRAP_PROFILE := /etc/apparmor.d/bwrap
sandbox: SHELL := /bin/bash
sandbox: .SHELLFLAGS := -euo pipefail -c
sandbox:
	@sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	if ! command -v bwrap >/dev/null; then \
	  echo "installing bubblewrap (the sandbox for record code)"; \
	  $$sudo apt-get update -qq >/dev/null; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	fi; \
	if [ "$$(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns 2>/dev/null || echo 0)" = 1 ] \
	    && [ ! -e $(BWRAP_PROFILE) ]; then \
	  echo "allowing bwrap to create user namespaces ($(BWRAP_PROFILE))"; \
	  printf '%s\n' 'abi <abi/4.0>,' 'include <tunables/global>' \
	    'profile bwrap /usr/bin/bwrap flags=(unconfined) {' '  userns,' '}' | $$sudo tee $(BWRAP_PROFILE) >/dev/null; \
	  $$sudo apparmor_parser -r $(BWRAP_PROFILE); \
	fi

# The run service's multi-worker mode goes through Celery with a Redis broker (tools/service/cluster.py); its tests
# start their own redis-server on a loopback port. Installs Debian's when missing.
redis: SHELL := /bin/bash
redis: .SHELLFLAGS := -euo pipefail -c
redis:
	@sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	if ! command -v redis-server >/dev/null; then \
	  echo "installing redis-server (the broker of the run service's workers)"; \
	  $$sudo apt-get update -qq >/dev/null; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	fi

test: $(VENV)/.installed sandbox redis
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .

# Exit 0 whenever every stage ran as designed (a judge's rejection the demo expects, such as a cap broken on a slow
# machine, is explained, not failed); non-zero only when a stage broke (tools/demo.py says which and why).
demo: $(VENV)/.installed
	DEMO_SECONDS=$(DEMO_SECONDS) DEMO_SEEDS="$(DEMO_SEEDS)" $(BIN)/python -m tools.demo

bench: $(VENV)/.installed
	$(BIN)/python bench/bench_baseline.py

clean-venv:
	rm -rf $(VENV)
