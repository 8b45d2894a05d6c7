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
	@echo "make bench  - the targets table (ratios), then benchmarks against split, DuckDB, Miller and the csv module"
	@echo "make bench-shapes - the pathological shapes only (huge records, headers, fields, columns)"
	@echo "make bench-scan - the scanner alone against the one before the dialect rewrite"

# Installs come from uv.lock (`uv sync --locked`: exactly the locked versions, and a
# pyproject.toml changed without `make lock` is refused). uv itself, pinned here, is
# bootstrapped with pip into .uv/.
UV_VERSION := 0.13.9
UV := .uv/bin/uv
# --compile-bytecode, and compileall for src/: where the environment sets
# PYTHONDONTWRITEBYTECODE (as many containers do) no cache is ever written, and every
# `s3split` process compiled moto, boto3 and s3split again (~1.3 s of a split's CPU).
SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --quiet --locked --compile-bytecode \
	--python $(PYTHON)
$(UV):
	test -x .uv/bin/python || $(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(SYNC) --extra dev
	$(BIN)/python -m compileall -q src
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
	$(BIN)/python bench/bench_targets.py
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
	rm -rf $(VENV) .uv .venv-moto-* s3split-out .pytest_cache .mypy_cache .ruff_cache \
		$(NODE_CHECKS)/node_modules

# -- dependencies: uv.lock, requirements/*.txt ------------------------------------------------
# `make lock` after editing a dependency in pyproject.toml or requirements/sam.in (nothing is
# upgraded); `make upgrade` moves every lock to the newest versions the ranges allow and runs
# the suite on them: commit the locks only if it passes.
LAYER_EXPORT := $(UV) export --quiet --locked --no-emit-project --no-header --format requirements-txt
.PHONY: lock upgrade test-moto
lock: | $(UV)
	$(UV) lock --quiet
	$(LAYER_EXPORT) --output-file requirements/layer.txt
	$(UV) pip compile --quiet --universal --generate-hashes --python-version 3.11 \
		--output-file requirements/sam.txt requirements/sam.in

upgrade: | $(UV)
	$(UV) lock --quiet --upgrade
	$(LAYER_EXPORT) --output-file requirements/layer.txt
	$(UV) pip compile --quiet --upgrade --universal --generate-hashes --python-version 3.11 \
		--output-file requirements/sam.txt requirements/sam.in
	$(MAKE) test

# The suite on another supported moto release, e.g. `make test-moto V=5.2.5`: the locked venv
# with only moto replaced, in .venv-moto-V.
MOTO_VENV = .venv-moto-$(V)
test-moto: $(SAM_STAMP) | $(UV)
	@test -n "$(V)" || { echo "usage: make test-moto V=5.2.5"; exit 2; }
	UV_PROJECT_ENVIRONMENT=$(MOTO_VENV) $(UV) sync --quiet --locked --python $(PYTHON) --extra dev
	$(UV) pip install --quiet --python $(MOTO_VENV)/bin/python \
		"moto[server,s3,stepfunctions,awslambda,dynamodb]==$(V)"
	$(MOTO_VENV)/bin/python -c "import moto; assert moto.__version__ == '$(V)', moto.__version__"
	PYTHONDONTWRITEBYTECODE= $(MOTO_VENV)/bin/pytest -q -n $(PYTEST_WORKERS) --dist loadfile \
		--no-loadscope-reorder

# -- AWS: the SAM template (template.yaml) ----------------------------------------------------
# SAM CLI and cfn-lint pin their own boto3 and friends, so they get a venv of their own.
SAM_VENV := $(VENV)/sam-cli
SAM_STAMP := $(SAM_VENV)/.installed
# Offline: no telemetry; the linter only needs a region name. No credentials are used.
SAM_ENV := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1

.PHONY: template-check sam-build build-SharedLayer
# (the suite's template tests use SAM's translator from this venv)
suite: $(SAM_STAMP)

$(SAM_STAMP): requirements/sam.txt | $(UV)
	test -x $(SAM_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(SAM_VENV)
	$(UV) pip sync --quiet --require-hashes --python $(SAM_VENV)/bin/python requirements/sam.txt
	touch $@

# No rule is silenced, informational ones included.
template-check: $(SAM_STAMP)
	$(SAM_ENV) $(SAM_VENV)/bin/sam validate --lint --template template.yaml
	$(SAM_VENV)/bin/cfn-lint --include-checks I -- template.yaml

# What `sam build` does; it needs the runtime's python3.13 on PATH (for the functions' copy).
sam-build: $(SAM_STAMP)
	$(SAM_ENV) $(SAM_VENV)/bin/sam build

# `sam build` runs this for SharedLayer (BuildMethod: makefile) with ARTIFACTS_DIR set: the
# project's wheel (src/s3split) and its locked dependencies (requirements/layer.txt, exported
# from uv.lock by `make lock`), as Lambda layers want them (python/), for the runtime's Python
# on Linux arm64. Lean: no extras (the CLI's click and rich, the local engine's moto) and no
# setup.py, so no bundled engine files. The handler test runs it with LAYER_PIP_FLAGS for this
# machine's Python instead.
LAYER_PIP ?= $(PYTHON) -m pip
# The runtime's interpreter compiles the layer: /opt is read-only on Lambda, so a layer without
# .pyc files compiles every module on every cold start (unchecked-hash: never re-checked).
LAYER_PYTHON ?= python3.13
LAYER_PIP_FLAGS ?= --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
	--implementation cp --python-version 3.13 \
	--only-binary=:all: --no-compile
LAYER_INSTALL = $(LAYER_PIP) install --quiet --no-warn-conflicts --root-user-action=ignore \
	--target "$(ARTIFACTS_DIR)/python" $(LAYER_PIP_FLAGS)
build-SharedLayer:
	rm -rf "$(ARTIFACTS_DIR)/project" "$(ARTIFACTS_DIR)/wheel"
	mkdir -p "$(ARTIFACTS_DIR)/project"
	# A clean copy: setuptools' in-tree build/ can carry files deleted from src/.
	cp -R pyproject.toml README.md src "$(ARTIFACTS_DIR)/project/"
	rm -rf "$(ARTIFACTS_DIR)"/project/src/*.egg-info
	$(LAYER_PIP) wheel --quiet --no-deps --wheel-dir "$(ARTIFACTS_DIR)/wheel" \
		"$(ARTIFACTS_DIR)/project"
	$(LAYER_INSTALL) --require-hashes -r requirements/layer.txt
	$(LAYER_INSTALL) --no-deps "$(ARTIFACTS_DIR)"/wheel/*.whl
	rm -rf "$(ARTIFACTS_DIR)/project" "$(ARTIFACTS_DIR)/wheel" "$(ARTIFACTS_DIR)/python/bin"
	$(LAYER_PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash \
		"$(ARTIFACTS_DIR)/python"

# -- independent AWS checks in node (tools/aws-checks/): an IAM policy evaluator -------------------
# (@cloud-copilot/iam-simulate) the suite's recorded AWS calls are evaluated with. Versions pinned
# by package-lock.json; `npm ci` installs exactly those into a git-ignored node_modules/.
NODE_CHECKS := tools/aws-checks
NODE_STAMP := $(NODE_CHECKS)/node_modules/.installed
.PHONY: node-checks
node-checks: $(NODE_STAMP)
suite test-fast test-moto: $(NODE_STAMP)
$(NODE_STAMP): $(NODE_CHECKS)/package.json $(NODE_CHECKS)/package-lock.json
	cd $(NODE_CHECKS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@
