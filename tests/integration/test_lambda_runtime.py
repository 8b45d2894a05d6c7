"""The Lambda runtime stand-in (``s3split.engine.lambda_runtime``): each worker is a process
with a pipe, forked from the fork server. A worker that dies is seen dead at once even when
a process it started holds its pipe; an interrupted call never hands its answer to the next;
a result JSON cannot encode is a marshal error, not a crash; a handler's SDKs see the
worker's environment."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from s3split.engine.lambda_runtime import CRASH_ERROR_TYPE, FunctionError, ProcessDispatcher
from tests.support.seam import MODULE, SYS_PATH

pytestmark = pytest.mark.timeout(60)


def test_a_worker_that_dies_is_seen_dead_while_a_process_it_started_lives(
        tmp_path: Path) -> None:
    """A process the handler started with multiprocessing's fork (as the range split does,
    s3split.split.local_ranges) inherits the worker's end of its pipe, so when the worker is
    killed (the OOM killer) the pipe stays open. The slot watches the worker's sentinel too:
    the caller gets ``Runtime.ExitError`` at once, not ``Sandbox.Timedout`` after the whole
    timeout plus kill_grace_s (900 s + 5 s by default)."""
    pid_file = tmp_path / "child.pid"
    with ProcessDispatcher({"die": f"{MODULE}:die_leaving_a_child"}, max_workers=1,
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
    """A caller sends the invocation, then waits for the answer; when the wait is
    interrupted (Ctrl-C's KeyboardInterrupt in the main thread, any exception a signal
    handler raises) the answer is still owed. The next call on that slot never reads it as
    its own: it gets its own event's result, now and after the first invocation answered."""
    with ProcessDispatcher({"nap": f"{MODULE}:nap"}, max_workers=1, timeouts={"nap": 5.0},
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
    """A result nested too deeply for ``json.dumps`` raises RecursionError, not the
    TypeError/ValueError of other results JSON cannot encode: it is ``Runtime.MarshalError``
    too, and the worker lives on (no crash reported as ``Runtime.ExitError``, no respawn)."""
    with ProcessDispatcher({"nested": f"{MODULE}:deeply_nested"}, max_workers=1,
                           extra_sys_path=SYS_PATH) as dispatcher:
        pids = dispatcher.worker_pids
        with pytest.raises(FunctionError) as raised:
            dispatcher("nested", {"depth": 100_000})
        assert raised.value.error_type == "Runtime.MarshalError"
        assert dispatcher.worker_pids == pids  # the same worker: it did not die
        assert dispatcher("nested", {"depth": 2}) == [[[]]]


def test_a_handler_sees_the_xray_settings_of_its_environment() -> None:
    """A worker gets the dispatcher's environment (``env=``, as a function's configuration),
    and a handler that imports the X-Ray SDK (every Powertools ``Tracer()`` does) gets a
    recorder built from it: the SDK reads AWS_XRAY_CONTEXT_MISSING / AWS_XRAY_TRACING_NAME
    when it is imported, so the fork server must not import it before a worker's environment
    is set (lambda_runtime re-runs Powertools' logger setup for the same reason:
    ``_powertools_logger_as_if_imported_now``)."""
    env = {"AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR", "AWS_XRAY_TRACING_NAME": "from-env"}
    with ProcessDispatcher({"probe": f"{MODULE}:xray_settings"}, max_workers=1, env=env,
                           extra_sys_path=SYS_PATH) as d:
        seen = d("probe", {})
    assert seen["environ"] == env  # the worker has its environment ...
    assert (seen["context_missing"], seen["service"]) == ("IGNORE_ERROR", "from-env")  # ...


WARM = "tests.support.warm_handlers"


def _marks(path: Path, count: int) -> list[int]:
    """The process ids that imported the handler module, once ``count`` have (30 s at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = [int(line) for line in path.read_text().split()] if path.exists() else []
        if len(pids) >= count:
            return pids
        time.sleep(0.01)
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_on_demand_one_warm_worker_serves_calls_one_at_a_time_and_a_second_starts_for_two(
        tmp_path: Path) -> None:
    """``on_demand``: start() starts one worker, which imports its handler before any call
    (``warm``, in its own environment); calls one after another all go to it; two at once
    start a second, which imports the handler for its call; close() ends both."""
    marks = tmp_path / "marks"
    with ProcessDispatcher({"who": f"{WARM}:who"}, max_workers=3, on_demand=True, warm=True,
                           env={"WARM_MARKS": str(marks)}, extra_sys_path=SYS_PATH) as d:
        [first] = _marks(marks, 1)  # imported before the first call was sent
        assert d.worker_pids == [first]
        assert {d("who", {})["pid"] for _ in range(5)} == {first}
        assert d.worker_pids == [first] and _marks(marks, 1) == [first]
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda _: d("who", {"s": 1.0})["pid"], range(2)))
        assert sorted(answers) == sorted(d.worker_pids) and len(set(answers)) == 2
        assert sorted(_marks(marks, 2)) == sorted(answers)  # each worker imported it once
        workers = d.worker_pids
    assert not [pid for pid in workers if _alive(pid)]


def test_the_worker_used_last_is_used_next() -> None:
    """Idle workers are reused most recent first: after a call on each of two workers, the
    one that answered last takes the next call (its imports and caches are the warm ones)."""
    with ProcessDispatcher({"who": f"{WARM}:who"}, max_workers=2,
                           extra_sys_path=SYS_PATH) as d:
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(d, "who", {"s": 1.5})
            time.sleep(0.5)
            fast = d("who", {"s": 0})["pid"]
            last = slow.result()["pid"]
        assert fast != last
        assert {d("who", {})["pid"] for _ in range(3)} == {last}


def test_a_handler_that_cannot_be_imported_while_warming_is_reported_when_invoked() -> None:
    """The warm-up swallows an import error; the invocation reports it as the runtime does."""
    with ProcessDispatcher({"gone": "tests.support.no_such_module:handler"}, max_workers=1,
                           on_demand=True, warm=True, extra_sys_path=SYS_PATH) as d, \
            pytest.raises(FunctionError) as raised:
        d("gone", {})
    assert raised.value.error_type == "Runtime.ImportModuleError"
    assert "tests.support.no_such_module" in raised.value.message


def test_a_workers_collections_leave_out_what_the_fork_server_imported() -> None:
    """The fork server's modules (boto3, numpy, pydantic, DuckDB: ~90,000 objects) are frozen
    in each worker: its full collections no longer scan them; collections still run."""
    with ProcessDispatcher({"collector": f"{WARM}:collector"}, max_workers=1,
                           extra_sys_path=SYS_PATH) as d:
        seen = d("collector", {})
    assert seen["enabled"] and seen["frozen"] > 50_000, seen


def test_a_worker_started_on_demand_imports_only_the_handler_it_is_called_for() -> None:
    """The first worker imports every handler before its first call; one started later has
    a call waiting, and imports that call's handler only (not the others', as warming would:
    a splitter's X-Ray SDK alone is ~0.1 s)."""
    handlers = {"who": f"{WARM}:who", "loaded": f"{WARM}:loaded", "echo": f"{MODULE}:echo"}
    with ProcessDispatcher(handlers, max_workers=2, on_demand=True, warm=True,
                           extra_sys_path=SYS_PATH) as d, ThreadPoolExecutor(1) as pool:
        assert d("loaded", {"module": MODULE})["loaded"]  # the first worker: warmed
        busy = pool.submit(d, "who", {"s": 1.0})
        time.sleep(0.3)
        second = d("loaded", {"module": MODULE})
        assert second["pid"] != busy.result()["pid"]
        assert not second["loaded"]
