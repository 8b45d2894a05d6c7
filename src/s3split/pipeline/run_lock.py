"""One execution at a time per run location: the lock object ``<location>/lock.json``.

Plan takes the lock (a conditional create), each continue-as-new execution carries it
on, and the run's end releases it: Summarize after writing the report, or the state
machine's failure path. A lock whose holder has ended is stale and is taken over, so a
crash never blocks a location for good: on AWS the holder is an execution that is no
longer RUNNING; on the local engine it is an engine process that has exited.
"""

from contextlib import suppress
from dataclasses import asdict, replace
from typing import TYPE_CHECKING

from s3split.errors import RunFileCorrupt, RunInProgress, RunTakenOver
from s3split.holders import Alive, Holder
from s3split.pipeline.layout import RunLayout
from s3split.records import corrupt, object_record
from s3split.storage import Storage

if TYPE_CHECKING:
    pass

ATTEMPTS = 3  # a lost race re-reads the lock; the winner is then alive and we refuse




def lock_uri(location: str) -> str:
    return RunLayout(location).lock


def read_lock(location: str, storage: Storage) -> tuple[Holder, str] | None:
    """The lock's holder and version; None when there is no lock. ``RunFileCorrupt`` when
    ``lock.json`` is not a lock: its holder cannot be told, so the location stays refused
    until someone who knows that no run uses it deletes the file."""
    uri = lock_uri(location)
    remedy = (f"if no run is using {location} (s3split run, or an execution of the state "
              "machine), delete it and start again")
    try:
        current = storage.read_json_version(uri)
    except ValueError as exc:  # not UTF-8 or not JSON
        raise corrupt(uri, f"not a JSON document ({exc})", remedy) from None
    if current is None:
        return None
    document, version = current
    try:
        holder = Holder(**object_record(document, uri, remedy))
    except TypeError as exc:
        raise corrupt(uri, f"not a run lock ({exc})", remedy) from None
    if not (isinstance(holder.lease, str) and isinstance(holder.execution, str)
            and (holder.pid is None or type(holder.pid) is int)):
        raise corrupt(uri, "not a run lock (lease, execution or pid of another type)", remedy)
    return holder, version


def acquire(location: str, holder: Holder, storage: Storage, alive: Alive) -> None:
    """Take the lock, or take over a stale one; RunInProgress while its holder runs."""
    uri = lock_uri(location)
    for _ in range(ATTEMPTS):
        current = read_lock(location, storage)
        if current is None:
            if storage.put_json_if(uri, asdict(holder), None):
                return
            continue
        other, version = current
        if other.lease == holder.lease:
            return  # our own Plan, retried
        if alive(other):
            raise RunInProgress(
                f"run location {location} is in use by {other.describe()}; wait for that run "
                f"to end (or stop it), then start again or resume with "
                f'{{"resume": "{location}"}} (s3split run --resume {location})')
        if storage.put_json_if(uri, asdict(holder), version):
            return
    raise RunInProgress(f"run location {location}: {ATTEMPTS} attempts to take {uri} lost to "
                        "other starts")


def carry(location: str, lease: str, execution: str, storage: Storage) -> None:
    """A continue-as-new ``execution`` takes the lock on from its parent."""
    uri = lock_uri(location)
    current = read_lock(location, storage)
    if current is not None and current[0].lease == lease:
        holder, version = current
        if holder.execution == execution or storage.put_json_if(
                uri, asdict(replace(holder, execution=execution)), version):
            return
        current = read_lock(location, storage)
    now = current[0].describe() if current else "nobody"
    raise RunTakenOver(f"run location {location} was taken over while execution {execution} "
                       f"was starting (the lock of {lease} is now held by {now}); this "
                       "continuation stops without touching the run")


def release(location: str, lease: str, storage: Storage) -> None:
    """Drop the lock if ``lease`` still holds it (never someone else's)."""
    with suppress(RunFileCorrupt):  # (not a lock: not ours, and the next start names it)
        current = read_lock(location, storage)
        if current is not None and current[0].lease == lease:
            storage.delete(lock_uri(location))
