"""A processor for pipeline tests, steered by ``control.json`` in the run's directory.

control.json: {"sleep": seconds, "transient": {"<index>": times}, "invalid": [index, ...]}
Every call appends {"pid", "index", "start", "end"} to ``probe.log`` beside it.
"""

import json
import os
import time
from pathlib import Path
from typing import Any

from s3split.errors import ChunkInvalid, TransientError
from s3split.processors import ChunkJob, JsonlProcessor, ProcessResult
from s3split.storage import Storage


def _run_dir(job: ChunkJob) -> Path:
    return Path(job.output_uri).parents[1]


def _control(job: ChunkJob) -> dict[str, Any]:
    path = _run_dir(job) / "control.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _attempts(job: ChunkJob) -> int:
    """How often this chunk was attempted before (a counter file per chunk)."""
    counter = _run_dir(job) / f"attempts-{job.index}"
    seen = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(seen + 1))
    return seen


def probe(job: ChunkJob, storage: Storage) -> ProcessResult:
    control = _control(job)
    start = time.time()
    time.sleep(control.get("sleep", 0))
    try:
        if _attempts(job) < control.get("transient", {}).get(str(job.index), 0):
            raise TransientError(f"injected throttling on chunk {job.index}")
        if job.index in control.get("invalid", []):
            raise ChunkInvalid(f"injected bad chunk {job.index}")
        return JsonlProcessor()(job, storage)
    finally:
        record = {"pid": os.getpid(), "index": job.index, "start": start, "end": time.time()}
        with open(_run_dir(job) / "probe.log", "a") as log:
            log.write(json.dumps(record) + "\n")
