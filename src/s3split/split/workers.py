"""Tasks in worker processes, each task's fate known: results as they finish, errors named.

A small pool instead of ``concurrent.futures``: every worker has a pipe of its own and holds
one task at a time, so when a worker dies (the OS's out-of-memory killer, a signal) the
parent knows which task it held and how it died, and raises ``WorkerDied`` naming the task
(``concurrent.futures`` only says that some process of the pool broke, and fails every task
still queued with it). A task's own exception comes back through the pipe and is raised as
it was raised in the worker. Results come back as they finish, so the caller can use the
early ones while later tasks still run; the workers are started once, before any result
arrives, and stopped when the caller is done or gives up.
"""

import contextlib
import ctypes
import pickle
import signal
import sys
import traceback
from collections.abc import Callable, Generator
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any, Final, Generic, TypeVar

from s3split.errors import WorkerDied

T = TypeVar("T")
STOP_WAIT: Final = 5.0  # seconds a stopped worker gets to exit before it is killed
# glibc's mallopt parameters (malloc.h) and the values a worker sets (see keep_freed_memory):
# allocations up to 32 MiB (glibc's maximum) from the heap, and up to 256 MiB of free heap
# kept instead of handed back to the OS.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD: Final = 32 * 1024 * 1024
TRIM_THRESHOLD: Final = 256 * 1024 * 1024

_OK, _ERROR = "ok", "error"


def run_tasks(task: Callable[[int], T], count: int, jobs: int, context: BaseContext,
              describe: Callable[[int], str]) -> Generator[tuple[int, T], None, None]:
    """``(index, task(index))`` for every index below ``count``, in the order they finish,
    from ``jobs`` worker processes started from ``context``. ``describe(index)`` names a
    task in the ``WorkerDied`` raised when its worker dies. Closing the iterator early (or
    an exception in the caller) stops the workers."""
    pool = [_Worker[T](context, task) for _ in range(max(1, min(jobs, count)))]
    todo = iter(range(count))
    try:
        for worker in pool:
            worker.give(next(todo, None))
        while busy := [w for w in pool if w.index is not None]:
            for worker in _ready(busy):
                index, result = worker.result(describe)
                worker.give(next(todo, None))
                yield index, result
    finally:
        for worker in pool:
            worker.stop()


def _ready(busy: list["_Worker[T]"]) -> list["_Worker[T]"]:
    """The busy workers with a result to collect or that ended."""
    owner: dict[Any, _Worker[T]] = {}
    for worker in busy:
        owner[worker.conn] = owner[worker.process.sentinel] = worker
    ready: list[_Worker[T]] = []
    for handle in wait(list(owner)):
        if owner[handle] not in ready:
            ready.append(owner[handle])
    return ready


class _Worker(Generic[T]):
    """One worker process and the task it holds (``index``; None when idle)."""

    def __init__(self, context: BaseContext, task: Callable[[int], T]) -> None:
        self.conn, theirs = context.Pipe()
        self.process: BaseProcess = context.Process(  # type: ignore[attr-defined]
            target=_serve, args=(theirs, task), daemon=True)
        self.process.start()
        theirs.close()
        self.index: int | None = None

    def give(self, index: int | None) -> None:
        """Hand the worker its next task (None: no more)."""
        self.index = index
        if index is not None:
            with contextlib.suppress(OSError):  # it died since its last answer: ``result``
                self.conn.send(index)  # will say so

    def result(self, describe: Callable[[int], str]) -> tuple[int, T]:
        """The held task's result; its exception raised, or ``WorkerDied``."""
        index = self.index
        assert index is not None
        try:
            kind, value = self.conn.recv()
        except (EOFError, OSError):  # (the process ended without answering)
            self.process.join(STOP_WAIT)
            raise WorkerDied(f"the process for {describe(index)} died before it finished "
                             f"({_how(self.process.exitcode)}); the split wrote no manifest: "
                             "start it again (with fewer --jobs if memory is short)") from None
        if kind == _ERROR:
            raise value
        return index, value

    def stop(self) -> None:
        """End the worker: asked to when idle, terminated when it holds a task."""
        if self.process.is_alive():
            try:
                if self.index is None:
                    self.conn.send(None)
                else:
                    self.process.terminate()
            except OSError:
                self.process.terminate()
            self.process.join(STOP_WAIT)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        self.conn.close()


def _how(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = " (the OS's out-of-memory killer sends it)" if -exitcode == signal.SIGKILL else ""
        return f"killed by {name}{why}"
    return f"it exited with status {exitcode}"


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for the next allocation (whether it could).

    By default glibc hands a freed megabyte-sized block back to the OS (``munmap``, or by
    trimming the heap) until it has freed larger ones, so in a fresh process the scanner's
    temporary arrays, allocated afresh for every block, cost a page fault per 4 KiB each
    time: on quote-dense data a third of a range scan's CPU time (measured: 517,000 faults
    for 384 MiB; 250 with this). A worker forked after a large read of the header happens to
    inherit raised thresholds; this does not leave it to chance. Kept, the arrays are
    reused; the process's peak memory is the same."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # (the C library the process runs on)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and
                mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _serve(conn: Connection, task: Callable[[int], object]) -> None:
    """A worker's loop: run each index it is sent, answer ``(kind, value)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # The parent stops a worker with SIGTERM; a handler forked from the command line's
    # (which raises, for the parent's clean-up) would print the worker's traceback instead of
    # ending it. As a spawned worker has them: the defaults.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    keep_freed_memory()
    while True:
        try:
            index = conn.recv()
        except EOFError:  # the parent is gone
            return
        if index is None:
            return
        try:
            answer: tuple[str, object] = (_OK, task(index))
        except Exception as exc:
            answer = (_ERROR, _portable(exc))
        conn.send(answer)


def _portable(exc: Exception) -> Exception:
    """``exc`` if it survives the trip to the parent, else a ``RuntimeError`` that names it;
    either way with the worker's traceback as a note."""
    exc.add_note("in a worker process:\n" + "".join(traceback.format_tb(exc.__traceback__)))
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        plain = RuntimeError(f"{type(exc).__name__}: {exc}")
        plain.__notes__ = getattr(exc, "__notes__", [])
        return plain
    return exc
