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
- a record with another number of fields than the header's: DuckDB refuses it (strict, no
  padding, and an empty field read as text, not NULL: with NULL, DuckDB takes one empty field
  too many, a trailing delimiter, as none), and a blank line it skips (an empty record to
  the Python reader) leaves it short of the manifest's count; one column (a blank line is
  then a record to DuckDB) or over 2000;
- a header whose names differ only in case (DuckDB's names are case-insensitive);
- a delimiter or quote outside ASCII (the checks above read bytes);
- a count the manifest does not give, a parse whose record count is not the manifest's, a
  chunk that cannot be copied to the local disk, or any error of DuckDB's.

DuckDB's external access is disabled and its configuration locked once the directories it
may reach are allowed: a worker keeps one database for the built-in processors (a new one
is about 10 ms a chunk), reaching the run's chunk and result directories and a scratch
directory that is there during a chunk only, so a chunk's name read as a pattern reaches no
other file; a user's query (the
``sql`` processor) runs in a database of its own that reaches no file but the chunk and its
private directory, so it cannot read the machine's files, load extensions or reach a URL.
"""

from __future__ import annotations

import mmap
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from s3split.errors import ChunkInvalid
from s3split.processors.base import ChunkJob, ProcessResult
from s3split.processors.jsonl import column_names, unique_names
from s3split.processors.reader import read_rows
from s3split.processors.rejects import Convert, Rejects, accepted, json_line
from s3split.storage import Storage, is_s3, make_directory

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


SCAN_BLOCK = 1 << 20  # (its passes stay in the CPU's cache: twice as fast as 8 MiB)
MAX_COLUMNS = 2000
SPILL = "spill"  # a database's temporary files: a directory of its scratch directory
MEMORY_SHARE = 60  # % of a function's memory DuckDB may take (the rest: Python, the buffers)
NULL_TEXT = "\n"  # DuckDB's NULL string: no unquoted field holds a line end, so none is NULL


def unreadable_shape(data: bytes | mmap.mmap, quotechar: str, delimiter: str) -> str | None:
    """Why DuckDB would not read ``data`` as the Python reader does, as far as its bytes
    tell (DuckDB checks each record's fields itself), or None."""
    import numpy as np

    if data.find(b"\x00") >= 0:
        return "a NUL byte"
    array = np.frombuffer(data, dtype=np.uint8)
    quote, size = ord(quotechar), len(array)
    bounds = np.zeros(256, dtype=bool)  # the bytes a field's quotes may stand next to
    bounds[[ord(delimiter), 10, 13, quote]] = True
    crs = lfs = quotes = 0
    for low in range(0, size, SCAN_BLOCK):
        high = min(low + SCAN_BLOCK, size)
        block = array[low:high]
        cr = block == 13
        found = int(np.count_nonzero(cr))
        if found:  # each followed by an LF (the chunk's last byte is followed by nothing)
            paired = cr[:min(high, size - 1) - low] & (array[low + 1:high + 1] == 10)
            if int(np.count_nonzero(paired)) != found:
                return "a CR not followed by LF"
        crs, lfs = crs + found, lfs + int(np.count_nonzero(block == 10))
        at = np.flatnonzero(block == quote) + low
        # Outside quotes a quote opens a field (or is a pair's second): it follows the start,
        # a delimiter, a line end or a quote; inside, it closes one (or is a pair's first) and
        # is followed by one of those or the end. Anything else is data to the Python reader.
        opening, closing = at[quotes % 2::2], at[1 - quotes % 2::2]
        opening = opening[1:] if len(opening) and opening[0] == 0 else opening
        closing = closing[:-1] if len(closing) and closing[-1] == size - 1 else closing
        if not (bounds[array[opening - 1]].all() and bounds[array[closing + 1]].all()):
            return "a quote inside an unquoted field or text after a closing quote"
        quotes += len(at)
    if crs and lfs != crs:
        return "LF and CRLF line endings mixed"
    return None


@dataclass
class NativeChunk:
    """A chunk DuckDB can read: ``source`` is a SQL table expression of its records, the
    columns ``c1 .. cN`` (text, ``''`` for an empty field), ``names`` the keys the Python
    path gives them; ``directory`` is where the connection may write scratch files."""

    connection: duckdb.DuckDBPyConnection
    source: str
    names: list[str]
    directory: str

    def text(self, number: int) -> str:
        """Column ``number`` (from 1) as text, ``''`` for an empty field."""
        return f"c{number}"

    def column(self, number: int) -> str:
        """Column ``number`` (from 1) as text, NULL for an empty field."""
        return f"nullif(c{number}, '')"

    def copy(self, select: str, fmt: str, path: str) -> int:
        """COPY ``select`` to ``path`` in format ``fmt`` (json or parquet); the rows written."""
        options = "FORMAT json" if fmt == "json" else "FORMAT parquet, COMPRESSION zstd"
        found = self.execute(f"COPY ({select}) TO {quote_literal(path)} ({options})")
        return int(found[0]) if found else 0

    def count(self) -> int:
        return self.count_table(self.source)

    def count_table(self, table: str) -> int:
        found = self.execute(f"SELECT count(*) FROM {table}")
        return int(found[0]) if found else 0

    def execute(self, statement: str) -> tuple[Any, ...] | None:
        """``statement``'s first row; Fallback naming DuckDB's error."""
        import duckdb

        try:
            return self.connection.execute(statement).fetchone()
        except duckdb.Error as exc:
            raise Fallback(f"DuckDB: {error_text(exc)}") from None


def error_text(exc: Exception) -> str:
    """DuckDB's error in a line: its first, and the field count of a record it refused."""
    lines = str(exc).splitlines()
    counts = [line for line in lines if line.startswith("Expected Number of Columns")]
    return ": ".join(lines[:1] + counts[:1])


def memory_limit(env: Mapping[str, str]) -> dict[str, str]:
    """DuckDB's memory limit: ``MEMORY_SHARE`` % of the function's memory where the runtime
    says it (DuckDB's own default, 80 % of the machine's, lets each lane on one machine plan
    for most of it), so that a big query spills to the scratch directory or fails with
    DuckDB's out-of-memory error, which names itself, before the process is killed."""
    size = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    return {"memory_limit": f"{int(size) * MEMORY_SHARE // 100}MiB"} if size.isdigit() else {}


def sandboxed(scratch: str, *directories: str, paths: Sequence[str] = ()
              ) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that reaches only ``scratch`` (where it spills), ``directories``
    and ``paths``, one thread (a worker per lane: the lanes are the parallelism)."""
    import duckdb

    # Its own temporary directory is one it reaches: DuckDB's default, ``.tmp`` in the
    # working directory, let a query read the files there.
    config: dict[str, str | bool | int | float | list[str]] = {
        "threads": 1, "autoinstall_known_extensions": False, "autoload_known_extensions": False,
        "temp_directory": os.path.join(scratch, SPILL), **memory_limit(os.environ)}
    connection = duckdb.connect(config=config)
    allowed = ", ".join(quote_literal(os.path.join(d, ""))
                        for d in dict.fromkeys((scratch, *directories)))
    connection.execute(f"SET allowed_directories = [{allowed}]")
    connection.execute(f"SET allowed_paths = [{', '.join(quote_literal(p) for p in paths)}]")
    connection.execute("SET TimeZone = 'UTC'")  # a naive datetime is UTC in a typed column
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")
    return connection


class _Worker(threading.local):
    """This worker's (thread's) DuckDB for the built-in processors, kept between chunks, the
    directories it reaches, and its scratch directory's name (the directory itself is there
    during a chunk only: a worker may end without running any clean-up)."""

    pid = 0
    reaches: tuple[str, ...] = ()
    database: duckdb.DuckDBPyConnection | None = None
    scratch = ""

    @contextmanager
    def scratch_directory(self) -> Iterator[str]:
        """The scratch directory, made for one chunk and removed after it."""
        if self.pid != os.getpid():  # (a forked child: the parent's database is not its own)
            self.pid, self.database, self.reaches, self.scratch = os.getpid(), None, (), ""
        for _ in range(2):
            self.scratch = self.scratch or os.path.join(
                tempfile.gettempdir(), f"s3split-native-{secrets.token_hex(8)}")
            try:
                os.mkdir(self.scratch, 0o700)
                os.mkdir(os.path.join(self.scratch, SPILL))  # (the kept database spills there)
                break
            except FileExistsError:  # (not ours: another name, so another database)
                self.scratch = ""
            except OSError as exc:  # (a full /tmp, say: the Python reader streams instead)
                raise Fallback(f"no scratch directory {self.scratch}: {exc.strerror}") from None
        else:
            raise Fallback("no scratch directory: the names taken")
        try:
            yield self.scratch
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def connection(self, *directories: str) -> duckdb.DuckDBPyConnection:
        """A connection to a database reaching ``directories`` and the scratch directory."""
        reaches = tuple(sorted({os.path.abspath(d) for d in (*directories, self.scratch)}))
        if self.database is None or reaches != self.reaches:
            if self.database is not None:
                self.database.close()
            self.database, self.reaches = sandboxed(self.scratch, *reaches), reaches
        return self.database.cursor()


_WORKER = _Worker()


def header_of(job: ChunkJob, storage: Storage, local: str) -> list[str] | None:
    """The chunk's header as the Python reader reads it (ChunkInvalid if it cannot), read
    from ``local``, the chunk on this machine (not a second download of an S3 chunk)."""
    if not job.has_header:
        return None
    if local != job.chunk_uri:
        with suppress(ChunkInvalid), read_rows(replace(job, chunk_uri=local), storage) as rows:
            return rows.header
    with read_rows(job, storage) as rows:  # (ChunkInvalid naming the chunk, not its copy)
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
def native_chunk(job: ChunkJob, storage: Storage, private: bool = False
                 ) -> Iterator[NativeChunk]:
    """The chunk opened in DuckDB, or Fallback saying why it must be read in Python.
    ``private``: in a database of its own that reaches only the chunk and a directory of its
    own (for a user's query); otherwise in the worker's (the built-in processors' queries)."""
    if not enabled():
        raise Fallback(f"{NATIVE_ENV}=0")
    if job.rows < 0:
        raise Fallback("the manifest gives no record count to check")
    if not (len(job.delimiter) == len(job.quotechar) == 1 and job.delimiter.isascii()
            and job.quotechar.isascii() and job.delimiter != job.quotechar
            and NULL_TEXT not in job.delimiter + job.quotechar):
        raise Fallback("a delimiter or quote outside ASCII (the shape checks read bytes)")
    with ExitStack() as cleanup:
        if private:
            try:
                directory = tempfile.mkdtemp(prefix="s3split-native-")
            except OSError as exc:
                raise Fallback(f"no private directory: {exc.strerror}") from None
            cleanup.callback(shutil.rmtree, directory, True)
        else:
            directory = cleanup.enter_context(_WORKER.scratch_directory())
        local = _local_copy(job, storage, directory, cleanup)
        names = _columns(job, header_of(job, storage, local), local)
        if not 2 <= len(names) <= MAX_COLUMNS:
            raise Fallback(f"{len(names)} column(s): DuckDB takes 2 to {MAX_COLUMNS} here (to it "
                           "a blank line is a record of one column; a query of very many "
                           "columns binds slowly)")
        _check_shape(local, job)
        if private:
            connection = sandboxed(directory, paths=[local])
        else:
            connection = _WORKER.connection(os.path.dirname(local),
                                            *_output_directory(job.output_uri))
        cleanup.callback(connection.close)
        yield NativeChunk(connection, _read_csv(job, local, len(names)), names, directory)


def _output_directory(uri: str) -> list[str]:
    return [] if is_s3(uri) else [os.path.dirname(os.path.abspath(uri))]


def _local_copy(job: ChunkJob, storage: Storage, directory: str, cleanup: ExitStack) -> str:
    if not is_s3(job.chunk_uri):
        return os.path.abspath(job.chunk_uri)
    try:
        fd, local = tempfile.mkstemp(dir=directory, prefix="chunk-", suffix=".csv")
        cleanup.callback(_remove, local)
        with storage.open_read(job.chunk_uri) as source, os.fdopen(fd, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
    except OSError as exc:  # (a full /tmp, say: the Python reader streams instead)
        raise Fallback(f"the chunk cannot be copied to {directory}: {exc.strerror}") from None
    return local


def _remove(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def _check_shape(local: str, job: ChunkJob) -> None:
    with open(local, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise Fallback("an empty chunk")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            reason = unreadable_shape(data, job.quotechar, job.delimiter)
            if not job.has_header and data[:3] == b"\xef\xbb\xbf":
                reason = "a BOM before the first record (DuckDB drops it)"
    if reason is not None:
        raise Fallback(reason)


def _read_csv(job: ChunkJob, local: str, count: int) -> str:
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(1, count + 1))
    return (f"read_csv({quote_literal(local)}, header={str(job.has_header).lower()}, "
            f"auto_detect=false, columns={{{columns}}}, delim={quote_literal(job.delimiter)}, "
            f"quote={quote_literal(job.quotechar)}, escape={quote_literal(job.quotechar)}, "
            f"strict_mode=true, null_padding=false, nullstr={quote_literal(NULL_TEXT)}, "
            f"allow_quoted_nulls=false, max_line_size={max(job.bytes, 1 << 21)}, "
            "encoding='utf-8')")


def checked_count(job: ChunkJob, found: int) -> int:
    """``found`` records, when they are the manifest's; else Fallback (the Python reader then
    finds the manifest's count, or fails the chunk ChunkMisaligned)."""
    if found != job.rows:
        raise Fallback(f"DuckDB read {found} records, the manifest {job.rows} (it skips a "
                       "blank line, an empty record to the Python reader)")
    return found


def written(job: ChunkJob, storage: Storage, chunk: NativeChunk, select: str, fmt: str
            ) -> ProcessResult:
    """The rows of ``select`` written as the job's output in format ``fmt``: the chunk's
    records, all accepted (Fallback if they are not the manifest's, and nothing written)."""
    with output_file(job.output_uri, storage, chunk.directory) as path:
        count = checked_count(job, chunk.copy(select, fmt, path))
    return ProcessResult(count, count, 0, job.output_uri, None, [])


@contextmanager
def output_file(uri: str, storage: Storage, scratch: str) -> Iterator[str]:
    """A path for DuckDB to write ``uri`` at, which becomes ``uri`` when the block ends
    without an error (written whole or not at all, as every output): a local output is
    written next to its place and renamed there, an S3 one is uploaded from ``scratch``."""
    name = f".{os.path.basename(uri)}.{secrets.token_hex(6)}.tmp"
    if is_s3(uri):
        path = os.path.join(scratch, name)
    else:
        directory = os.path.dirname(os.path.abspath(uri))
        make_directory(directory, uri)
        path = os.path.join(directory, name)
    try:
        yield path
        try:
            if is_s3(uri) or os.path.isdir(uri):
                raise IsADirectoryError
            os.replace(path, uri)
        except OSError:  # (S3, or a rename refused: the writer writes it, or says why not)
            upload(path, uri, storage)
    finally:
        _remove(path)


def upload(path: str, uri: str, storage: Storage) -> None:
    """The file DuckDB wrote as ``uri`` (written whole or not at all, as every output)."""
    with open(path, "rb") as source, storage.writer(uri) as target:
        shutil.copyfileobj(source, target, 1 << 20)


def text_select(chunk: NativeChunk) -> str:
    """Every column as text keyed as the Python path keys it (an empty field ``''``)."""
    fields = ", ".join(f"{chunk.text(i)} AS {quote_identifier(name)}"
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


def apart_in_case(keys: Sequence[str], uri: str, what: str) -> None:
    """ChunkInvalid, ``uri`` ``what``, when two of ``keys`` differ only in ASCII case (as
    DuckDB's names do not)."""
    seen: dict[bytes, str] = {}
    for key in keys:
        other = seen.setdefault(key.encode().lower(), key)
        if other != key:
            raise ChunkInvalid(f"{uri}: {what}: columns {other!r} and {key!r} differ only in "
                               "case (DuckDB's names ignore it)")


def read_json_lines(path: str, columns: Sequence[tuple[str, str]]) -> str:
    """A table expression of the JSON Lines in ``path`` with ``columns`` (name, SQL type)."""
    spec = ", ".join(f"{quote_literal(name)}: {quote_literal(kind)}" for name, kind in columns)
    # (records: a file of ``{}`` alone is otherwise taken for JSON values, each one a field)
    return (f"read_json({quote_literal(path)}, format='newline_delimited', records='true', "
            f"columns={{{spec or quote_literal('col1') + ': ' + quote_literal('VARCHAR')}}})")
