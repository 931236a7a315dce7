# jetfm set-up and entry points. `make demo` and `make test` each build .venv on a
# fresh machine: torch==2.13.0 first (CPU wheel), then jetfm with its dev extras.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,dask,tensorboard]'
	touch $(STAMP)

.PHONY: venv demo test lint bench
venv: $(STAMP)

## The main job on the built-in default: generate jets, summarise them, plot their observables.
demo: $(STAMP)
	$(BIN)/jetfm demo --out runs/demo

## The test suite (what CI runs).
test: $(STAMP)
	$(BIN)/ruff check jetfm tests benchmarks
	$(BIN)/pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check jetfm tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_read.py
	$(BIN)/python benchmarks/bench_observables.py
	$(BIN)/python benchmarks/bench_trees.py
	$(BIN)/python benchmarks/bench_omnijet.py
	$(BIN)/python benchmarks/bench_evolution.py
