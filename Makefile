# `make test` and `make run` create .venv and install everything they need on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SOURCES := src tests benchmarks scripts hubconf.py

.PHONY: install test test-scale test-base lint docs run bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[$$($(BIN)/python scripts/extras.py)]"
	touch $(STAMP)

install: $(STAMP)

# Test files spread over the cores (pytest-xdist; each file stays on one worker, its fixtures built once).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile --ignore tests/scale -m "not sweep"

# Beyond one process: DDP training and torchrun ranks, Ray Data on a local Ray (Ray's start-up alone is seconds),
# the artifact x reader matrix; then the sweeps make test leaves to one representative (pytest -m sweep).
# Two test files at a time: each file's processes are its own, and no test races the clock.
test-scale: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests/scale
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile --ignore tests/scale -m sweep

# A base install (no extras) in a fresh venv: every feature that needs an extra names it in one line.
BASE_VENV := .venv-base
# It installs the wheel a user would get (checked by twine: what PyPI would accept) and runs from another folder.
test-base: $(STAMP)
	rm -rf $(BASE_VENV)
	$(PYTHON) -m venv $(BASE_VENV)
	$(BASE_VENV)/bin/python -m pip wheel --quiet --disable-pip-version-check --no-deps -w $(BASE_VENV)/dist .
	$(BIN)/twine check --strict $(BASE_VENV)/dist/*.whl
	$(BASE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(BASE_VENV)/dist/*.whl
	cd /tmp && $(CURDIR)/$(BASE_VENV)/bin/python $(CURDIR)/scripts/check_base_install.py

# Lint, format, types and the layer contract of DESIGN.md (CI runs this before the tests).
lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy
	$(BIN)/lint-imports

# The documentation site into site/ (MkDocs, Material, mkdocstrings); --strict: a broken link, a
# docstring that does not match its signature or a page left out of the navigation fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

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
	@echo "  metrics.csv, curves.png   per-epoch metrics and the training curves"
	@echo "  summary.json       final and best accuracy, training time, skipped images"
	@echo "  config.json, classes.json the run's settings and class names"
	@echo "  eval.json, confusion.png  evaluation of the final model"
	@echo "  samples/           validation digits as PNG files, used for the prediction above"

clean:
	rm -rf $(VENV) $(BASE_VENV) build dist site src/*.egg-info .pytest_cache
