"""Handlers for tests/integration/test_attack_engine_speedups.py, run in the dispatcher's
worker processes (imported by name, like ``seam_handlers``)."""

from __future__ import annotations

import os
from typing import Any


def xray_settings(event: Any, context: Any) -> dict[str, Any]:
    """What the X-Ray SDK a handler's Tracer uses made of its ``AWS_XRAY_*`` environment."""
    from aws_xray_sdk.core import xray_recorder

    return {
        "environ": {k: v for k, v in os.environ.items() if k.startswith("AWS_XRAY_")},
        "context_missing": xray_recorder.context.context_missing,
        "service": xray_recorder.service,
    }


def die_leaving_a_child(event: Any, context: Any) -> dict[str, Any]:
    """Start a process of its own (as a range split does: multiprocessing's fork, which
    inherits every descriptor of the worker), note its pid in ``event["pid_file"]``, then
    die as the out-of-memory killer would kill the worker, leaving the child behind."""
    import multiprocessing
    import signal
    import time
    from pathlib import Path

    child = multiprocessing.get_context("fork").Process(target=time.sleep,
                                                        args=(event["child_s"],), daemon=True)
    child.start()
    Path(event["pid_file"]).write_text(str(child.pid))
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


def nap(event: Any, context: Any) -> dict[str, Any]:
    """Sleep ``event["s"]`` seconds, then answer with the event."""
    import time

    time.sleep(event["s"])
    return {"napped": event}


def deeply_nested(event: Any, context: Any) -> Any:
    """A result too deeply nested for ``json.dumps`` (RecursionError, not TypeError)."""
    result: Any = []
    for _ in range(event.get("depth", 100_000)):
        result = [result]
    return result
