"""Processing one chunk of a run and recording what happened in its status record.

A status record is written once the chunk's outcome is known: ``ok`` after
the processor's outputs are complete, ``failed`` for a permanent error. A
transient error writes nothing: the state machine retries, and when retries run
out it records the failure through ``record_failure``.
"""

import json
import time
from datetime import UTC, datetime
from typing import Any

from s3split.errors import ChunkInvalid, ChunkMisaligned, InvalidInput, SourceNotFound
from s3split.pipeline.spec import RunSpec
from s3split.processors.base import ChunkJob, Processor, ProcessResult
from s3split.split.manifest import ChunkEntry, Manifest
from s3split.storage import Storage

OK, FAILED = "ok", "failed"


def load_manifest(spec: RunSpec, storage: Storage,
                  cache: dict[tuple[str, str | None], Manifest]) -> Manifest:
    """The run's manifest, read once per version in a warm Lambda environment (a later run,
    or a split made again, writes a new version at the same place)."""
    uri = spec.layout.manifest
    try:
        key = (uri, storage.stat(uri).etag)
    except SourceNotFound:
        raise InvalidInput(f"run {spec.location} has no manifest at {uri}: split it first"
                           ) from None
    if key not in cache:
        cache.clear()  # one run's manifest at a time
        manifest = Manifest.from_dict(storage.read_json(uri))
        manifest.version = key[1]
        cache[key] = manifest
    return cache[key]


def chunk_entry(manifest: Manifest, index: int, spec: RunSpec) -> ChunkEntry:
    if not 0 <= index < manifest.count:
        raise InvalidInput(f"chunk index {index} is outside 0..{manifest.count - 1} of run "
                           f"{spec.location}")
    return manifest.chunks[index]


def read_status(spec: RunSpec, index: int, storage: Storage) -> dict[str, Any] | None:
    uri = spec.layout.status(index)
    return storage.read_json(uri) if storage.exists(uri) else None


def already_done(status: dict[str, Any] | None, manifest: Manifest, processor: str,
                 entry: ChunkEntry) -> bool:
    """A success for the same split and processor: delivering the chunk again changes nothing."""
    return (status is not None and status["state"] == OK and status["processor"] == processor
            and status["source_etag"] == manifest.source.etag and of_chunk(status, entry))


def of_chunk(status: dict[str, Any], entry: ChunkEntry) -> bool:
    """Whether a status record is about this chunk of this split: a source split again (its
    chunks expired, or other settings) may cut its chunks elsewhere, and a status of the
    earlier split must not stand for a chunk of the new one."""
    return (status.get("chunk"), status.get("rows"), status.get("bytes"),
            status.get("source_line"), status.get("source_offset", entry.source_offset)) == (
        entry.uri, entry.rows, entry.bytes, entry.source_line, entry.source_offset)


def process_chunk(spec: RunSpec, index: int, attempt: int, storage: Storage,
                  processor: Processor, manifest: Manifest) -> dict[str, Any]:
    """Run ``processor`` on chunk ``index`` and write its status record."""
    entry = chunk_entry(manifest, index, spec)
    previous = read_status(spec, index, storage)
    if already_done(previous, manifest, spec.processor, entry):
        assert previous is not None
        return previous
    job = ChunkJob(
        index=index,
        chunk_uri=entry.uri,
        output_uri=spec.layout.result(index, processor.extension),
        rejects_uri=spec.layout.rejects(index),
        source_line=entry.source_line,
        has_header=manifest.settings.header,
        delimiter=manifest.settings.delimiter,
        quotechar=manifest.settings.quotechar,
        run_id=spec.run_id,
        manifest_etag=manifest.version or manifest.source.etag or "",
        rows=entry.rows,
        bytes=entry.bytes,
    )
    started = time.monotonic()
    try:
        _check_chunk_file(entry, storage)
        result = processor(job, storage)
        if result.rows_in != entry.rows:  # a processor that did not read every record
            raise ChunkMisaligned(
                f"{entry.uri}: chunk {index} should hold {entry.rows} records (manifest) but "
                f"the processor read {result.rows_in}")
    except (ChunkInvalid, ChunkMisaligned) as exc:
        # Outputs are written whole, so any there are an earlier attempt's (of a run killed
        # before its status was written): they must not sit among the results of a failure.
        for stale in (job.output_uri, job.rejects_uri):
            storage.delete(stale)
        _write_failure(spec, entry, manifest, storage, type(exc).__name__, str(exc), attempt)
        raise
    status = _base(spec, entry, manifest, attempt) | _result_fields(result) | {
        "state": OK,
        "duration_s": round(time.monotonic() - started, 4),
    }
    storage.write_json(spec.layout.status(index), status)
    return status


def record_failure(spec: RunSpec, index: int, error: str, cause: str, storage: Storage,
                   manifest: Manifest) -> dict[str, Any]:
    """Record a chunk whose retries ran out (or that crashed); a success is never overwritten."""
    entry = chunk_entry(manifest, index, spec)
    previous = read_status(spec, index, storage)
    if already_done(previous, manifest, spec.processor, entry):
        assert previous is not None
        return previous
    return _write_failure(spec, entry, manifest, storage, error, lambda_error_message(cause),
                          attempt=0)


def _check_chunk_file(entry: ChunkEntry, storage: Storage) -> None:
    """A chunk file of another size than the split wrote was changed after the split."""
    size = storage.stat(entry.uri).size
    if size != entry.bytes:
        raise ChunkMisaligned(f"{entry.uri}: chunk {entry.index} is {size} bytes, but the split "
                              f"wrote {entry.bytes}: it changed after the split")


def lambda_error_message(cause: str) -> str:
    """A Lambda error's cause is JSON with ``errorMessage`` and a stack trace: keep the message."""
    try:
        return str(json.loads(cause)["errorMessage"])
    except (ValueError, KeyError, TypeError):
        return cause


def _write_failure(spec: RunSpec, entry: ChunkEntry, manifest: Manifest, storage: Storage,
                   error: str, message: str, attempt: int) -> dict[str, Any]:
    status = _base(spec, entry, manifest, attempt) | {
        "state": FAILED, "error": error, "message": message[:2000],
        "rows_in": 0, "rows_out": 0, "rows_rejected": 0,
    }
    storage.write_json(spec.layout.status(entry.index), status)
    return status


def _base(spec: RunSpec, entry: ChunkEntry, manifest: Manifest, attempt: int) -> dict[str, Any]:
    return {
        "index": entry.index,
        "chunk": entry.uri,
        "rows": entry.rows,
        "bytes": entry.bytes,
        "source_line": entry.source_line,
        "source_offset": entry.source_offset,
        "processor": spec.processor,
        "source_etag": manifest.source.etag,
        "attempt": attempt,
        "finished_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


def _result_fields(result: ProcessResult) -> dict[str, Any]:
    return {
        "rows_in": result.rows_in,
        "rows_out": result.rows_out,
        "rows_rejected": result.rows_rejected,
        "output": result.output_uri,
        "rejects_uri": result.rejects_uri,
        "rejects": result.rejects,
    }
