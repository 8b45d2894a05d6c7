"""A stand-in for the AWS Lambda runtime: each invocation of a real handler in a worker process.

:class:`ProcessDispatcher` is the ``dispatch(function_name, event)`` callable the moto seam
(:mod:`s3split.engine.moto_seam`) routes every Lambda Task to. Like the runtime, a worker gets a
context object with the remaining time, a timeout (``Sandbox.Timedout``), a crash
(``Runtime.ExitError``), import and marshalling errors with the runtime's error types, and its
stdout as the log (here: stderr). It never imports moto.
"""

from __future__ import annotations

import functools
import gc
import importlib
import json
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing import reduction, util
from multiprocessing.connection import Connection, wait
from types import FrameType, TracebackType
from typing import Any, Final

LOG = logging.getLogger(__name__)

CRASH_ERROR_TYPE: Final = "Runtime.ExitError"
"""errorType AWS Lambda reports when the runtime process dies (SIGKILL, OOM, ``sys.exit``)."""

TIMEOUT_ERROR_TYPE: Final = "Sandbox.Timedout"
"""errorType AWS Lambda reports when a function exceeds its configured timeout."""



class FunctionError(Exception):
    """A Lambda *function* error (the handler failed, not the Lambda service).

    Raised by a dispatcher; the interpreter sees an ``Unhandled`` function error
    whose ``errorType`` -- the name ASL ``Retry``/``Catch`` match on -- is
    ``error_type``.
    """

    def __init__(self, error_type: str, message: str, stack_trace: Sequence[str] = ()) -> None:
        super().__init__(error_type, message, tuple(stack_trace))
        self.error_type = error_type
        self.message = message
        self.stack_trace = tuple(stack_trace)

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"

    def payload(self) -> dict[str, Any]:
        """The response body the Lambda Python runtime sends for an unhandled error."""
        body: dict[str, Any] = {"errorMessage": self.message, "errorType": self.error_type}
        if self.stack_trace:
            body["stackTrace"] = list(self.stack_trace)
        return body


class UnknownFunction(LookupError):
    """Raised by a dispatcher for a function it does not know.

    Surfaces as the Lambda API's ``ResourceNotFoundException`` (Step Functions:
    ``Lambda.ResourceNotFoundException`` for ``arn:aws:states:::lambda:invoke``).
    """


@dataclass(frozen=True)
class FakeLambdaContext:
    """The subset of the Lambda Python context object handlers use."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str
    memory_limit_in_mb: int
    deadline_monotonic: float
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline_monotonic - time.monotonic()) * 1000))


@dataclass(frozen=True)
class _Invocation:
    handler: str
    function_name: str
    function_arn: str
    request_id: str
    event_json: str
    timeout_s: float
    memory_mb: int


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    body: str = ""
    error_type: str = ""
    message: str = ""
    stack_trace: tuple[str, ...] = field(default_factory=tuple)


class _SandboxTimeout(BaseException):
    """Raised in the worker by SIGALRM; BaseException so ``except Exception`` can't eat it."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise _SandboxTimeout


PRELOAD: Final = ("s3split.engine.deaf", "boto3", "botocore.session", "numpy", "duckdb", "pydantic",
                   "aws_lambda_powertools", "aws_lambda_powertools.metrics",
                   "aws_lambda_powertools.tracing", "aws_lambda_powertools.utilities.typing",
                   "s3split.split.splitter", "s3split.pipeline.steps", "s3split.pipeline.chunk",
                   "s3split.processors.registry", "s3split.processors.idempotency")
"""Imported once by the fork server, so a worker starts with them (``deaf`` first: from then
on the server ignores Ctrl-C, which reaches the whole process group; a worker imports the
handlers themselves: they read their environment when imported). None reads the environment
when imported, nor imports moto. (Not smart_open: only S3 sources need it, and import it then.
Not the X-Ray SDK, though each handler's ``Tracer()`` imports it, ~0.25 s of CPU per worker: it
reads ``AWS_XRAY_*`` and ``LAMBDA_TASK_ROOT`` when imported. DuckDB: the default processor's
reader, ~0.07 s of CPU at a worker's first chunk; importing it starts no thread.)"""


def start_fork_server() -> None:
    """Start the fork server now (idempotent): its imports (:data:`PRELOAD`, ~0.4 s of CPU)
    then run on another core while this process imports and checks what it needs, instead of
    after, when the first worker is started."""
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))
    forkserver.ensure_running()


class _ParentStderr:
    """This process's stderr (fd 2) as it is when a worker starts, as spawn would inherit it:
    a forked worker has the fork server's, the stderr of whoever first started the server."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_inherited_fd, (reduction.DupFd(2),))  # (pickled only while starting a worker)


def _inherited_fd(dup: Any) -> int:
    return int(dup.detach())


def _init_worker(extra_sys_path: tuple[str, ...], env: dict[str, str],
                 stderr: int | _ParentStderr) -> None:
    # What the fork server imported (~90,000 objects) is left out of this worker's garbage
    # collections: a full one scanned them all (~0.07 s), and wrote to the pages it shares.
    gc.freeze()
    if isinstance(stderr, int):  # (it is, once unpickled here)
        os.dup2(stderr, 2)
        os.close(stderr)
    for path in reversed(extra_sys_path):
        if path not in sys.path:
            sys.path.insert(0, path)
    # Forked from the fork server, a worker has the server's environment: set the one the
    # dispatcher's process had when it started this worker (as spawn would inherit).
    os.environ.clear()
    os.environ.update(env)
    # A Lambda's stdout is its log: here that is stderr, so the caller's stdout stays its own.
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _powertools_logger_as_if_imported_now()
    # Ctrl-C reaches the whole process group; the parent decides what stops (see kill()).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _powertools_logger_as_if_imported_now() -> None:
    """Powertools sets up its package logger from POWERTOOLS_DEBUG when imported: the fork
    server imported it before this worker's environment was set. Set it up again here."""
    package_logger = sys.modules.get("aws_lambda_powertools.package_logger")
    if package_logger is None:
        return
    logger = logging.getLogger("aws_lambda_powertools")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
    package_logger.set_package_logger_handler()


def _discard_disabled_metrics() -> None:
    """Powertools keeps metrics it may not flush (POWERTOOLS_METRICS_DISABLED) and prints
    them anyway once one name has 100 values; a worker process lives for many invocations,
    so drop them after each one, as a flush would."""
    if os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() not in ("1", "true"):
        return
    module = sys.modules.get("aws_lambda_powertools.metrics")
    if module is not None:
        module.Metrics().clear_metrics()


@functools.cache
def _load_handler(path: str) -> Callable[[Any, FakeLambdaContext], Any]:
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    module = importlib.import_module(module_name)
    handler = getattr(module, attr)
    if not callable(handler):
        raise TypeError(f"{path} is not callable")
    return handler  # type: ignore[no-any-return]


def _error(error_type: str, message: str, tb: TracebackType | None = None) -> _Outcome:
    return _Outcome(False, "", error_type, message, tuple(traceback.format_tb(tb)))


def _child_invoke(inv: _Invocation) -> _Outcome:
    """Runs in the worker process: one Lambda invocation, mimicking the runtime."""
    rid = inv.request_id
    try:
        handler = _load_handler(inv.handler)
    except (ImportError, SyntaxError) as exc:
        return _error(
            "Runtime.ImportModuleError", f"Unable to import module '{inv.handler}': {exc}"
        )
    except Exception as exc:
        return _error("Runtime.HandlerNotFound", f"Handler '{inv.handler}' missing: {exc}")
    os.environ.update(
        AWS_LAMBDA_FUNCTION_NAME=inv.function_name,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(inv.memory_mb),
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
    )
    context = FakeLambdaContext(
        function_name=inv.function_name,
        invoked_function_arn=inv.function_arn,
        aws_request_id=rid,
        memory_limit_in_mb=inv.memory_mb,
        deadline_monotonic=time.monotonic() + inv.timeout_s,
        log_group_name=f"/aws/lambda/{inv.function_name}",
    )
    timed_out = _error(
        TIMEOUT_ERROR_TYPE,
        f"RequestId: {rid} Error: Task timed out after {inv.timeout_s:.2f} seconds",
    )
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, inv.timeout_s)
            result = handler(json.loads(inv.event_json), context)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            _discard_disabled_metrics()
    except _SandboxTimeout:
        return timed_out
    except SystemExit as exc:
        return _error(
            CRASH_ERROR_TYPE,
            f"RequestId: {rid} Error: Runtime exited with error: exit status {exc.code}",
        )
    except Exception as exc:
        if time.monotonic() > context.deadline_monotonic:
            return timed_out
        return _error(type(exc).__name__, str(exc), exc.__traceback__)
    if time.monotonic() > context.deadline_monotonic:
        # A handler that ignored SIGALRM (or blocked it in C code) and ended late: Lambda
        # would have stopped it at its timeout, so neither its result nor its error arrives.
        return timed_out
    try:
        return _Outcome(True, json.dumps(result))
    except (TypeError, ValueError, RecursionError) as exc:  # (RecursionError: nested too deep)
        return _error("Runtime.MarshalError", f"Unable to marshal response: {exc}")


def _warm_up(handlers: Sequence[str]) -> None:
    """Import the handlers before the first invocation arrives (what a provisioned Lambda
    does at init). A handler that fails to import fails here unseen, and again, reported,
    when it is invoked (``_load_handler`` caches only what it loaded)."""
    for handler in handlers:
        with suppress(Exception):
            _load_handler(handler)


def _worker_main(connection: Connection, extra_sys_path: tuple[str, ...], env: dict[str, str],
                 stderr: int | _ParentStderr, warm: tuple[str, ...] = ()) -> None:
    """A worker process: set up as the runtime would, import the handlers of ``warm``, then
    one invocation per message until the dispatcher sends None or goes away."""
    _init_worker(extra_sys_path, env, stderr)
    _warm_up(warm)
    with suppress(EOFError, OSError, KeyboardInterrupt):
        while (invocation := connection.recv()) is not None:
            try:
                outcome = _child_invoke(invocation)
            except Exception as exc:  # (not the handler's: its own are outcomes already)
                outcome = _error(type(exc).__name__, repr(exc), exc.__traceback__)
            connection.send(outcome)


class _Slot:
    """One worker process and this process's end of its pipe. One caller at a time holds a
    slot (it is taken from the idle queue), so a call is a send, a wait on the pipe and the
    process, and a receive, with no manager thread or call queue (what a
    ``ProcessPoolExecutor`` cost: a fifth of the engine's CPU in a 2,000-chunk run)."""

    def __init__(self, extra_sys_path: tuple[str, ...], env: dict[str, str],
                 warm: tuple[str, ...] = ()) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(PRELOAD))  # (no effect once the server runs)
        self.connection, child_end = context.Pipe()
        # Not a daemon: a handler may start processes of its own (a range split does).
        self.process = context.Process(
            target=_worker_main, args=(child_end, extra_sys_path, env, _ParentStderr(), warm))
        self.process.start()
        child_end.close()
        self.pid: int = self.process.pid  # type: ignore[assignment]
        # At exit, before multiprocessing joins its children: the worker reads EOF and ends.
        util.Finalize(self, self.connection.close, exitpriority=10)

    def call(self, invocation: _Invocation, timeout_s: float) -> _Outcome | None:
        """The worker's outcome; None if it did not answer within ``timeout_s``.
        Raises EOFError (or OSError) if the worker died."""
        self.connection.send(invocation)
        # Not only EOF on the pipe: a process the handler started with fork (a range split's)
        # holds the worker's end open after the worker died. Its sentinel says it ended.
        if not wait([self.connection, self.process.sentinel], timeout_s):
            return None
        if not self.connection.poll(0):  # (an answer, or EOF: recv says which)
            raise EOFError(f"worker process {self.pid} ended")
        outcome: _Outcome = self.connection.recv()
        return outcome

    def stop(self, timeout_s: float | None = None) -> None:
        """Ask the worker to exit after its current invocation; wait up to ``timeout_s``."""
        with suppress(OSError):
            self.connection.send(None)
        self.process.join(timeout_s)
        self.kill()

    def kill(self) -> None:
        if self.process.exitcode is None:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.process.join(5)
        self.connection.close()


class ProcessDispatcher:
    """A :data:`Dispatch` that runs each invocation in a worker process.

    Each worker is a process of its own with a pipe to this one ("slot"), so a crashed
    worker only fails the invocation it was running, and only that slot is respawned.
    Invocations beyond ``max_workers`` wait for a free slot (like throttling).

    Workers use the **forkserver** start method: ``fork`` would copy the parent's
    ``mock_aws`` patches (botocore hooks, in-memory backends) -- a handler's boto3
    call would then silently hit a stale private copy of moto -- plus locks held
    by the interpreter's threads at fork time (deadlock risk). The fork server is a
    fresh interpreter that imports :data:`PRELOAD` once (boto3, numpy, Powertools,
    the core: ~0.4 s of CPU that spawn paid in every worker); each worker is forked
    from it and given the environment this process had when :meth:`start` ran (plus ``env``);
    a worker replaced after a crash gets the same one. Handlers that call AWS must therefore
    reach moto over HTTP (e.g. ``env={"AWS_ENDPOINT_URL": ...}`` pointing at a
    ``ThreadedMotoServer``).

    ``handlers`` maps function name -> ``"module:function"`` (``"module.function"``
    is accepted too); the handler is called as ``handler(event, context)``.
    ``timeouts`` (seconds, per function, default ``default_timeout_s``) feed
    ``context.get_remaining_time_in_millis()`` and are enforced with SIGALRM in the
    worker (``Sandbox.Timedout``); a worker that ignores the alarm is SIGKILLed
    after ``kill_grace_s`` more. A dead worker yields ``FunctionError(crash_error_type)``.

    ``on_demand``: :meth:`start` starts one worker, and an invocation that finds none idle
    starts another (up to ``max_workers``), so a run that never has two invocations at once
    never pays for a second. An idle worker is reused most recent first: the one whose
    imports and caches are warm. ``warm``: the workers :meth:`start` starts import every
    handler as they start, while this process is still busy elsewhere, not in their first
    invocation; a worker started later (on demand, or for one that died) has a call waiting
    for it, and imports only the handlers it is called for, when it is.
    """

    def __init__(
        self,
        handlers: Mapping[str, str],
        max_workers: int = 2,
        *,
        timeouts: Mapping[str, float] | None = None,
        default_timeout_s: float = 900.0,
        memory_mb: int = 1024,
        env: Mapping[str, str] | None = None,
        extra_sys_path: Sequence[str] = (),
        region: str = "us-east-1",
        account_id: str = "123456789012",
        crash_error_type: str = CRASH_ERROR_TYPE,
        kill_grace_s: float = 5.0,
        on_demand: bool = False,
        warm: bool = False,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        self.handlers = dict(handlers)
        self.max_workers = max_workers
        self.timeouts = dict(timeouts or {})
        self.default_timeout_s = default_timeout_s
        self.memory_mb = memory_mb
        self.region = region
        self.account_id = account_id
        self.crash_error_type = crash_error_type
        self.kill_grace_s = kill_grace_s
        self._sys_path = tuple(extra_sys_path)
        self._env = dict(env or {})
        self._worker_env: dict[str, str] = {}
        self._on_demand = on_demand
        self._warm = tuple(dict.fromkeys(self.handlers.values())) if warm else ()
        self._lock = threading.Lock()
        self._slots: list[_Slot] = []
        self._idle: queue.LifoQueue[_Slot] = queue.LifoQueue()
        self._started = False
        self._closed = False

    # lifecycle -----------------------------------------------------------

    def _spawn(self, warm: tuple[str, ...] = ()) -> _Slot:
        return _Slot(self._sys_path, self._worker_env, warm)

    def start(self) -> ProcessDispatcher:
        """Start all workers (``on_demand``: the first). Idempotent."""
        with self._lock:
            if self._closed:
                raise RuntimeError("ProcessDispatcher is closed")
            if self._started:
                return self
            # A function's environment is its configuration: a worker replaced after a crash
            # gets this one too, not what this process has then (moto's fake credentials).
            self._worker_env = dict(os.environ) | self._env
            for _ in range(1 if self._on_demand else self.max_workers):
                slot = self._spawn(self._warm)
                self._slots.append(slot)
                self._idle.put(slot)
            self._started = True
        return self

    def close(self) -> None:
        """Stop all workers; running invocations are waited for (bounded by their timeouts)."""
        with self._lock:
            self._closed = True
            slots, self._slots = self._slots, []
        for slot in slots:
            slot.stop(max(self.timeouts.values(), default=self.default_timeout_s)
                      + self.kill_grace_s)

    def kill(self) -> None:
        """Stop now (after Ctrl-C): SIGKILL the workers, as if each had crashed."""
        with self._lock:
            self._closed = True
            slots, self._slots = self._slots, []
        for slot in slots:
            slot.kill()

    def __enter__(self) -> ProcessDispatcher:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def busy(self) -> int:
        """Workers running an invocation right now."""
        with self._lock:
            return len(self._slots) - self._idle.qsize()

    @property
    def worker_pids(self) -> list[int]:
        with self._lock:
            return [slot.pid for slot in self._slots]

    def _replace(self, dead: _Slot) -> _Slot | None:
        dead.kill()
        with self._lock:
            if self._closed:
                return None
            fresh = self._spawn()
            self._slots = [fresh if slot is dead else slot for slot in self._slots]
        return fresh

    def _recycle(self, dead: _Slot) -> None:
        """Replace ``dead`` and make the new slot idle (none once closed). If no worker can
        be started, ``dead`` goes back: the next call on it fails and tries again."""
        fresh: _Slot | None = dead
        try:
            fresh = self._replace(dead)
        finally:
            if fresh is not None:
                self._idle.put(fresh)

    def _acquire(self) -> _Slot:
        self.start()
        while True:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                pass
            fresh = self._grow()
            if fresh is not None:
                return fresh
            try:
                return self._idle.get(timeout=0.5)
            except queue.Empty:
                if self._closed:
                    raise RuntimeError("ProcessDispatcher is closed") from None

    def _grow(self) -> _Slot | None:
        """``on_demand``: one more worker, for the caller (None: all are running)."""
        with self._lock:
            if not self._on_demand or self._closed or len(self._slots) >= self.max_workers:
                return None
            fresh = self._spawn()
            self._slots.append(fresh)
            return fresh

    # dispatch ------------------------------------------------------------

    def __call__(self, function_name: str, event: Any) -> Any:
        handler = self.handlers.get(function_name)
        if handler is None:
            raise UnknownFunction(function_name)
        timeout_s = self.timeouts.get(function_name, self.default_timeout_s)
        inv = _Invocation(
            handler=handler,
            function_name=function_name,
            function_arn=(
                f"arn:aws:lambda:{self.region}:{self.account_id}:function:{function_name}"
            ),
            request_id=str(uuid.uuid4()),
            event_json=json.dumps(event),
            timeout_s=timeout_s,
            memory_mb=self.memory_mb,
        )
        slot = self._acquire()
        try:
            outcome = slot.call(inv, timeout_s + self.kill_grace_s)
        except (EOFError, OSError) as exc:
            self._recycle(slot)
            raise FunctionError(
                self.crash_error_type,
                f"RequestId: {inv.request_id} Error: Runtime exited without providing "
                f"a reason (worker process died: {exc!r})",
            ) from exc
        except BaseException:
            # Interrupted between the invocation and its answer (Ctrl-C in the main thread):
            # the worker still owes that answer, and the next caller would read it as its own.
            self._recycle(slot)
            raise
        if outcome is None:
            LOG.warning("%s ignored its timeout; killing worker %d", function_name, slot.pid)
            self._recycle(slot)
            raise FunctionError(
                TIMEOUT_ERROR_TYPE,
                f"RequestId: {inv.request_id} Error: Task timed out after "
                f"{timeout_s:.2f} seconds",
            )
        self._idle.put(slot)
        if not outcome.ok:
            raise FunctionError(outcome.error_type, outcome.message, outcome.stack_trace)
        return json.loads(outcome.body)
