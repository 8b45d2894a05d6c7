"""The ``parquet`` processor: each chunk as ``results/part-NNNNN.parquet``, its columns typed by
the ``validate`` schema when one is set (rows it rejects written to the rejects file as
validate writes them), otherwise text. DuckDB reads the chunk where it reads it as the Python
reader does (native.py); otherwise the Python reader's accepted records go to DuckDB as JSON
Lines, typed on the way in."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

from s3split.errors import ChunkInvalid
from s3split.processors.base import ChunkJob, ProcessResult, Record
from s3split.processors.jsonl import object_converter
from s3split.processors.reader import Row
from s3split.processors.rejects import Convert, Reject
from s3split.processors.settings import Settings
from s3split.processors.validate import (
    SCHEMA,
    SQL_TYPES,
    Schema,
    native_select,
    schema_converter,
    shown,
)
from s3split.storage import Storage

BIGINT = range(-(1 << 63), 1 << 63)


def _bigint_converter(schema: Schema, uri: str, header: list[str] | None) -> Convert:
    """validate's converter, also rejecting an int a BIGINT column cannot hold (validate takes
    any: JSON holds it), where writing it would fail the chunk."""
    convert = schema_converter(schema, uri, header)
    ints = [column.name for column in schema.columns.values() if column.type == "int"]

    def typed(row: Row) -> Record:
        record = convert(row)
        wide = [name for name in ints if record.get(name) is not None
                and record[name] not in BIGINT]
        if wide:
            raise Reject("; ".join(f"{name}: not a 64-bit int: {shown(str(record[name]))}"
                                   for name in wide))
        return record

    return typed


class ParquetProcessor:
    """Each chunk as one Parquet file (zstd), typed by ``schema`` if given, else text."""

    extension = "parquet"
    settings = (SCHEMA,)  # optional: without it, every column is text

    @classmethod
    def from_settings(cls, settings: Settings) -> ParquetProcessor:
        schema = settings.get(SCHEMA)
        return cls(Schema.parse(schema) if schema is not None else None)

    def __init__(self, schema: Schema | None = None) -> None:
        self.schema = schema

    def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult:
        from s3split.processors import native

        try:
            with native.native_chunk(job, storage) as chunk:
                if self.schema is None:
                    select = native.text_select(chunk)
                else:
                    if job.has_header:
                        self.schema.check_header(chunk.names, job.chunk_uri)
                    select = native_select(self.schema, chunk, job.has_header, typed=True)
                return native.written(job, storage, chunk, select, "parquet")
        except native.Fallback:
            return self._through_python(job, storage)

    def _converter(self, job: ChunkJob) -> Callable[[list[str] | None], Convert]:
        if self.schema is None:
            return object_converter
        return partial(_bigint_converter, self.schema, job.chunk_uri)

    def _through_python(self, job: ChunkJob, storage: Storage) -> ProcessResult:
        import tempfile

        import duckdb

        from s3split.processors import native

        with tempfile.TemporaryDirectory(prefix="s3split-parquet-") as directory:
            lines = os.path.join(directory, "accepted.jsonl")
            result, keys = native.accepted_to_file(job, storage, self._converter(job), lines)
            native.apart_in_case(keys, job.chunk_uri, "cannot be written as Parquet")
            columns = [(key, self._type(key)) for key in keys]
            connection = native.sandboxed(directory)
            out = os.path.join(directory, "out.parquet")
            try:
                connection.execute(
                    f"COPY (SELECT * FROM {native.read_json_lines(lines, columns)}) TO "
                    f"{native.quote_literal(out)} (FORMAT parquet, COMPRESSION zstd)")
            except duckdb.Error as exc:
                raise ChunkInvalid(f"{job.chunk_uri}: cannot be written as Parquet: "
                                   f"{str(exc).splitlines()[0]}") from None
            finally:
                connection.close()
            native.upload(out, job.output_uri, storage)
        return result

    def _type(self, key: str) -> str:
        column = self.schema.columns.get(key) if self.schema is not None else None
        return SQL_TYPES[column.type] if column is not None else "VARCHAR"
