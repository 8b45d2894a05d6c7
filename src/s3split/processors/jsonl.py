"""The ``jsonl`` processor (each record one JSON object keyed by the header), ``noop`` (for
benchmarks of orchestration), and how a header becomes keys."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from s3split.processors.base import ChunkJob, ProcessResult, Record
from s3split.processors.reader import Row, read_rows
from s3split.processors.rejects import Convert, Reject, Rejects, accepted, json_line
from s3split.storage import Storage


def write_jsonl(
    job: ChunkJob, storage: Storage, converter: Callable[[list[str] | None], Convert]
) -> ProcessResult:
    """Each record ``converter(header)`` accepts as one JSON line; the others rejected."""
    with read_rows(job, storage) as rows:
        convert = converter(rows.header)
        with storage.writer(job.output_uri) as out, Rejects(job.rejects_uri, storage) as rejects:
            written = 0
            for record in accepted(rows, convert, rejects):
                out.write(json_line(record))
                written += 1
    return rejects.result(rows.count, written, job.output_uri)


@cache
def column_names(count: int) -> tuple[str, ...]:
    """Names of the columns of a chunk without a header: ``col1`` .. ``colN``."""
    return tuple(f"col{i}" for i in range(1, count + 1))


def unique_names(header: list[str]) -> list[str]:
    """The header as keys: empty names become ``colN``, repeated ones get ``_2``, ``_3`` ..
    (linear in the columns: each base name remembers the next suffix to try)."""
    names: list[str] = []
    taken: set[str] = set()
    next_suffix: dict[str, int] = {}
    for number, name in enumerate(header, 1):
        base = name or f"col{number}"
        candidate, suffix = base, next_suffix.get(base, 2)
        while candidate in taken:
            candidate, suffix = f"{base}_{suffix}", suffix + 1
        next_suffix[base] = suffix
        taken.add(candidate)
        names.append(candidate)
    return names


def ragged(expected: int, got: int) -> Reject:
    return Reject(f"expected {expected} fields, got {got}")


def object_converter(header: list[str] | None) -> Convert:
    if header is None:
        return lambda row: dict(zip(column_names(len(row.fields)), row.fields, strict=True))
    keys = unique_names(header)

    def convert(row: Row) -> Record:
        if len(row.fields) != len(keys):
            raise ragged(len(keys), len(row.fields))
        return dict(zip(keys, row.fields, strict=True))

    return convert


class JsonlProcessor:
    """Each record becomes one JSON object keyed by the header; ragged rows are rejected.
    DuckDB writes a chunk it reads as the Python reader does (native.py), the Python reader
    every other one."""

    extension = "jsonl"

    def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult:
        from s3split.processors import native

        try:
            with native.native_chunk(job, storage) as chunk:
                return native.written(job, storage, chunk, native.text_select(chunk), "json")
        except native.Fallback:
            return write_jsonl(job, storage, object_converter)


class NoopProcessor:
    """Reads and counts the rows and writes an empty output: for benchmarks of orchestration."""

    extension = "jsonl"

    def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult:
        with read_rows(job, storage) as rows:
            rows_in = sum(1 for _ in rows)
        with storage.writer(job.output_uri):
            pass
        return ProcessResult(rows_in, rows_in, 0, job.output_uri, None, [])
