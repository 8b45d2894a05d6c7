"""The run's report: every source record accounted for exactly once.

``source_rows = rows_ok + rows_rejected + rows_in_failed_chunks``, where a chunk
without a success status counts as failed with all of its rows. A run succeeds only when
that holds and both its failed chunks and its rejected rows are within ``tolerate``
(a count N: at most N failed chunks and N rejected rows; P%: at most P% of each).
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from s3split.deployment import parse_tolerance
from s3split.pipeline.chunk import OK, of_chunk, read_status
from s3split.pipeline.spec import RunSpec
from s3split.split.manifest import Manifest
from s3split.storage import Storage

MAX_LISTED = 100  # failed chunks and rejected rows listed in full; counts are always exact


def build_report(spec: RunSpec, manifest: Manifest, storage: Storage) -> dict[str, Any]:
    # A status of an earlier split of the source (cut elsewhere) counts as no status at all.
    statuses = [s if s is not None and of_chunk(s, entry) else None
                for s, entry in zip(_statuses(spec, manifest.count, storage), manifest.chunks,
                                    strict=True)]
    ok = [s for s in statuses if s and s["state"] == OK]
    failed = [_failure(i, s, manifest) for i, s in enumerate(statuses)
              if not (s and s["state"] == OK)]
    rows_ok = sum(s["rows_out"] for s in ok)
    written = sum(_written(s) for s in ok)
    rows_rejected = sum(s["rows_rejected"] for s in ok)
    rows_failed = sum(f["rows"] for f in failed)
    durations = [s["duration_s"] for s in ok]
    accounted = rows_ok + rows_rejected + rows_failed == manifest.rows
    chunks_tolerated = within_tolerance(len(failed), manifest.count, spec.tolerate)
    rejects_tolerated = within_tolerance(rows_rejected, manifest.rows, spec.tolerate)
    return {
        "run_id": spec.run_id,
        "source": spec.source,
        "source_etag": manifest.source.etag,
        "location": spec.location,
        "processor": spec.processor,
        "succeeded": accounted and chunks_tolerated and rejects_tolerated,
        "chunks": manifest.count,
        "chunks_ok": len(ok),
        "chunks_failed": len(failed),
        "tolerate": spec.tolerate,
        "source_rows": manifest.rows,
        "rows_ok": rows_ok,
        "rows_rejected": rows_rejected,
        "rows_in_failed_chunks": rows_failed,
        "records_written": written,
        "accounted": accounted,
        "bytes": manifest.source.size,
        "duration_s": {"sum": round(sum(durations), 3), "max": max(durations, default=0.0)},
        "failed": failed[:MAX_LISTED],
        "rejected": [r | {"chunk": s["index"]} for s in ok for r in s["rejects"]][:MAX_LISTED],
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _written(status: dict[str, Any]) -> int:
    """The records a chunk's output holds: its processor's count where it gave one (a
    status record is the run's own, but a resume reads records an earlier release wrote)."""
    written = status.get("records_written")
    return written if type(written) is int and written >= 0 else int(status["rows_out"])


def within_tolerance(failed: int, total: int, tolerate: str) -> bool:
    count, percent = parse_tolerance(tolerate)
    if count is not None:
        return failed <= count
    assert percent is not None
    return failed == 0 or failed * 100 <= percent * total


def _statuses(spec: RunSpec, count: int, storage: Storage) -> list[dict[str, Any] | None]:
    with ThreadPoolExecutor(max_workers=16) as pool:  # S3 GETs are latency bound
        return list(pool.map(lambda i: read_status(spec, i, storage), range(count)))


def _failure(index: int, status: dict[str, Any] | None, manifest: Manifest) -> dict[str, Any]:
    chunk = manifest.chunks[index]
    return {
        "chunk": index,
        "rows": chunk.rows,
        "source_line": chunk.source_line,
        "error": status["error"] if status else "NotProcessed",
        "message": status["message"] if status else "no status record: the chunk was not processed",
    }
