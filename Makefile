# `make demo` and `make test` set everything up on a fresh machine: the venv is created on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/resnets train --out runs/demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs/generate.py
	$(BIN)/python -m pytest -n 2 --dist loadfile tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs/generate.py

bench: $(STAMP)
	$(BIN)/python benchmarks/inference_vs_peers.py

# README.md, docs/models.md and docs/recipes.md are generated; tests/test_docs.py fails while one is stale.
docs: $(STAMP)
	$(BIN)/python docs/generate.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
