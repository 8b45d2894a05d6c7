"""Who holds a lock, and whether that holder may still be running: an execution on AWS, or
an engine process on this host. The run lock (``pipeline.lock``) and the split's lock
(``split.lock``) both ask."""

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

__all__ = ["Alive", "Holder", "holder_alive", "process_alive"]


@dataclass(frozen=True)
class Holder:
    """Who holds a run location: ``lease`` is the execution that took the lock (its
    continuations keep it), ``execution`` the one running now."""

    lease: str
    execution: str
    since: str
    pid: int | None = None  # the local engine's process, and its host
    host: str | None = None

    @classmethod
    def new(cls, execution: str, engine_pid: int | None = None) -> "Holder":
        since = datetime.now(UTC).isoformat(timespec="seconds")
        host = socket.gethostname() if engine_pid is not None else None
        return cls(execution, execution, since, engine_pid, host)

    def describe(self) -> str:
        where = f", engine process {self.pid} on {self.host}" if self.pid is not None else ""
        return f"execution {self.execution} (since {self.since}{where})"


Alive = Callable[[Holder], bool]


def holder_alive(holder: Holder, sfn: "Callable[[], SFNClient]") -> bool:
    """Whether a lock's holder may still be running; when we cannot tell, it may."""
    if holder.pid is not None:
        return process_alive(holder)
    from botocore.exceptions import BotoCoreError, ClientError  # (only a run's lock needs it)

    try:
        status = sfn().describe_execution(executionArn=holder.execution)["status"]
    except ClientError as exc:
        return exc.response.get("Error", {}).get("Code") != "ExecutionDoesNotExist"
    except BotoCoreError:
        return True
    return status == "RUNNING"


def process_alive(holder: Holder) -> bool:
    """Whether a holder that is a process (an engine, a merge) may still be running; one
    that is an execution on AWS (no ``pid``) is not asked here: it may."""
    if holder.pid is None:
        return True
    return holder.host != socket.gethostname() or _process_alive(holder.pid)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed process its parent has not reaped yet still answers ``kill(pid, 0)``."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False

