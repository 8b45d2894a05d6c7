"""Each function's cold start: what importing its handler costs (CPU seconds of a fresh
interpreter, ``python -X importtime`` naming the biggest imports when over budget), and what it
must not import. The Iterator runs the NextChunk task on 128 MB with a 10 s timeout: it once
imported numpy, pydantic and the X-Ray SDK (1.4-2.1 s of CPU on Lambda's slice of a vCPU).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# CPU seconds on this machine for the import alone (an empty interpreter's start subtracted);
# Lambda's 128 MB gets ~1/14 of a vCPU, so the Iterator's 0.5 s here is seconds there.
BUDGETS = {"iterator": 0.5, "splitter": 3.0, "worker": 3.0}
NEVER = {
    "iterator": ("numpy", "pydantic", "aws_xray_sdk", "boto3", "botocore.client", "smart_open"),
    "worker": ("numpy", "moto", "duckdb"),
    "splitter": ("moto", "duckdb"),
}


def cold_import(code: str, importtime: bool = False) -> tuple[float, str]:
    """CPU seconds of ``python -c code`` in a fresh process, and its stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3SPLIT_"))}
    env |= {"PYTHONPATH": str(REPO), "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "true"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, *(["-X", "importtime"] if importtime else []),
                           "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stderr[-2000:]
    spent = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return spent, done.stderr


def biggest(importtime: str, count: int = 8) -> list[str]:
    rows = []
    for line in importtime.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].strip()))
    return [f"{name} {micros / 1e6:.2f} s" for micros, name in sorted(rows, reverse=True)[:count]]


@pytest.mark.parametrize("function", sorted(BUDGETS))
def test_each_handler_imports_only_what_it_uses_within_its_budget(function: str) -> None:
    empty, _ = cold_import("pass")
    spent, importtime = cold_import(f"import functions.{function}.app", importtime=True)
    imported = {line.split("|")[-1].strip() for line in importtime.splitlines()}
    assert not [m for m in NEVER[function] if m in imported], \
        (function, [m for m in NEVER[function] if m in imported])
    assert spent - empty <= BUDGETS[function], (function, spent - empty, biggest(importtime))
