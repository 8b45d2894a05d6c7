"""Lambda handlers for the engine's tests (test_moto_seam.py, test_engine_faults.py,
test_engine_quotas.py, test_engine_speedups.py, test_lambda_runtime.py), run in the
dispatcher's worker processes.

Workers import this module by name ("tests.support.seam_handlers:<fn>", see ``seam.HANDLERS``):
the tests pass the repository to ``ProcessDispatcher(extra_sys_path=...)``, so the import works
whatever pytest's import mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any


class ChunkInvalid(Exception):
    """A chunk failed validation (non-retryable)."""


class TransientError(Exception):
    """A failure that succeeds when retried."""


def _bump(counter: str) -> int:
    """Increment the attempt counter file and return the attempt number (1-based)."""
    path = Path(counter)
    attempt = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempt))
    return attempt


def echo(event: Any, context: Any) -> dict[str, Any]:
    return {
        "echo": event,
        "pid": os.getpid(),
        "function_name": context.function_name,
        "arn": context.invoked_function_arn,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }


def validate(event: Any, context: Any) -> dict[str, Any]:
    raise ChunkInvalid(f"chunk {event['chunk']} has a bad header")


def flaky(event: Any, context: Any) -> dict[str, Any]:
    attempt = _bump(event["counter"])
    if attempt <= event.get("failures", 1):
        raise TransientError(f"attempt {attempt} failed")
    return {"attempt": attempt}


def crash_once(event: Any, context: Any) -> dict[str, Any]:
    attempt = _bump(event["counter"])
    if attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"attempt": attempt, "pid": os.getpid()}


def lane(event: Any, context: Any) -> dict[str, Any]:
    start = time.time()
    time.sleep(event["sleep"])
    record = {"item": event["item"], "pid": os.getpid(), "start": start, "end": time.time()}
    Path(event["dir"], f"lane-{event['item']}.json").write_text(json.dumps(record))
    return record


def sleepy(event: Any, context: Any) -> dict[str, Any]:
    with contextlib.suppress(Exception):  # swallowing everything must not stop the timeout
        time.sleep(event["sleep"])
    return {"slept": event["sleep"]}


def deaf(event: Any, context: Any) -> dict[str, Any]:
    """Ignores SIGALRM (as C code holding the GIL, or a handler of its own, would) and
    returns after its timeout, within the dispatcher's kill grace."""
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    time.sleep(event["sleep"])
    return {"slept": event["sleep"]}


def generation(event: Any, context: Any) -> dict[str, Any]:
    """Continue-as-new driver: bump the generation, stop after ``last``."""
    gen = event.get("generation", 0) + 1
    return {"generation": gen, "last": event["last"], "done": gen >= event["last"]}


def big(event: Any, context: Any) -> dict[str, Any]:
    """A result of about ``event["bytes"]`` bytes of JSON."""
    return {"pad": "x" * event["bytes"]}


def count(event: Any, context: Any) -> dict[str, Any]:
    """Append one line per invocation to ``event["log"]`` (counts the handler's runs)."""
    with open(event["log"], "a") as f:
        f.write(f"{event.get('tag', '')}\n")
    return event


def environment(event: Any, context: Any) -> dict[str, Any]:
    """The worker's values of ``event["names"]`` (None: unset) and Powertools' package log
    level (which Powertools sets from POWERTOOLS_DEBUG when imported)."""
    import logging

    import aws_lambda_powertools  # noqa: F401  (as a handler using Powertools imports it)

    return {"env": {name: os.environ.get(name) for name in event["names"]},
            "powertools_level": logging.getLogger("aws_lambda_powertools").level}


def crash(event: Any, context: Any) -> dict[str, Any]:
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


def log(event: Any, context: Any) -> dict[str, Any]:
    """A Lambda's log line: its stdout (the runtime's log)."""
    print(event["line"], flush=True)
    return {}


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
