"""A handler module that notes each import of itself (``WARM_MARKS``: a file, one line per
import, the importing process's id), for the tests of a worker's warm-up and of workers
started on demand (tests/integration/test_lambda_runtime.py)."""

from __future__ import annotations

import os
import time
from typing import Any

if os.environ.get("WARM_MARKS"):
    with open(os.environ["WARM_MARKS"], "a", encoding="utf-8") as marks:
        marks.write(f"{os.getpid()}\n")


def who(event: Any, context: Any) -> dict[str, Any]:
    """The worker's process id, after ``event["s"]`` seconds (two calls then overlap)."""
    time.sleep(float(event.get("s", 0)))
    return {"pid": os.getpid()}


def collector(event: Any, context: Any) -> dict[str, Any]:
    """What the worker's garbage collector scans: whether it runs, how many objects it skips."""
    import gc

    return {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}


def loaded(event: Any, context: Any) -> dict[str, Any]:
    """Whether the worker has imported module ``event["module"]``, and the worker's id."""
    import sys

    return {"loaded": event["module"] in sys.modules, "pid": os.getpid()}
