"""The worker pool of the parallel split (s3split.split.workers): real processes, real deaths."""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import sys
import time
from functools import partial

import pytest

from s3split.errors import SourceChanged, WorkerDied
from s3split.split.scanner import Scanner, State
from s3split.split.workers import _Worker, run_tasks

FORK = multiprocessing.get_context("fork")


def describe(index: int) -> str:
    return f"task {index}"


def square(index: int) -> int:
    return index * index


def die_at(victim: int, how: str, index: int) -> int:
    if index == victim:
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)
    return index


def fail_at(victim: int, index: int) -> int:
    if index == victim:
        raise SourceChanged(f"task {index} found the source changed")
    return index


def sleep_at(victim: int, index: int) -> int:
    if index == victim:
        time.sleep(60)
    return index


class Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a} and {b}")


def raise_unpicklable(index: int) -> int:
    raise Unpicklable(index, 2)


def assert_no_workers_left() -> None:
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_every_result_once(method: str) -> None:
    done = list(run_tasks(square, 20, 3, multiprocessing.get_context(method), describe))
    assert sorted(done) == [(i, i * i) for i in range(20)]
    assert_no_workers_left()


@pytest.mark.parametrize(("how", "said"), [("kill", "killed by SIGKILL (the OS's out-of-memory "
                                                   "killer sends it)"),
                                          ("exit", "it exited with status 3")])
def test_a_dead_worker_is_named_with_its_task(how: str, said: str) -> None:
    """The worker holding task 5 dies: ``WorkerDied`` names task 5 and how it died, the
    results before it were delivered, and no worker is left running."""
    got: list[int] = []
    with pytest.raises(WorkerDied) as raised:
        for index, _ in run_tasks(partial(die_at, 5, how), 12, 2, FORK, describe):
            got.append(index)
    assert str(raised.value).startswith(f"the process for task 5 died before it finished ({said})")
    assert 5 not in got
    assert_no_workers_left()


def test_a_tasks_own_error_is_raised_as_it_was() -> None:
    with pytest.raises(SourceChanged) as raised:
        list(run_tasks(partial(fail_at, 4), 10, 2, FORK, describe))
    assert str(raised.value) == "task 4 found the source changed"
    assert any("in a worker process" in note for note in raised.value.__notes__)
    assert_no_workers_left()


def test_an_error_that_cannot_travel_is_named() -> None:
    with pytest.raises(RuntimeError) as raised:
        list(run_tasks(raise_unpicklable, 3, 2, FORK, describe))
    assert str(raised.value) in {f"Unpicklable: {i} and 2" for i in range(3)}
    assert_no_workers_left()


def test_giving_up_early_stops_the_workers() -> None:
    done = run_tasks(square, 50, 2, FORK, describe)
    assert next(done)[1] in {0, 1}
    done.close()
    assert_no_workers_left()


def test_a_worker_killed_from_outside() -> None:
    """A worker killed by another process while it runs its second task: the pool fails
    naming that task instead of waiting for it."""
    done = run_tasks(partial(sleep_at, 1), 4, 1, FORK, describe)
    assert next(done) == (0, 0)  # (task 1, which sleeps, is already sent to the one worker)
    (worker,) = multiprocessing.active_children()
    os.kill(worker.pid, signal.SIGKILL)
    worker.join()
    with pytest.raises(WorkerDied, match=r"^the process for task 1 died .*killed by SIGKILL"):
        next(done)
    assert_no_workers_left()


def test_a_task_handed_to_a_dead_worker_is_named() -> None:
    """Handing a task to a worker that already died does not raise a broken pipe; the
    answer it never gives does, as ``WorkerDied`` naming the task."""
    worker = _Worker[int](FORK, square)
    worker.process.kill()
    worker.process.join()
    worker.give(7)
    with pytest.raises(WorkerDied, match=r"^the process for task 7 died .*killed by SIGKILL"):
        worker.result(describe)
    worker.stop()
    assert_no_workers_left()


def faults_scanning_dense_blocks(index: int) -> int:
    """Page faults while scanning 16 quote-dense 1 MiB blocks (after a first one)."""
    block = b'"a","b ""c""","d,e"\r\n' * ((1 << 20) // 22)
    scanner = Scanner()
    scanner.scan(block, State.RECORD)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(16):
        scanner.scan(block, State.RECORD)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_worker_keeps_freed_memory_for_the_next_block() -> None:
    """In a fresh worker process (spawn: nothing inherited), the scanner's temporaries are
    reused from block to block instead of handed back to the OS and faulted in again (that
    cost a third of the CPU time on quote-dense data)."""
    ((_, faults),) = run_tasks(faults_scanning_dense_blocks, 1, 1,
                               multiprocessing.get_context("spawn"), describe)
    assert faults < 500
