# foureyes — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FOUREYES_HOME ?= $(CURDIR)/.foureyes
export DAGSTER_HOME ?= $(FOUREYES_HOME)/dagster

.PHONY: help setup demo test lint format ui bench lock clean

help:
	@echo "make demo   set up, then run the daily job over 5 business days on the embedded SQLite default"
	@echo "make test   set up, then lint and run the whole suite (starts a local PostgreSQL)"
	@echo "make ui     set up, then start the Dagster UI on workspace.yaml"
	@echo "make bench  run the benchmarks (results in benchmarks/results/)"
	@echo "make lock   refresh constraints.txt from a clean install"

setup: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	@echo "installing foureyes and its pinned dependencies into $(VENV) (first run: a few minutes)..."
	$(BIN)/pip install -qq --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

$(DAGSTER_HOME)/dagster.yaml: deploy/dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster.yaml $@

demo: setup
	$(BIN)/foureyes demo

test: setup lint
	$(BIN)/pytest -n 2 --dist loadfile --durations=15

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ui: setup
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $${FOUREYES_UI_PORT:-3000}

bench: setup
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/supervisor.py
	$(BIN)/python benchmarks/fallback.py
	$(BIN)/python benchmarks/lineage.py
	$(BIN)/python benchmarks/warehouse.py
	$(BIN)/python benchmarks/agents.py
	$(BIN)/python benchmarks/reliability.py

lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install -qq --disable-pip-version-check '.[dev]'
	.lockvenv/bin/pip freeze --all --exclude foureyes --exclude pip > constraints.txt
	rm -rf .lockvenv build

clean:
	rm -rf $(VENV) $(FOUREYES_HOME) .pytest_cache .ruff_cache
