"""The ``sql`` processor: the user's single ``SELECT ... FROM chunk`` run on each chunk by
DuckDB, its result written as JSON Lines or Parquet.

``chunk`` is a table of the chunk's records, every column text (an empty field ``''``), named
as the ``jsonl`` processor keys them; records the ``jsonl`` processor would reject (another
number of fields than the header's) are rejected here too, before the query. ``rows_out``
counts the records the query read, not the rows it returned (a query may filter or
aggregate): every source record is accounted once, as for the other processors; the rows it
returned are ``records_written``, which the report adds up apart.

The statement is checked once, where the configuration is read: a single SELECT, nothing
else. It runs in a DuckDB that reaches no file but the chunk and its private directory,
loads no extension and reaches no URL (native.sandboxed).
"""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING

from s3split.errors import ChunkInvalid, InvalidOption
from s3split.processors.base import ChunkJob, ProcessResult
from s3split.processors.jsonl import object_converter
from s3split.processors.settings import Setting, Settings
from s3split.storage import Storage

if TYPE_CHECKING:
    import duckdb

FORMATS = {"jsonl": "json", "parquet": "parquet"}


def _output_format(text: str) -> str:
    if text not in FORMATS:
        raise InvalidOption(f"expected jsonl or parquet, got {text!r}")
    return text


# The query (one given as a file is recorded as its text), checked when the processor is made.
QUERY = Setting("S3SPLIT_SQL", str, recorded_as=str, file_variable="S3SPLIT_SQL_FILE")
OUTPUT = Setting("S3SPLIT_SQL_FORMAT", _output_format, recorded_as=str)


def checked_query(text: str) -> str:
    """``text`` when it is a single SELECT (its trailing ``;`` dropped); InvalidOption if not."""
    import duckdb

    try:
        statements = duckdb.extract_statements(text)
    except duckdb.Error as exc:
        raise InvalidOption(f"S3SPLIT_SQL is not valid SQL: {str(exc).splitlines()[0]}") from None
    kinds = [statement.type.name for statement in statements]
    if kinds != ["SELECT"]:
        raise InvalidOption(f"S3SPLIT_SQL: expected a single SELECT ... FROM chunk, got "
                            f"{', '.join(kinds) or 'no statement'}")
    return _without_tail(statements[0].query)


def _without_tail(text: str) -> str:
    """``text`` without the comments and ``;`` after its last token: it is put inside the
    COPY that writes its result, where a ``-- comment`` or a ``;`` would end that COPY."""
    import duckdb

    end = len(text)
    for start, kind in reversed(duckdb.tokenize(text)):
        if kind != duckdb.token_type.comment and text[start:end].strip(" \t\r\n;"):
            break
        end = start
    return text[:end].strip()


class SqlProcessor:
    """Each chunk through the user's query; the result as ``jsonl`` or ``parquet``."""

    settings = (QUERY, OUTPUT)

    @classmethod
    def from_settings(cls, settings: Settings) -> SqlProcessor:
        query = settings.required(QUERY, "sql needs a query: set S3SPLIT_SQL to a SELECT ... "
                                         "FROM chunk, or S3SPLIT_SQL_FILE to the path of a "
                                         "file holding one")
        return cls(query, settings.get(OUTPUT) or "jsonl")

    def __init__(self, query: str, output: str = "jsonl") -> None:
        if output not in FORMATS:
            raise InvalidOption(f"S3SPLIT_SQL_FORMAT: expected jsonl or parquet, got {output!r}")
        self.query = checked_query(query)
        self.extension = output

    def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult:

        from s3split.processors import native

        try:
            with native.native_chunk(job, storage, private=True) as chunk:
                chunk.execute(f"CREATE TEMP TABLE chunk AS {native.text_select(chunk)}")
                count = native.checked_count(job, chunk.count_table("chunk"))
                written = self._run(job, storage, chunk.connection, chunk.directory)
            return ProcessResult(count, count, 0, job.output_uri, None, [], written)
        except native.Fallback:
            return self._through_python(job, storage)

    def _through_python(self, job: ChunkJob, storage: Storage) -> ProcessResult:
        import duckdb

        from s3split.processors import native

        with tempfile.TemporaryDirectory(prefix="s3split-sql-") as directory:
            lines = os.path.join(directory, "accepted.jsonl")
            result, keys = native.accepted_to_file(job, storage, object_converter, lines)
            native.apart_in_case(keys, job.chunk_uri, "cannot be the query's table")
            connection = native.sandboxed(directory)
            try:
                source = native.read_json_lines(lines, [(key, "VARCHAR") for key in keys])
                try:
                    connection.execute(f"CREATE TEMP TABLE chunk AS SELECT * FROM {source}")
                except duckdb.Error as exc:
                    raise ChunkInvalid(f"{job.chunk_uri}: cannot be the query's table: "
                                       f"{str(exc).splitlines()[0]}") from None
                written = self._run(job, storage, connection, directory)
            finally:
                connection.close()
        return ProcessResult(result.rows_in, result.rows_out, result.rows_rejected,
                             job.output_uri, result.rejects_uri, result.rejects, written)

    def _run(self, job: ChunkJob, storage: Storage, connection: duckdb.DuckDBPyConnection,
             directory: str) -> int:
        """The query's result written as the job's output; the rows it holds."""
        import duckdb

        from s3split.processors import native

        out = os.path.join(directory, f"result.{self.extension}")
        options = ("FORMAT json" if self.extension == "jsonl"
                   else "FORMAT parquet, COMPRESSION zstd")
        try:
            found = connection.execute(
                f"COPY (\n{self.query}\n) TO {native.quote_literal(out)} ({options})").fetchone()
        except duckdb.Error as exc:
            raise ChunkInvalid(f"{job.chunk_uri}: the S3SPLIT_SQL query failed on this chunk: "
                               f"{str(exc).splitlines()[0]}") from None
        native.upload(out, job.output_uri, storage)
        return int(found[0]) if found else 0
