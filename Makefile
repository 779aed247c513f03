# `make test` and `make run` create .venv and install everything they need on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test run bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,deploy]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

RUN_DIR := runs/digits

# The main job, offline: train resnet18 on the bundled digits, evaluate it, predict a few images.
run: $(STAMP)
	rm -rf $(RUN_DIR)
	$(BIN)/resnetkit train --out $(RUN_DIR)
	$(BIN)/resnetkit eval --weights $(RUN_DIR)
	$(BIN)/resnetkit predict $(RUN_DIR)/samples --weights $(RUN_DIR) --topk 3
	@echo
	@echo "Outputs in $(RUN_DIR)/:"
	@echo "  model.safetensors  final weights + metadata (arch, classes, preprocessing)"
	@echo "  best.pt, last.pt   checkpoints (resume: resnetkit train --resume $(RUN_DIR))"
	@echo "  metrics.csv, curves.png, summary.json   per-epoch metrics and plots"
	@echo "  eval.json, confusion.png                evaluation of the final model"
	@echo "  samples/           validation digits as PNG files used for the prediction above"

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
