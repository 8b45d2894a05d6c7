"""Adversarial review of 1e666a5 ("workers on plain pipes (no ProcessPoolExecutor manager
thread), Lambda tasks call moto's Lambda backend directly (DirectLambda), one StartExecution
at a time").

Tests that FAIL at 1e666a5 (each says why in its docstring; the first two passed at a9d87e1,
whose ``ProcessPoolExecutor`` watched each worker's sentinel and kept a future per call):

* test_a_worker_that_dies_is_seen_dead_while_a_process_it_started_lives
* test_an_interrupted_call_does_not_hand_its_answer_to_the_next_one
* test_a_result_json_cannot_encode_is_a_marshal_error_not_a_crash

The rest PASS: behaviour of the changed code worth keeping.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from s3split.engine.lambda_runtime import CRASH_ERROR_TYPE, FunctionError, ProcessDispatcher
from tests.support.seam import SYS_PATH

pytestmark = pytest.mark.timeout(60)

ATTACK = "tests.support.attack_handlers"


# --------------------------------------------------------------------------------------------
# lambda_runtime: a slot is a process and a pipe
# --------------------------------------------------------------------------------------------


def test_a_worker_that_dies_is_seen_dead_while_a_process_it_started_lives(
        tmp_path: Path) -> None:
    """FAILS at 1e666a5. A slot learns that its worker died only from EOF on the pipe. A
    process the handler started with multiprocessing's fork (as the range split does,
    s3split.split.parallel) inherits the worker's end of that pipe, so when the worker is
    killed (the OOM killer) the pipe stays open: the caller waits out the whole timeout plus
    kill_grace_s (900 s + 5 s by default) and reports ``Sandbox.Timedout`` instead of
    ``Runtime.ExitError``. (The ProcessPoolExecutor watched each worker's sentinel.)"""
    pid_file = tmp_path / "child.pid"
    with ProcessDispatcher({"die": f"{ATTACK}:die_leaving_a_child"}, max_workers=1,
                           timeouts={"die": 2.0}, kill_grace_s=0.5,
                           extra_sys_path=SYS_PATH) as dispatcher:
        started = time.monotonic()
        try:
            with pytest.raises(FunctionError) as raised:
                dispatcher("die", {"pid_file": str(pid_file), "child_s": 20})
            elapsed = time.monotonic() - started
        finally:
            with suppress(FileNotFoundError, ValueError, ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
        assert (raised.value.error_type, elapsed < 1.5) == (CRASH_ERROR_TYPE, True), (
            raised.value, elapsed)


class _Interrupted(Exception):
    pass


def _interrupt(signum: int, frame: Any) -> None:
    raise _Interrupted


def test_an_interrupted_call_does_not_hand_its_answer_to_the_next_one() -> None:
    """FAILS at 1e666a5. A caller sends the invocation, then waits for the answer; when the
    wait is interrupted (Ctrl-C's KeyboardInterrupt in the main thread, any exception a
    signal handler raises) the slot goes back to the idle queue with the answer still owed,
    and the next call on it reads that answer as its own: another invocation's result, for
    another event. (With a future per call, the late answer went to its own future.)"""
    with ProcessDispatcher({"nap": f"{ATTACK}:nap"}, max_workers=1, timeouts={"nap": 5.0},
                           extra_sys_path=SYS_PATH) as dispatcher:
        previous = signal.signal(signal.SIGUSR1, _interrupt)
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1))
        try:
            timer.start()
            with pytest.raises(_Interrupted):
                dispatcher("nap", {"s": 0.6, "call": "first"})
        finally:
            timer.cancel()
            signal.signal(signal.SIGUSR1, previous)
        assert dispatcher("nap", {"s": 0, "call": "second"}) == {
            "napped": {"s": 0, "call": "second"}}
        time.sleep(0.6)  # (long enough for a first invocation left running to answer)
        assert dispatcher("nap", {"s": 0, "call": "third"}) == {
            "napped": {"s": 0, "call": "third"}}


def test_a_result_json_cannot_encode_is_a_marshal_error_not_a_crash() -> None:
    """FAILS at 1e666a5. A result nested too deeply for ``json.dumps`` raises RecursionError,
    not the TypeError/ValueError the worker turns into ``Runtime.MarshalError``: it escapes
    the worker's loop, the worker exits (a traceback on stderr) and the invocation is reported
    as a crash (``Runtime.ExitError``), costing a respawn. (At a9d87e1 the executor carried
    the RecursionError itself back to the caller: no respawn, but no FunctionError either.)"""
    with ProcessDispatcher({"nested": f"{ATTACK}:deeply_nested"}, max_workers=1,
                           extra_sys_path=SYS_PATH) as dispatcher:
        pids = dispatcher.worker_pids
        with pytest.raises(FunctionError) as raised:
            dispatcher("nested", {"depth": 100_000})
        assert raised.value.error_type == "Runtime.MarshalError"
        assert dispatcher.worker_pids == pids  # the same worker: it did not die
        assert dispatcher("nested", {"depth": 2}) == [[[]]]


# --------------------------------------------------------------------------------------------
# moto_seam.DirectLambda: where it answers otherwise than the boto3 round trip, by design
# --------------------------------------------------------------------------------------------


def test_a_response_under_lambdas_6_mb_is_a_result_not_a_size_error() -> None:
    """PASSES at 1e666a5 (a guard). DirectLambda answers as the boto3 round trip through moto
    everywhere I looked (string, empty, non-JSON and unicode payloads, Event and DryRun,
    qualifiers, every injected service error, the request quota) but one place: moto's HTTP
    layer turns a response over ``sys.getsizeof`` 6,000,000 (6,000,000 - 33 bytes) into
    ``Function.ResponseSizeTooLarge``, where Lambda's limit (and the engine's quota) is
    6,291,556 bytes. A 6.1 MB response is therefore a result now (and a state then fails
    ``States.DataLimitExceeded``, as on AWS), where the old path made it a function error
    that ``States.ALL`` catches."""
    from moto import mock_aws

    from s3split.engine.moto_seam import install
    from s3split.engine.routing import DirectLambda, moto_config

    size = 6_100_000
    with (ProcessDispatcher({"big": "tests.support.seam_handlers:big"}, max_workers=1,
                            extra_sys_path=SYS_PATH) as dispatcher,
          mock_aws(config=moto_config()), install(dispatcher)):
        response = DirectLambda("us-east-1").invoke(
            FunctionName="big", Payload=json.dumps({"bytes": size}).encode())
        body = response["Payload"].read()
    assert (response["StatusCode"], response.get("FunctionError")) == (200, None)
    assert len(body) == size + len('{"pad": ""}')
