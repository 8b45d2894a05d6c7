#!/usr/bin/env bash
# Idempotent installer for the comparison tools used by bench/bench_split.py.
#   - duckdb (Python package) into the project venv, only if missing
#   - miller (Debian package, provides `mlr`), only if `mlr` is missing
# Failures are warnings: the benchmark marks a missing tool "not available".
set -u

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PY="${PYTHON:-$ROOT/.venv/bin/python}"

if [ ! -x "$PY" ]; then
    echo "warning: $PY not found; set PYTHON=/path/to/python" >&2
    PY="$(command -v python3 || true)"
fi

# --- duckdb -------------------------------------------------------------
if [ -n "$PY" ] && "$PY" -c 'import duckdb' 2>/dev/null; then
    echo "duckdb: already installed ($("$PY" -c 'import duckdb; print(duckdb.__version__)'))"
elif [ -n "$PY" ]; then
    echo "duckdb: installing into $("$PY" -c 'import sys; print(sys.prefix)')"
    if ! "$PY" -m pip install --quiet duckdb; then
        echo "warning: pip install duckdb failed; DuckDB will be marked not available" >&2
    fi
fi

# --- miller ---------------------------------------------------------------
if command -v mlr >/dev/null 2>&1; then
    echo "miller: already installed ($(mlr --version 2>/dev/null | head -n1))"
elif command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    fi
    echo "miller: installing with apt-get"
    if $SUDO apt-get update -qq && \
       DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq miller >/dev/null; then
        echo "miller: installed ($(mlr --version 2>/dev/null | head -n1))"
    else
        echo "warning: apt-get install miller failed; Miller will be marked not available" >&2
    fi
else
    echo "warning: apt-get not available; Miller will be marked not available" >&2
fi

# --- GNU split / time (informational only) --------------------------------
command -v split >/dev/null 2>&1 || echo "warning: GNU split not found" >&2
exit 0
