# Everything installs itself: a fresh machine with python3 needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install demo test lint unit bench clean

help:
	@echo "make demo   - run s3split on the bundled sample"
	@echo "make test   - lint, type-check and run the whole test suite"
	@echo "make lint   - ruff and mypy only"
	@echo "make bench  - benchmarks against split, DuckDB, Miller and the csv module"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	./scripts/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests functions bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	bash bench/setup.sh
	$(BIN)/python bench/bench_split.py --size 1GiB --sizes 256MiB,2GiB
	$(BIN)/python bench/bench_pipeline.py

clean:
	rm -rf $(VENV) s3split-out .pytest_cache .mypy_cache .ruff_cache
