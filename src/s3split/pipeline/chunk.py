"""Processing one chunk of a run and recording what happened in its status record.

A status record is written once the chunk's outcome is known: ``ok`` after
the processor's outputs are complete, ``failed`` for a permanent error. A
transient error writes nothing: the state machine retries, and when retries run
out it records the failure through ``record_failure``.
"""

import hashlib
import json
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from s3split.errors import (
    ChunkInvalid,
    ChunkMisaligned,
    InvalidInput,
    ProcessorResultInvalid,
    SourceNotFound,
    SourceUnreadable,
)
from s3split.pipeline.ownership import own_output
from s3split.pipeline.spec import RunSpec
from s3split.processors.base import ChunkJob, Processor, ProcessResult
from s3split.processors.recorded_settings import record
from s3split.processors.registry import processor_settings
from s3split.records import corrupt, count_problem, missing_fields, read_record, rejects_problem
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
        manifest = Manifest.read(storage, uri, spec.layout.manifest_remedy)
        manifest.version = key[1]
        cache[key] = manifest
    return cache[key]


def chunk_entry(manifest: Manifest, index: int, spec: RunSpec) -> ChunkEntry:
    if not 0 <= index < manifest.count:
        raise InvalidInput(f"chunk index {index} is outside 0..{manifest.count - 1} of run "
                           f"{spec.location}")
    return manifest.chunks[index]


def read_status(spec: RunSpec, index: int, storage: Storage) -> dict[str, Any] | None:
    """Chunk ``index``'s status record, checked; None when it has none."""
    uri = spec.layout.status(index)
    if not storage.exists(uri):
        return None
    remedy = (f"delete it to process chunk {index} again, then resume the run "
              f"(s3split run --resume {spec.location})")
    status = read_record(storage, uri, remedy)
    problem = status_problem(status)
    if problem is not None:
        raise corrupt(uri, problem, remedy)
    return status


_FIELDS = ("index", "state", "processor", "source_etag", "bytes", "rows_in", "rows_out",
           "rows_rejected")
_STATE_FIELDS: dict[Any, tuple[str, ...]] = {OK: ("rejects", "duration_s"),
                                             FAILED: ("error", "message")}


def status_problem(status: dict[str, Any]) -> str | None:
    """What makes ``status`` something other than a status record this module wrote (None:
    nothing): the fields the report and a resume read, of the types they read."""
    missing = missing_fields(status, _FIELDS)
    state = status.get("state")
    if not missing and state not in _STATE_FIELDS:
        return f"state is {state!r}, not {OK!r} or {FAILED!r}"
    missing += missing_fields(status, _STATE_FIELDS.get(state, ()))
    if missing:
        return f"not a status record: no {', '.join(missing)} field"
    if not isinstance(status["processor"], str) or not isinstance(
            status["source_etag"], str | None):
        return "processor or source_etag is not a string"
    if type(status["index"]) is not int or type(status["bytes"]) is not int:
        return "index or bytes is not an integer"
    if state == FAILED:
        if not (isinstance(status["error"], str) and isinstance(status["message"], str)):
            return "error or message is not a string"
        return count_problem(status)
    duration = status["duration_s"]
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        return f"duration_s is {duration!r}, not a number"
    return count_problem(status, status.get("rows")) or rejects_problem(status["rejects"])


def settings_digest(processor: str, env: Mapping[str, str] = os.environ) -> str:
    """The settings ``processor`` runs with that a run records (a schema, a query), as a
    digest a status keeps: a success made with other settings (a schema fixed since, that
    rejected every row) is not what a resume with the fixed one would make."""
    recorded = json.dumps(record(processor_settings(processor, env)), sort_keys=True)
    return hashlib.sha256(recorded.encode()).hexdigest()[:16]


def already_done(status: dict[str, Any] | None, manifest: Manifest, spec: RunSpec,
                 entry: ChunkEntry, storage: Storage, settings: str | None = None) -> bool:
    """A success for the same split, processor and settings (``settings``: a digest; None:
    any) whose results are still there: delivering the chunk again changes nothing."""
    return (status is not None and status["state"] == OK
            and status["processor"] == spec.processor
            and (settings is None or status.get("settings", settings) == settings)
            and status["source_etag"] == manifest.source.etag and of_chunk(status, entry)
            and lists_own_files(status, entry.index, spec) and results_intact(status, storage))


def lists_own_files(status: dict[str, Any], index: int, spec: RunSpec) -> bool:
    """The files a success names are chunk ``index``'s of this run: a record naming another
    chunk's result (or a file elsewhere) would count its rows over records that are not
    there, and the chunk's own would never be written."""
    return all(not isinstance(status.get(field), str)
               or own_output(status[field], index, spec.layout)
               for field in ("output", "rejects_uri"))


_WRITTEN = (("output", "output_bytes"), ("rejects_uri", "rejects_bytes"))


def results_intact(status: dict[str, Any], storage: Storage) -> bool:
    """Every file a success recorded is still there, at the size it was written (a status
    written before sizes were recorded: still there). A result deleted or cut short since
    means the chunk runs again, not a success counted over rows that are gone."""
    for uri_field, size_field in _WRITTEN:
        uri = status.get(uri_field)
        if not isinstance(uri, str):
            continue
        try:
            size = storage.stat(uri).size
        except (SourceNotFound, SourceUnreadable):
            return False
        if status.get(size_field, size) != size:
            return False
    return True


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
    settings = settings_digest(spec.processor)
    if already_done(previous, manifest, spec, entry, storage, settings):
        assert previous is not None
        return previous
    job = ChunkJob(
        index=index,
        chunk_uri=entry.uri,
        output_uri=spec.layout.result(index, processor.extension),
        rejects_uri=spec.layout.rejects(index),
        source_line=entry.source_line,
        has_header=manifest.settings.header,
        delimiter=manifest.format.delimiter,  # as found: chunks are UTF-8 with it
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
        sizes = check_result(result, entry, spec.processor, storage)
    except (ChunkInvalid, ChunkMisaligned, ProcessorResultInvalid) as exc:
        # Outputs are written whole, so any there are a refused result or an earlier attempt's
        # (of a run killed before its status was written): none may sit among the results.
        for stale in (job.output_uri, job.rejects_uri):
            storage.delete(stale)
        _write_failure(spec, entry, manifest, storage, type(exc).__name__, str(exc), attempt)
        raise
    # An earlier success's files that this one did not write again (made with other settings,
    # another output format) hold rows this result counts elsewhere.
    earlier = [previous.get(field) for field in ("output", "rejects_uri")
               if previous is not None and lists_own_files(previous, index, spec)]
    for leftover in {job.output_uri, job.rejects_uri, *earlier} - {
            result.output_uri, result.rejects_uri}:
        if isinstance(leftover, str):
            storage.delete(leftover)
    status = _base(spec, entry, manifest, attempt) | _result_fields(result, sizes) | {
        "state": OK,
        "duration_s": round(time.monotonic() - started, 4),
        "settings": settings,
    }
    storage.write_json(spec.layout.status(index), status)
    return status


def check_result(result: Any, entry: ChunkEntry, processor: str, storage: Storage
                 ) -> dict[str, int]:
    """A processor's counts are checked before they are recorded: a custom one may return
    anything, and the report adds up what the status records say. The size of each file it
    says it wrote (one request each: the status records them, for a resume to find them
    unchanged)."""
    if not isinstance(result, ProcessResult):
        raise ProcessorResultInvalid(
            f"{entry.uri}: processor {processor} returned {type(result).__name__}, not a "
            "ProcessResult: fix the processor")
    counts = {"rows_in": result.rows_in, "rows_out": result.rows_out,
              "rows_rejected": result.rows_rejected}
    written = result.records_written
    problem = count_problem(counts) or rejects_problem(result.rejects) or (
        None if written is None or (type(written) is int and written >= 0)
        else f"records_written={written!r}")
    if problem is not None:
        raise ProcessorResultInvalid(
            f"{entry.uri}: chunk {entry.index}: processor {processor} returned {problem}: its "
            "counts must be non-negative integers with rows_in == rows_out + rows_rejected, "
            "its records_written one too (or None), and its rejects a list of objects; fix "
            "the processor")
    sizes: dict[str, int] = {}
    for uri in (result.output_uri, result.rejects_uri):
        if uri is None:
            continue
        try:
            sizes[uri] = storage.stat(uri).size
        except SourceNotFound:
            raise ProcessorResultInvalid(
                f"{entry.uri}: chunk {entry.index}: processor {processor} returned {uri} as "
                "written, but there is no such file; fix the processor") from None
    if result.rows_in != entry.rows:  # a processor that did not read every record
        raise ChunkMisaligned(
            f"{entry.uri}: chunk {entry.index} should hold {entry.rows} records (manifest) but "
            f"the processor read {result.rows_in}")
    return sizes


def record_failure(spec: RunSpec, index: int, error: str, cause: str, storage: Storage,
                   manifest: Manifest) -> dict[str, Any]:
    """Record a chunk whose retries ran out (or that crashed); a success is never overwritten."""
    entry = chunk_entry(manifest, index, spec)
    previous = read_status(spec, index, storage)
    if already_done(previous, manifest, spec, entry, storage):
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


def _result_fields(result: ProcessResult, sizes: dict[str, int]) -> dict[str, Any]:
    """The result's counts and files, with the sizes ``check_result`` found."""
    return {
        "rows_in": result.rows_in,
        "rows_out": result.rows_out,
        "rows_rejected": result.rows_rejected,
        "output": result.output_uri,
        "output_bytes": sizes.get(result.output_uri or ""),
        "rejects_uri": result.rejects_uri,
        "rejects_bytes": sizes.get(result.rejects_uri or ""),
        "rejects": result.rejects,
    } | ({} if result.records_written is None else {"records_written": result.records_written})
