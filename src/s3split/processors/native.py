"""Chunks read by DuckDB at native speed, with the splitter's CSV semantics as the truth.

DuckDB reads a chunk with the run's explicit dialect (delimiter, quote, escape = quote, the
header record skipped; nothing sniffed), every column as text, and the Python reader's header
as the column names. It is used only where it reads exactly what the Python reader reads;
anything else raises :class:`Fallback` (with the reason) and the processor reads the chunk with
the Python reader instead:

- a NUL byte (the Python reader's ChunkInvalid), a CR not followed by LF, or LF and CRLF
  endings mixed (DuckDB takes one line ending per file);
- a quote that neither opens a field, nor closes one, nor is doubled (a stray quote, read as
  data by the Python reader, or text after a closing quote);
- a record with another number of fields than the header's (DuckDB takes one empty field
  too many, a trailing delimiter, as none; it skips a blank line, an empty record to the
  Python reader), one column (a blank line is then a record to DuckDB) or over 2000;
- a header whose names differ only in case (DuckDB's names are case-insensitive);
- a delimiter or quote outside ASCII (the checks above read bytes);
- a count the manifest does not give, a parse whose record count is not the manifest's, a
  chunk that cannot be copied to the local disk, or any error of DuckDB's.

The connection reaches no file but the chunk and its private directory (DuckDB's external
access is disabled and its configuration locked once those are allowed), so a user's query
(the ``sql`` processor) cannot read the machine's files, load extensions or reach a URL.
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from s3split.processors.base import ChunkJob, ProcessResult
from s3split.processors.jsonl import column_names, unique_names
from s3split.processors.reader import read_rows
from s3split.processors.rejects import Convert, Rejects, accepted, json_line
from s3split.storage import Storage, is_s3

if TYPE_CHECKING:
    import duckdb

NATIVE_ENV = "S3SPLIT_NATIVE"  # "0": every chunk through the Python reader


class Fallback(Exception):
    """DuckDB cannot read this chunk as the Python reader does; ``str(exc)`` says why."""


def enabled() -> bool:
    return os.environ.get(NATIVE_ENV, "1").strip() != "0"


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


SCAN_BLOCK = 8 << 20
MAX_COLUMNS = 2000


def unreadable_shape(data: bytes | mmap.mmap, quotechar: str, delimiter: str,
                     fields: int, records: int) -> str | None:
    """Why DuckDB would not read ``data`` (``records`` records, header included, of
    ``fields`` fields each) as the Python reader does, or None. DuckDB takes a record with
    one empty field too many (a trailing delimiter) as a whole one: the delimiters outside
    quotes must be ``records * (fields - 1)``, which, with DuckDB refusing short records,
    leaves none too long."""
    import numpy as np

    array = np.frombuffer(data, dtype=np.uint8)
    if data.find(b"\x00") >= 0:
        return "a NUL byte"
    quote, delim, last = ord(quotechar), ord(delimiter), len(array) - 1
    starts = ends = np.array([delim, 10, 13, quote], dtype=np.uint8)
    quotes = outside = crs = lfs = 0
    for low in range(0, len(array), SCAN_BLOCK):
        block = array[low:low + SCAN_BLOCK]
        cr = np.flatnonzero(block == 13) + low
        if len(cr) and np.any(array[np.minimum(cr + 1, last)] != 10) | (cr[-1] == last):
            return "a CR not followed by LF"
        crs, lfs = crs + len(cr), lfs + int(np.count_nonzero(block == 10))
        at = np.flatnonzero(block == quote) + low
        before = np.where(at > 0, array[np.maximum(at - 1, 0)], 10)
        after = np.where(at < last, array[np.minimum(at + 1, last)], 10)
        # Outside quotes a quote opens a field (or is a pair's second); inside, it closes one
        # (or is a pair's first): anything else is data to the Python reader.
        inside = (quotes + np.arange(len(at))) % 2 == 1
        ok = np.where(inside, np.isin(after, ends), np.isin(before, starts))
        if not np.all(ok):
            return "a quote inside an unquoted field or text after a closing quote"
        delims = np.flatnonzero(block == delim) + low
        outside += int(np.count_nonzero((quotes + np.searchsorted(at, delims)) % 2 == 0))
        quotes += len(at)
    if crs and lfs != crs:
        return "LF and CRLF line endings mixed"
    if outside != records * (fields - 1):
        return "a record with another number of fields than the header's"
    return None


@dataclass
class NativeChunk:
    """A chunk DuckDB can read: ``source`` is a SQL table expression of its records, the
    columns ``c1 .. cN`` (text, NULL for an empty field), ``names`` the keys the Python path
    gives them; ``directory`` is private to this chunk (outputs are written there)."""

    connection: duckdb.DuckDBPyConnection
    source: str
    names: list[str]
    directory: str

    def column(self, number: int) -> str:
        return f"c{number}"

    def copy(self, select: str, fmt: str) -> tuple[str, int]:
        """COPY ``select`` to a file of format ``fmt`` (json or parquet) in the chunk's
        directory; the file and the rows written."""
        import duckdb

        path = os.path.join(self.directory, f"out.{fmt}")
        options = "FORMAT json" if fmt == "json" else "FORMAT parquet, COMPRESSION zstd"
        try:
            found = self.connection.execute(
                f"COPY ({select}) TO {quote_literal(path)} ({options})").fetchone()
        except duckdb.Error as exc:
            raise Fallback(f"DuckDB: {str(exc).splitlines()[0]}") from None
        return path, int(found[0]) if found else 0

    def count(self) -> int:
        return self.count_table(self.source)

    def count_table(self, table: str) -> int:
        import duckdb

        try:
            found = self.connection.execute(f"SELECT count(*) FROM {table}").fetchone()
        except duckdb.Error as exc:
            raise Fallback(f"DuckDB: {str(exc).splitlines()[0]}") from None
        return int(found[0]) if found else 0


def sandboxed(directory: str, paths: Sequence[str] = ()) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that reaches only ``directory`` and ``paths``, one thread (a
    worker per lane: the lanes are the parallelism)."""
    import duckdb

    connection = duckdb.connect(config={"threads": 1, "autoinstall_known_extensions": False,
                                        "autoload_known_extensions": False})
    allowed = ", ".join(quote_literal(p) for p in paths)
    connection.execute(f"SET allowed_directories = [{quote_literal(directory + os.sep)}]")
    connection.execute(f"SET allowed_paths = [{allowed}]")
    connection.execute("SET TimeZone = 'UTC'")  # a naive datetime is UTC in a typed column
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")
    return connection


def header_of(job: ChunkJob, storage: Storage) -> list[str] | None:
    """The chunk's header as the Python reader reads it (ChunkInvalid if it cannot)."""
    if not job.has_header:
        return None
    with read_rows(job, storage) as rows:
        return rows.header


def _columns(job: ChunkJob, header: list[str] | None, local: str) -> list[str]:
    if header is not None:
        names = unique_names(header)
        if len({name.casefold() for name in names}) != len(names):
            raise Fallback("header names that differ only in case")
        return names
    import csv

    with open(local, newline="", encoding="utf-8") as f:
        first = next(csv.reader(f, delimiter=job.delimiter, quotechar=job.quotechar), None)
    if not first:
        raise Fallback("no first record to count the columns of")
    return list(column_names(len(first)))


@contextmanager
def native_chunk(job: ChunkJob, storage: Storage) -> Iterator[NativeChunk]:
    """The chunk opened in DuckDB, or Fallback saying why it must be read in Python."""
    if not enabled():
        raise Fallback(f"{NATIVE_ENV}=0")
    if job.rows < 0:
        raise Fallback("the manifest gives no record count to check")
    if not (len(job.delimiter) == len(job.quotechar) == 1 and job.delimiter.isascii()
            and job.quotechar.isascii() and job.delimiter != job.quotechar):
        raise Fallback("a delimiter or quote outside ASCII (the shape checks read bytes)")
    header = header_of(job, storage)
    directory = tempfile.mkdtemp(prefix="s3split-native-")
    try:
        try:
            local = _local_copy(job, storage, directory)
        except OSError as exc:  # (a full /tmp, say: the Python reader streams instead)
            raise Fallback(f"the chunk cannot be copied to {directory}: {exc.strerror}") from None
        names = _columns(job, header, local)
        if not 2 <= len(names) <= MAX_COLUMNS:
            raise Fallback(f"{len(names)} column(s): DuckDB takes 2 to {MAX_COLUMNS} here (to it "
                           "a blank line is a record of one column; a query of very many "
                           "columns binds slowly)")
        _check_shape(local, job, len(names))
        connection = sandboxed(directory, [local])
        try:
            yield NativeChunk(connection, _read_csv(job, local, len(names)), names, directory)
        finally:
            connection.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _local_copy(job: ChunkJob, storage: Storage, directory: str) -> str:
    if not is_s3(job.chunk_uri):
        return os.path.abspath(job.chunk_uri)
    local = os.path.join(directory, "chunk.csv")
    with storage.open_read(job.chunk_uri) as source, open(local, "wb") as target:
        shutil.copyfileobj(source, target, 1 << 20)
    return local


def _check_shape(local: str, job: ChunkJob, fields: int) -> None:
    with open(local, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise Fallback("an empty chunk")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            records = job.rows + (1 if job.has_header else 0)
            reason = unreadable_shape(data, job.quotechar, job.delimiter, fields, records)
            if not job.has_header and data[:3] == b"\xef\xbb\xbf":
                reason = "a BOM before the first record (DuckDB drops it)"
    if reason is not None:
        raise Fallback(reason)


def _read_csv(job: ChunkJob, local: str, count: int) -> str:
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(1, count + 1))
    return (f"read_csv({quote_literal(local)}, header={str(job.has_header).lower()}, "
            f"auto_detect=false, columns={{{columns}}}, delim={quote_literal(job.delimiter)}, "
            f"quote={quote_literal(job.quotechar)}, escape={quote_literal(job.quotechar)}, "
            f"strict_mode=true, null_padding=false, max_line_size={max(job.bytes, 1 << 21)}, "
            "encoding='utf-8')")


def checked_count(job: ChunkJob, found: int) -> int:
    """``found`` records, when they are the manifest's; else Fallback (the Python reader then
    finds the manifest's count, or fails the chunk ChunkMisaligned)."""
    if found != job.rows:
        raise Fallback(f"DuckDB read {found} records, the manifest {job.rows}")
    return found


def written(job: ChunkJob, storage: Storage, chunk: NativeChunk, select: str, fmt: str
            ) -> ProcessResult:
    """The rows of ``select`` written as the job's output in format ``fmt``: the chunk's
    records, all accepted (Fallback if they are not the manifest's)."""
    path, count = chunk.copy(select, fmt)
    checked_count(job, count)
    upload(path, job.output_uri, storage)
    return ProcessResult(count, count, 0, job.output_uri, None, [])


def upload(path: str, uri: str, storage: Storage) -> None:
    """The file DuckDB wrote as ``uri`` (written whole or not at all, as every output)."""
    with open(path, "rb") as source, storage.writer(uri) as target:
        shutil.copyfileobj(source, target, 1 << 20)


def text_select(chunk: NativeChunk, empty_as: str = "''") -> str:
    """Every column as text keyed as the Python path keys it (an empty field ``empty_as``)."""
    fields = ", ".join(f"coalesce({chunk.column(i)}, {empty_as}) AS {quote_identifier(name)}"
                       for i, name in enumerate(chunk.names, 1))
    return f"SELECT {fields} FROM {chunk.source}"



def accepted_to_file(job: ChunkJob, storage: Storage,
                     converter: Callable[[list[str] | None], Convert],
                     path: str) -> tuple[ProcessResult, list[str]]:
    """The records the Python reader gives and ``converter`` accepts, as JSON Lines in
    ``path`` (for DuckDB to take on), the rejects written as every processor writes them;
    the result and the records' keys (those of the widest record)."""
    keys: list[str] = []
    with read_rows(job, storage) as rows:
        convert = converter(rows.header)
        with open(path, "wb") as out, Rejects(job.rejects_uri, storage) as rejects:
            written = 0
            for record in accepted(rows, convert, rejects):
                out.write(json_line(record))
                written += 1
                if len(record) > len(keys):
                    keys = list(record)
    if not keys and rows.header is not None:
        keys = unique_names(rows.header)
    return rejects.result(rows.count, written, job.output_uri), keys


def read_json_lines(path: str, columns: Sequence[tuple[str, str]]) -> str:
    """A table expression of the JSON Lines in ``path`` with ``columns`` (name, SQL type)."""
    spec = ", ".join(f"{quote_literal(name)}: {quote_literal(kind)}" for name, kind in columns)
    return (f"read_json({quote_literal(path)}, format='newline_delimited', "
            f"columns={{{spec or quote_literal('col1') + ': ' + quote_literal('VARCHAR')}}})")
