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

peers: peers-keras peers-paddle

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

# Peer frameworks for the parity tests in tests/peers/, each in its own environment under .venv-peers/ (the tests
# skip a peer whose environment is absent). PaddleClas 2.6 pins numpy 1.24 and an old opencv that break other
# packages: it is installed without its pins, next to only what `import paddleclas.ppcls.arch.backbone` needs
# (the package's __init__ also imports its inference tools: requests, cv2, faiss, sklearn, ...).
.PHONY: peers-paddle
PADDLE_PEER := $(PEERS)/paddle
PADDLE_DEPS := paddlepaddle==3.3.1 numpy==2.4.6 requests==2.34.2 opencv-python-headless==5.0.0.93 tqdm==4.70.1 \
	prettytable==3.18.0 scikit-learn==1.9.1 six==1.17.0 PyYAML==6.0.4 faiss-cpu==1.15.1

$(PADDLE_PEER)/.installed:
	test -x $(PADDLE_PEER)/bin/python || $(PYTHON) -m venv $(PADDLE_PEER)
	$(PADDLE_PEER)/bin/python -m pip install --quiet --upgrade pip
	$(PADDLE_PEER)/bin/python -m pip install --quiet $(PADDLE_DEPS)
	$(PADDLE_PEER)/bin/python -m pip install --quiet --no-deps paddleclas==2.6.0
	$(PADDLE_PEER)/bin/python -c "import paddleclas.ppcls.arch.backbone" > /dev/null 2>&1
	touch $@

peers-paddle: $(PADDLE_PEER)/.installed
