# Two commands for a new machine: `make run` and `make test`. Everything else is plumbing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: install dev browser run test test-fast lint train evaluate

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

# Tests cover the training side too (export round trip), so the dev set includes it.
$(VENV)/.dev: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[dev,train]'
	touch $@

install: $(VENV)/.installed

# The dashboard's browser tests drive Debian's chromium (through Playwright, which fetches no
# browser of its own): installed here when missing, as root or with sudo.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }

dev: $(VENV)/.dev

run: install
	$(BIN)/edge run $(ARGS)

lint: dev
	$(BIN)/ruff check .

test: dev browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# The unit and property tests alone, without the real-time runs (marked slow).
test-fast: dev
	$(BIN)/python -m pytest -q -m "not slow"

# Simulate, train, export and quantise the shipped model; then its second look
# (models/verify.py): the model's candidate boxes on the training, validation and calibration
# parcels, cut from the full-resolution images, train a classifier that rescores them. Last,
# choose the operating point (calibration/thresholds.json) for the pair on a calibration set
# of CALIB_PARCELS simulated parcels of their own (a 95 % share of threat images needs more
# than the 120 validation parcels to pin down) and check it on the test set, colour and grey
# apart. `make evaluate` then prints the test set's accuracy.
# EfficientNet-Lite0 from its ImageNet weights by default (MODEL=parcelnet FINE_EPOCHS=0: our
# own network from random weights, one stage). Two stages: EPOCHS at the 320 px input, then
# FINE_EPOCHS at FINE_INPUT from the first stage's weights (finer pixels for thin and small
# threats). From nothing on two quiet CPU cores at the defaults: 147 to 159 minutes, one run
# interrupted and one not, on two days (simulation 6-8, first stage 56-69, second 38-39, export
# and INT8 6-7, calibration set 1-2, mining 3, second look 29-30, its export and the
# thresholds 5; models/lite0/RUNS.md), the same files both times; a GPU when torch sees one. The
# shipped files came from a longer schedule, EPOCHS=16 FINE_EPOCHS=7 (about 170 minutes).
# Interrupted, run it again with ARGS=--resume: the detector's stages and the second look's
# training go on from their last checkpoints, and the candidate sets already mined are kept.
MODEL ?= lite0
RESUME := $(findstring --resume,$(ARGS))
CALIB_PARCELS ?= 600
VERIFY_EPOCHS ?= 3
EPOCHS ?= 12
FINE_INPUT ?= 448
FINE_EPOCHS ?= 5
ifeq ($(FINE_EPOCHS),0)
FINAL := runs/$(MODEL)
else
FINAL := runs/$(MODEL)-$(FINE_INPUT)
endif
DETECTOR := models/$(MODEL)/$(MODEL).int8.onnx
VERIFIER := models/$(MODEL)/verifier.int8.onnx
MINED := runs/$(MODEL)-verify
train: dev
	$(BIN)/python -m models.train --backbone $(MODEL) --epochs $(EPOCHS) --out runs/$(MODEL) $(ARGS)
ifneq ($(FINE_EPOCHS),0)
	$(BIN)/python -m models.train --backbone $(MODEL) --epochs $(FINE_EPOCHS) \
		--init runs/$(MODEL)/last.pt --input $(FINE_INPUT) --crop 320 --lr 1e-3 \
		--out $(FINAL) $(ARGS)
endif
	$(BIN)/python -m models.export --checkpoint $(FINAL)/last.pt --name $(MODEL)
	$(BIN)/python -m models.data data/sim/calib --parcels $(CALIB_PARCELS) --seed 3001
	for set in train val calib; do \
		if [ -n "$(RESUME)" ] && [ -f $(MINED)/$$set.npz ]; then continue; fi; \
		$(BIN)/python -m models.verify mine \
		--model $(DETECTOR) --data data/sim/$$set/shard-* \
		--out $(MINED)/$$set.npz || exit 1; done
	$(BIN)/python -m models.verify train --mined $(MINED)/train.npz \
		--val $(MINED)/val.npz --model $(DETECTOR) \
		--epochs $(VERIFY_EPOCHS) --out $(MINED) $(RESUME)
	$(BIN)/python -m models.verify export --checkpoint $(MINED)/last.pt \
		--model $(DETECTOR) --calib $(MINED)/calib.npz \
		--out $(VERIFIER)
	$(BIN)/edge calibrate thresholds --model $(DETECTOR) \
		--verifier $(VERIFIER) --target-pd 0.95 \
		--data data/sim/calib/shard-*/annotations.json --check data/sim/test/shard-*/annotations.json \
		--by-folder --out calibration/thresholds.json

# The test set's accuracy of what `make train` made, one table: FP32 against INT8, each detector
# alone and with its own second look, AP50 per class, mAP50 and mAP50:95, the pseudo-colour
# and grey renderings apart. About 4 minutes on two cores; it makes nothing, so it is not a
# step of `make train`.
evaluate: dev
	$(BIN)/python -m models.evaluate runs/$(MODEL)/$(MODEL).fp32.onnx \
		$(DETECTOR) \
		--verifier $(MINED)/verifier.fp32.onnx $(VERIFIER) \
		--pairs --by-folder --data data/sim/test/shard-*
