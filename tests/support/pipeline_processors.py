"""A processor for pipeline tests, steered by ``control.json`` beside the run's location (in
its parent: a run's location holds only what the run wrote).

control.json: {"sleep": seconds, "transient": {"<index>": times}, "invalid": [index, ...],
               "kill": {"<index>": times}, "lose": [index, ...]}
(kill: SIGKILL itself halfway through the output; lose: report one row fewer than it wrote,
as a buggy processor would)
Every call writes {"pid", "index", "start", "end"} to ``probe/<index>-<attempt>.json``
("end" stays null when the process was killed).
Everything goes through ``Storage``, so it works on local files and on S3 alike.
"""

import os
import signal
import time
from dataclasses import replace
from typing import Any

from s3split.errors import ChunkInvalid, TransientError
from s3split.processors import ChunkJob, JsonlProcessor, NoopProcessor, ProcessResult
from s3split.storage import Storage, join


def run_location(job: ChunkJob) -> str:
    return job.output_uri.rsplit("/results/", 1)[0]


def control_uri(location: str) -> str:
    return join(location.rstrip("/").rsplit("/", 1)[0], "control.json")


def _control(job: ChunkJob, storage: Storage) -> dict[str, Any]:
    uri = control_uri(run_location(job))
    return dict(storage.read_json(uri)) if storage.exists(uri) else {}


def _die_while_writing(job: ChunkJob, storage: Storage) -> None:
    with storage.writer(job.output_uri) as out:
        out.write(b'{"half": "an output"}\n')
        out.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def probe(job: ChunkJob, storage: Storage) -> ProcessResult:
    control = _control(job, storage)
    probes = join(run_location(job), "probe")
    attempt = sum(name.startswith(f"{job.index}-") for name in storage.list(probes))
    record = {"pid": os.getpid(), "index": job.index, "start": time.time(), "end": None}
    storage.write_json(join(probes, f"{job.index}-{attempt}.json"), record)  # counts the attempt
    time.sleep(control.get("sleep", 0))
    try:
        if attempt < control.get("transient", {}).get(str(job.index), 0):
            raise TransientError(f"injected throttling on chunk {job.index}")
        if attempt < control.get("kill", {}).get(str(job.index), 0):
            _die_while_writing(job, storage)
        if job.index in control.get("invalid", []):
            raise ChunkInvalid(f"injected bad chunk {job.index}")
        result = JsonlProcessor()(job, storage)
        if job.index in control.get("lose", []):
            return replace(result, rows_out=result.rows_out - 1)
        return result
    finally:
        storage.write_json(join(probes, f"{job.index}-{attempt}.json"),
                           record | {"end": time.time()})


def failing_noop(job: ChunkJob, storage: Storage) -> ProcessResult:
    """noop, except that every chunk with ``index % 10 == 3`` fails for good (ChunkInvalid) and
    every one with ``index % 10 == 7`` raises TransientError on its first two attempts
    (counted in ``attempts/<index>-<attempt>``)."""
    if job.index % 10 == 3:
        raise ChunkInvalid(f"injected permanent failure of chunk {job.index}")
    if job.index % 10 == 7:
        folder = join(run_location(job), "attempts")
        attempt = sum(name.startswith(f"{job.index}-") for name in storage.list(folder))
        storage.write_json(join(folder, f"{job.index}-{attempt}"), {"index": job.index})
        if attempt < 2:
            raise TransientError(f"injected throttling of chunk {job.index}, attempt {attempt}")
    return NoopProcessor()(job, storage)
