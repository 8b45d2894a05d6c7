"""The environment of the Lambda workers (a function's own, fixed when its workers start) and
where their logs go (this process's stderr as it is when they start).

On AWS a function's environment is its configuration: a new execution environment after a
crash has the same one, and Powertools reads POWERTOOLS_DEBUG when the handler imports it.
The workers here are forked from a fork server that imported Powertools before any function's
environment was set, and a crashed worker is replaced while moto's fake credentials are in
the engine's environment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from s3split.engine.lambda_runtime import CRASH_ERROR_TYPE, FunctionError, ProcessDispatcher
from tests.support.seam import MODULE, SYS_PATH

pytestmark = pytest.mark.timeout(120)

HANDLERS = {name: f"{MODULE}:{name}" for name in ("environment", "crash", "log")}
NAMES = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3SPLIT_LATE", "FUNCTION_SETTING"]


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The user's credentials in a file (~/.aws), none in the environment."""
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.mark.usefixtures("no_credentials")
def test_a_worker_replaced_after_a_crash_has_the_environment_of_the_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with ProcessDispatcher(HANDLERS, max_workers=1, extra_sys_path=SYS_PATH,
                           env={"FUNCTION_SETTING": "1"}) as dispatcher:
        first = dispatcher("environment", {"names": NAMES})
        # as the engine does: its workers started, it enters mock_aws (fake credentials)
        with mock_aws():
            monkeypatch.setenv("S3SPLIT_LATE", "set after the function started")
            with pytest.raises(FunctionError) as crashed:
                dispatcher("crash", {})
            replaced = dispatcher("environment", {"names": NAMES})
    assert crashed.value.error_type == CRASH_ERROR_TYPE
    assert first["env"] == {name: None for name in NAMES} | {"FUNCTION_SETTING": "1"}
    assert replaced["env"] == first["env"]


def test_powertools_debug_in_a_functions_environment_is_honoured(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POWERTOOLS_DEBUG", raising=False)
    with ProcessDispatcher(HANDLERS, max_workers=1, extra_sys_path=SYS_PATH,
                           env={"POWERTOOLS_DEBUG": "true"}) as debug:
        debugged = debug("environment", {"names": []})
    with ProcessDispatcher(HANDLERS, max_workers=1, extra_sys_path=SYS_PATH) as quiet:
        plain = quiet("environment", {"names": []})
    assert (debugged["powertools_level"], plain["powertools_level"]) == (
        logging.DEBUG, logging.NOTSET)


def test_a_workers_log_goes_to_the_stderr_of_the_process_that_started_it(
        tmp_path: Path) -> None:
    """Workers forked from the (process-wide) fork server inherit its stderr: the one of the
    process when the server started. A later engine's workers log where that engine's
    process's stderr goes now, as spawned workers did."""
    with ProcessDispatcher(HANDLERS, max_workers=1, extra_sys_path=SYS_PATH) as earlier:
        earlier("log", {"line": "earlier"})  # the fork server runs by now
    log = tmp_path / "stderr"
    saved = os.dup(2)
    try:
        with log.open("wb") as redirected:
            os.dup2(redirected.fileno(), 2)
        with ProcessDispatcher(HANDLERS, max_workers=1, extra_sys_path=SYS_PATH) as later:
            later("log", {"line": "later engine's worker"})
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    assert "later engine's worker" in log.read_text()
