# Everything installs itself: a fresh machine with python3 needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install demo test test-fast lint suite unit bench bench-shapes bench-scan clean

help:
	@echo "make demo   - run s3split on the bundled sample"
	@echo "make test   - lint, type-check and run the whole test suite"
	@echo "make test-fast - the same without the slow tests (the edit loop)"
	@echo "make lint   - ruff and mypy only"
	@echo "make bench  - benchmarks against split, DuckDB, Miller and the csv module"
	@echo "make bench-shapes - the pathological shapes only (huge records, headers, fields, columns)"
	@echo "make bench-scan - the scanner alone against the one before the dialect rewrite"

# pip installs uv, uv the rest: on a fresh machine 17 s instead of 53 s (and the SAM venv's 7 s
# instead of 38 s).
UV := $(BIN)/uv pip install --quiet
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(UV) --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	./scripts/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests functions bench
	$(BIN)/mypy

# The suite runs on PYTEST_WORKERS processes (pytest-xdist), each test file on one of them (its
# module fixtures, engines and moto servers, are built once), in the order tests/conftest.py
# sorts them (the longest first), not xdist's (the files with the most tests first).
PYTEST_WORKERS ?= 3
PYTEST := $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The suite starts ~100 Python processes (the CLI, the engine's workers): with bytecode
# caches (__pycache__/, git-ignored) none compiles s3split again (~0.4 s each), even where
# the environment sets PYTHONDONTWRITEBYTECODE.
test test-fast: export PYTHONDONTWRITEBYTECODE =

# ruff and mypy, the template checks and the suite at once: mypy's and the SAM CLI's start-up
# is single-threaded (~25 s on a fresh checkout) and the suite's workers use the other core.
# Any of the three failing fails `make test`.
test: $(STAMP)
	@$(MAKE) --no-print-directory -j3 lint template-check suite

suite: $(STAMP)
	$(PYTEST)

test-fast: lint
	$(PYTEST) -m "not slow"

bench: $(STAMP)
	bash bench/setup.sh
	$(BIN)/python bench/bench_split.py --size 1GiB --sizes 256MiB,2GiB
	$(BIN)/python bench/bench_pipeline.py
	$(BIN)/python bench/bench_shapes.py
	$(BIN)/python bench/bench_scan.py --split all

# e.g. make bench-shapes SHAPES_ARGS="--scale 0.1" for a smoke run
bench-shapes: $(STAMP)
	bash bench/setup.sh
	$(BIN)/python bench/bench_shapes.py $(SHAPES_ARGS)

# e.g. make bench-scan SCAN_ARGS="--split all" (the whole split of bench_shapes.py's shapes too)
bench-scan: $(STAMP)
	$(BIN)/python bench/bench_scan.py $(SCAN_ARGS)

clean:
	rm -rf $(VENV) s3split-out .pytest_cache .mypy_cache .ruff_cache

# -- AWS: the SAM template (template.yaml) ----------------------------------------------------
# SAM CLI and cfn-lint pin their own boto3 and friends, so they get a venv of their own.
SAM_VENV := $(VENV)/sam-cli
SAM_CLI_VERSION := 1.170.0
CFN_LINT_VERSION := 1.58.0
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)-$(CFN_LINT_VERSION)
# Offline: no telemetry; the linter only needs a region name. No credentials are used.
SAM_ENV := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1

.PHONY: template-check sam-build build-SharedLayer
# (the suite's template tests use SAM's translator from this venv)
suite: $(SAM_STAMP)

$(SAM_STAMP): | $(STAMP)
	test -x $(SAM_VENV)/bin/python || $(BIN)/uv venv --quiet --python $(PYTHON) $(SAM_VENV)
	$(UV) --python $(SAM_VENV)/bin/python \
		aws-sam-cli==$(SAM_CLI_VERSION) cfn-lint==$(CFN_LINT_VERSION)
	touch $@

# No rule is silenced, informational ones included.
template-check: $(SAM_STAMP)
	$(SAM_ENV) $(SAM_VENV)/bin/sam validate --lint --template template.yaml
	$(SAM_VENV)/bin/cfn-lint --include-checks I -- template.yaml

# What `sam build` does; it needs the runtime's python3.13 on PATH (for the functions' copy).
sam-build: $(SAM_STAMP)
	$(SAM_ENV) $(SAM_VENV)/bin/sam build

# `sam build` runs this for SharedLayer (BuildMethod: makefile) with ARTIFACTS_DIR set: the
# project's wheel (src/s3split) and its dependencies from pyproject.toml, as Lambda layers
# want them (python/), for the runtime's Python on Linux arm64. Lean: no extras (the CLI's
# click and rich, the local engine's moto) and no setup.py, so no bundled engine files. The handler test runs it with
# LAYER_PIP_FLAGS for this machine's Python instead.
LAYER_PIP ?= $(PYTHON) -m pip
LAYER_PIP_FLAGS ?= --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
	--implementation cp --python-version 3.13 \
	--only-binary=:all: --no-compile
build-SharedLayer:
	rm -rf "$(ARTIFACTS_DIR)/project" "$(ARTIFACTS_DIR)/wheel"
	mkdir -p "$(ARTIFACTS_DIR)/project"
	# A clean copy: setuptools' in-tree build/ can carry files deleted from src/.
	cp -R pyproject.toml README.md src "$(ARTIFACTS_DIR)/project/"
	rm -rf "$(ARTIFACTS_DIR)"/project/src/*.egg-info
	$(LAYER_PIP) wheel --quiet --no-deps --wheel-dir "$(ARTIFACTS_DIR)/wheel" \
		"$(ARTIFACTS_DIR)/project"
	$(LAYER_PIP) install --quiet --no-warn-conflicts --root-user-action=ignore \
		--target "$(ARTIFACTS_DIR)/python" $(LAYER_PIP_FLAGS) "$(ARTIFACTS_DIR)"/wheel/*.whl
	rm -rf "$(ARTIFACTS_DIR)/project" "$(ARTIFACTS_DIR)/wheel" "$(ARTIFACTS_DIR)/python/bin"
