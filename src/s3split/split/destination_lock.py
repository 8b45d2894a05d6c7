"""One ``s3split split`` per destination at a time: the lock object ``DEST/.split.lock``.

Taken with a conditional write (as the run lock, ``pipeline.lock``), released when the split
ends, whether it succeeded or failed. A lock whose holder process has exited on this host
is stale and taken over; a holder on another host is assumed alive.

Only the ``split`` command takes it. The pipeline splits into ``<run>/chunks`` under the
run lock (``<run>/lock.json``), which already allows one execution per run location and
is carried by the Lambda invocations that continue a split from a resume token.
"""

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from s3split.errors import SplitInProgress
from s3split.holders import Holder, holder_alive
from s3split.split.destination import LOCK_NAME
from s3split.storage import Storage, join

ATTEMPTS = 3  # a lost race re-reads the lock; the winner is then alive and we refuse


@dataclass(frozen=True)
class SplitHolder:
    """The split holding a destination: ``lease`` tells its own lock from a successor's."""

    lease: str
    pid: int
    host: str
    since: str

    @classmethod
    def new(cls) -> "SplitHolder":
        return cls(uuid.uuid4().hex, os.getpid(), socket.gethostname(),
                   datetime.now(UTC).isoformat(timespec="seconds"))

    def describe(self) -> str:
        return f"process {self.pid} on {self.host} (since {self.since})"


def lock_uri(dest: str) -> str:
    return join(dest, LOCK_NAME)


@contextmanager
def holding(dest: str, storage: Storage) -> Iterator[SplitHolder]:
    """Hold ``dest``'s lock for the ``with`` block (see module docstring)."""
    storage.check_directory(dest)
    holder = acquire(dest, storage)
    try:
        yield holder
    finally:
        release(dest, holder, storage)


def acquire(dest: str, storage: Storage) -> SplitHolder:
    """Take the lock, or take over a stale one; SplitInProgress while its holder runs."""
    uri, holder = lock_uri(dest), SplitHolder.new()
    for _ in range(ATTEMPTS):
        current = _read(dest, storage)
        if current is None:
            if storage.put_json_if(uri, asdict(holder), None):
                return holder
            continue
        other, version = current
        if _alive(other):
            raise SplitInProgress(
                f"destination {dest} is in use by another split, {other.describe()}, "
                f"which holds {uri}; wait for it to end, or delete {uri} once that process "
                "is gone")
        if storage.put_json_if(uri, asdict(holder), version):
            return holder
    raise SplitInProgress(f"destination {dest}: {ATTEMPTS} attempts to take {uri} lost to "
                          "other splits")


def release(dest: str, holder: SplitHolder, storage: Storage) -> None:
    """Drop the lock if ``holder`` still holds it (never a successor's or a stranger's)."""
    try:
        current = _read(dest, storage)
    except SplitInProgress:
        return  # no longer a lock of ours
    if current is not None and current[0].lease == holder.lease:
        storage.delete(lock_uri(dest))


def _read(dest: str, storage: Storage) -> tuple[SplitHolder, str] | None:
    uri = lock_uri(dest)
    try:
        current = storage.read_json_version(uri)
    except (ValueError, IsADirectoryError):
        current = ("unreadable", "")
    if current is None:
        return None
    document, version = current
    if not _is_holder(document):
        raise SplitInProgress(f"{uri} is not a split lock this version can read; if no "
                              f"split into {dest} is running, delete it")
    return SplitHolder(**{key: document[key] for key in _FIELDS}), version


_FIELDS = {"lease": str, "pid": int, "host": str, "since": str}


def _is_holder(document: Any) -> bool:
    return isinstance(document, dict) and all(
        isinstance(document.get(key), kind) for key, kind in _FIELDS.items())


def _alive(holder: SplitHolder) -> bool:
    as_run = Holder(holder.lease, holder.lease, holder.since, holder.pid, holder.host)
    return holder_alive(as_run, sfn=_no_step_functions)


def _no_step_functions() -> Any:
    raise AssertionError("a split lock's holder is a local process, never an execution")
