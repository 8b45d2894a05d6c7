"""The run lock on local storage: take, refuse, take over when stale, carry on, release."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from s3split.errors import RunInProgress, RunTakenOver
from s3split.holders import Holder, holder_alive
from s3split.pipeline.run_lock import acquire, carry, release
from s3split.storage import Storage


def never_called() -> object:
    raise AssertionError("a local holder must not be looked up in Step Functions")


def alive_by_pid(holder: Holder) -> bool:
    return holder_alive(holder, sfn=never_called)  # type: ignore[arg-type]


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def read_lock(location: Path) -> dict[str, object]:
    return dict(json.loads((location / "lock.json").read_text()))


def test_first_start_takes_the_lock_and_a_retried_plan_keeps_it(tmp_path: Path) -> None:
    holder = Holder.new("exec-1", engine_pid=os.getpid())
    acquire(str(tmp_path), holder, Storage(), alive_by_pid)
    acquire(str(tmp_path), holder, Storage(), alive_by_pid)
    assert read_lock(tmp_path)["lease"] == "exec-1"
    assert read_lock(tmp_path)["pid"] == os.getpid()


def test_a_second_start_is_refused_while_the_holder_runs(tmp_path: Path) -> None:
    acquire(str(tmp_path), Holder.new("exec-1", os.getpid()), Storage(), alive_by_pid)
    with pytest.raises(RunInProgress) as refused:
        acquire(str(tmp_path), Holder.new("exec-2", os.getpid()), Storage(), alive_by_pid)
    message = str(refused.value)
    assert str(tmp_path) in message and "exec-1" in message and f"process {os.getpid()}" in message
    assert f'"resume": "{tmp_path}"' in message
    assert read_lock(tmp_path)["lease"] == "exec-1"


def test_a_lock_whose_engine_process_exited_is_taken_over(tmp_path: Path) -> None:
    acquire(str(tmp_path), Holder.new("crashed", dead_pid()), Storage(), alive_by_pid)
    acquire(str(tmp_path), Holder.new("exec-2", os.getpid()), Storage(), alive_by_pid)
    assert read_lock(tmp_path)["lease"] == "exec-2"


def test_a_killed_but_unreaped_process_counts_as_ended() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        holder = Holder.new("x", engine_pid=child.pid)
        assert alive_by_pid(holder)
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10  # the zombie appears within milliseconds
        while alive_by_pid(holder) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive_by_pid(holder)
    finally:
        child.wait(timeout=30)


def test_a_holder_on_another_host_is_assumed_alive() -> None:
    holder = Holder("exec-1", "exec-1", "2026-01-01T00:00:00+00:00", dead_pid(), "elsewhere")
    assert alive_by_pid(holder)


def test_continuations_carry_the_lock_and_a_taken_over_one_stops(tmp_path: Path) -> None:
    storage = Storage()
    acquire(str(tmp_path), Holder.new("exec-1"), storage, lambda _: True)
    carry(str(tmp_path), "exec-1", "exec-1-g1", storage)
    assert read_lock(tmp_path)["execution"] == "exec-1-g1"
    assert read_lock(tmp_path)["lease"] == "exec-1"

    acquire(str(tmp_path), Holder.new("exec-2"), storage, lambda _: False)  # stale: taken over
    with pytest.raises(RunTakenOver) as stopped:
        carry(str(tmp_path), "exec-1", "exec-1-g2", storage)
    assert "exec-2" in str(stopped.value) and str(tmp_path) in str(stopped.value)
    assert read_lock(tmp_path)["lease"] == "exec-2"


def test_release_drops_only_its_own_lock(tmp_path: Path) -> None:
    storage = Storage()
    acquire(str(tmp_path), Holder.new("exec-2"), storage, lambda _: True)
    release(str(tmp_path), "exec-1", storage)
    assert (tmp_path / "lock.json").exists()
    release(str(tmp_path), "exec-2", storage)
    assert not (tmp_path / "lock.json").exists()
    release(str(tmp_path), "exec-2", storage)  # twice is harmless


def test_racing_starts_get_exactly_one_lock(tmp_path: Path) -> None:
    """Twelve threads take the lock at once; each either holds it or is refused."""
    storage, barrier = Storage(), threading.Barrier(12)
    won, refused = [], []

    def start(n: int) -> None:
        barrier.wait(timeout=30)
        try:
            acquire(str(tmp_path), Holder.new(f"exec-{n}"), storage, lambda _: True)
            won.append(n)
        except RunInProgress:
            refused.append(n)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(won) == 1 and len(refused) == 11
    assert read_lock(tmp_path)["lease"] == f"exec-{won[0]}"

