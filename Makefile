# `make demo` and `make test` set everything up on a fresh machine: the venv is created on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench docs clean peers peers-keras

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Peer frameworks for the parity tests (tests/peers), each in its own environment: TensorFlow and Paddle cannot
# share a process, and their pins would break ours. The tests skip, saying why, while an environment is absent.
PEERS := .venv-peers
KERAS_STAMP := $(PEERS)/keras/.installed

$(KERAS_STAMP):
	test -x $(PEERS)/keras/bin/python || $(PYTHON) -m venv $(PEERS)/keras
	$(PEERS)/keras/bin/python -m pip install --quiet --upgrade pip
	$(PEERS)/keras/bin/python -m pip install --quiet "tensorflow-cpu==2.21.0" "tf-keras==2.21.0" "h5py>=3.9"
	touch $(KERAS_STAMP)

peers-keras: $(KERAS_STAMP)

peers: peers-keras

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
	rm -rf $(VENV) $(PEERS) build *.egg-info src/*.egg-info .pytest_cache
