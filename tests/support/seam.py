"""What the seam tests share: the handlers' names, ARNs, the ``dispatcher``/``sfn`` fixtures
and running a definition on moto.

The handlers live in ``seam_handlers.py``. The dispatcher's workers are forked from a fresh
interpreter (the fork server), so they import it by module name, with ``SYS_PATH`` (the
repository) added to their ``sys.path``: independent of pytest's import mode.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from s3split import executions
from s3split.engine.lambda_runtime import ProcessDispatcher
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


@contextmanager
def moto_sfn(dispatcher: ProcessDispatcher, **install_options: Any) -> Iterator[Any]:
    """moto (in process) with the engine's seam installed on ``dispatcher`` (``install``'s
    ``quotas``, ``faults``, ``retry_interval_scale``); a Step Functions client of it."""
    import boto3
    from moto import mock_aws

    from s3split.engine.moto_seam import install
    from s3split.engine.routing import moto_config

    with mock_aws(config=moto_config()), install(dispatcher, **install_options):
        yield boto3.client("stepfunctions", region_name=REGION)


class SeamFixtures(NamedTuple):
    dispatcher: Callable[..., Any]
    sfn: Callable[..., Any]


def seam_fixtures(handlers: Mapping[str, str] = HANDLERS, *, max_workers: int = 2,
                  timeouts: Mapping[str, float] | None = None, **install_options: Any,
                  ) -> SeamFixtures:
    """The fixtures of a module that runs definitions on moto with the seam, to assign at its
    top: ``dispatcher, sfn = seam_fixtures(...)``, or ``dispatcher = seam_fixtures(...)
    .dispatcher`` for a module that installs the seam itself (with ``moto_sfn``).

    ``dispatcher``: one ``ProcessDispatcher`` of ``handlers`` for the module (its workers
    outlive each test, as warm Lambda workers do). ``sfn``: for each test, moto with the seam
    installed on it (``install_options``) and a Step Functions client."""

    @pytest.fixture(scope="module", name="dispatcher")
    def dispatcher_fixture() -> Iterator[ProcessDispatcher]:
        with ProcessDispatcher(handlers, max_workers=max_workers, timeouts=timeouts,
                               extra_sys_path=SYS_PATH) as dispatcher:
            yield dispatcher

    @pytest.fixture(name="sfn")
    def sfn_fixture(dispatcher: ProcessDispatcher) -> Iterator[Any]:
        with moto_sfn(dispatcher, **install_options) as client:
            yield client

    return SeamFixtures(dispatcher_fixture, sfn_fixture)
