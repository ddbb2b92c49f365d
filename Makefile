# Two commands for a new machine: `make run` and `make test`. Everything else is plumbing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: install dev run test lint train clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

# Tests cover the training side too (export round trip), so the dev set includes it.
$(VENV)/.dev: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[dev,train]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev

run: install
	$(BIN)/edge run $(ARGS)

lint: dev
	$(BIN)/ruff check .

test: dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# Simulate, train (about 70 minutes on two quiet CPU cores; a GPU when torch sees one), export and
# quantise the shipped model, then print FP32 against INT8 accuracy on the simulated test set.
train: dev
	$(BIN)/python -m models.train --out runs/parcelnet $(ARGS)
	$(BIN)/python -m models.export --checkpoint runs/parcelnet/last.pt --name parcelnet
	$(BIN)/python -m models.evaluate runs/parcelnet/parcelnet.fp32.onnx \
		models/parcelnet/parcelnet.int8.onnx --data data/sim/test/shard-*

clean:
	rm -rf $(VENV) build *.egg-info
