"""A batch import's pending list, staged in S3 for the state machine's Distributed Map.

Plan lists the prefix (pipeline.inputs._batch) and writes the pending sources here, one
``{"name", "input"}`` item each; the StartEach Map reads them with an ItemReader, so
the execution's state holds only the list's location whatever the number of files.
Execution names are deterministic, so a retried StartExecution cannot start a run twice.
"""

import hashlib
import re
from typing import Any

from s3split.deployment import Deployment
from s3split.errors import InvalidInput
from s3split.storage import Storage, basename, is_s3, join, split_s3

BATCHES = "_batches"  # under the work location: pending lists and the Map's result files
MAX_NAME = 80  # Step Functions execution names: 1-80 characters
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def child_name(batch_execution: str, source: str) -> str:
    """The name of the run a batch starts for ``source``: readable, unique per batch."""
    readable = _UNSAFE.sub("-", basename(source))[:40].strip("-") or "run"
    digest = hashlib.sha256(f"{batch_execution}\n{source}".encode()).hexdigest()[:20]
    return f"{readable}-{digest}"


def continuation_name(run_id: str, lease: str, generation: int) -> str:
    """The name of generation ``generation`` of the run started by ``lease`` (an execution
    ARN that is unique per start, so a resume never reuses an earlier chain's names)."""
    digest = hashlib.sha256(f"{lease}\n{run_id}".encode()).hexdigest()[:20]
    readable = _UNSAFE.sub("-", run_id)[:40].strip("-") or "run"
    name = f"{readable}-{digest}-g{generation}"
    if len(name) > MAX_NAME:  # generation beyond 10**13: never in practice
        raise InvalidInput(f"continuation name {name!r} is longer than {MAX_NAME} characters")
    return name


def pending_list(deployment: Deployment, batch_execution: str) -> str:
    """Where a batch's pending list goes: the execution's name is unique for 90 days."""
    if not is_s3(deployment.work_location):
        raise InvalidInput("a batch import needs an s3:// work location (the state machine "
                           f"reads its pending list from S3), not {deployment.work_location}")
    name = _UNSAFE.sub("-", batch_execution.rsplit(":", 1)[-1]) or "batch"
    return join(deployment.work_location, BATCHES, f"{name}.json")


def stage(sources: list[str], batch_execution: str, deployment: Deployment,
          storage: Storage) -> dict[str, Any]:
    """Write the pending list; return what the state carries: its location and length."""
    uri = pending_list(deployment, batch_execution)
    storage.write_json(uri, [{"name": child_name(batch_execution, source),
                              "input": {"source": source}} for source in sources])
    bucket, key = split_s3(uri)
    return {"mode": "batch", "pending": {"Bucket": bucket, "Key": key}, "count": len(sources)}


def result_writer_substitutions(work_location: str) -> dict[str, str]:
    """``${WorkBucket}``/``${BatchResultsPrefix}`` of the ASL for a work location (the template
    sets them for the data bucket). A local work location has no batches (Plan refuses them)."""
    if not is_s3(work_location):
        return {"WorkBucket": "no-batches-without-s3-work-location", "BatchResultsPrefix": ""}
    bucket, key = split_s3(join(work_location, BATCHES, "results/"))
    return {"WorkBucket": bucket, "BatchResultsPrefix": key}
