"""What the seam tests share: the handlers' names, ARNs, and running a definition on moto.

The handlers live in ``seam_handlers.py``. The dispatcher's workers are forked from a fresh
interpreter (the fork server), so they import it by module name, with ``SYS_PATH`` (the
repository) added to their ``sys.path``: independent of pytest's import mode.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from s3split import executions
from s3split.engine.speedups import ends_of, wait_for_end

REPO = Path(__file__).resolve().parents[2]
SYS_PATH = [str(REPO)]  # for ProcessDispatcher(extra_sys_path=...)
MODULE = "tests.support.seam_handlers"  # as the workers import it
REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sfn"
HANDLERS = {
    name: f"{MODULE}:{name}"
    for name in ("echo", "validate", "flaky", "crash_once", "lane", "sleepy", "deaf",
                 "generation")
}
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"


def fn_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def create(sfn: Any, definition: dict[str, Any], name: str = "seam") -> str:
    created = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)
    arn: str = created["stateMachineArn"]
    return arn


def history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every event, a page at a time (the engine pages as AWS does)."""
    return list(executions.history(sfn, execution_arn))


def wait_for_execution(sfn: Any, execution_arn: str, timeout: float = 30) -> dict[str, Any]:
    """Wait until the execution leaves RUNNING (woken by the seam when it ends, looking at
    least every 0.5 s); fail with its history after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        seen = ends_of(execution_arn)
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        if time.monotonic() > deadline:
            tail = [e["type"] for e in history(sfn, execution_arn)[-10:]]
            raise AssertionError(f"{execution_arn} still RUNNING after {timeout}s; last: {tail}")
        wait_for_end(execution_arn, seen, min(0.5, max(0.0, deadline - time.monotonic())))
