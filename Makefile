# The two set-up commands are `make run` and `make test`; both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
CONFIG ?= config/monitor.example.yaml
ROUTERS ?= 50
PYTEST_ARGS ?=

.PHONY: run test check lint typecheck fmt clean install bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/monitor demo --config $(CONFIG) --routers $(ROUTERS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check monitor tests bench
	$(BIN)/ruff format --check monitor tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy monitor

check: lint typecheck test

fmt: $(STAMP)
	$(BIN)/ruff format monitor tests bench
	$(BIN)/ruff check --fix monitor tests bench

# The fleet benchmark (docs/performance.md): BENCH_ROUTERS=10000 make bench; BENCH_CYCLES=3.
bench: $(STAMP)
	$(BIN)/python bench/fleet.py

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache .mypy_cache .ruff_cache
