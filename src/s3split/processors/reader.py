"""A chunk's records, streamed: the CSV parser checked against the manifest's count, and
errors that say where (source line, byte of the chunk) a chunk cannot be read."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from contextlib import suppress
from types import TracebackType
from typing import IO, NamedTuple

from s3split.errors import ChunkInvalid, ChunkMisaligned
from s3split.processors.base import ChunkJob
from s3split.storage import Storage

SCAN_BLOCK = 1024 * 1024
FIELD_SIZE_LIMIT = csv.field_size_limit()  # the csv module's default, for small chunks


class Row(NamedTuple):
    line: int
    fields: list[str]


class ChunkRows(Iterator[Row]):
    """The records of one chunk, streamed; ``header`` holds the header's fields (or None)."""

    def __init__(self, job: ChunkJob, storage: Storage) -> None:
        self._job = job
        self._storage = storage
        stream = storage.open_read(job.chunk_uri)
        # newline="": CR, LF and CRLF end lines, as csv.reader expects and the splitter assumes.
        self._text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        _allow_fields_up_to(job.bytes)
        self._reader = csv.reader(
            self._checked_lines(), delimiter=job.delimiter, quotechar=job.quotechar
        )
        self._header_lines: int | None = None if job.has_header else 0
        self.count = 0
        try:
            self.header = self._next_fields() if job.has_header else None
        except BaseException:
            self.close()
            raise
        self._header_lines = self._reader.line_num

    def __next__(self) -> Row:
        first_line = self._reader.line_num + 1
        fields = self._next_fields()
        if fields is None:
            self.close()
            self._check_count(final=True)
            raise StopIteration
        self.count += 1
        self._check_count(final=False)
        return Row(self._source_line(first_line), fields)

    def _check_count(self, final: bool) -> None:
        """The parser must find the records the splitter counted; if not, the chunk's records
        are cut in the wrong places and no output of it may count."""
        expected = self._job.rows
        if expected >= 0 and (self.count > expected or (final and self.count != expected)):
            found = f"{self.count}" if final else f"more than {expected}"
            raise ChunkMisaligned(
                f"{self._job.chunk_uri}: chunk {self._job.index} should hold {expected} records "
                f"(manifest) but the CSV parser finds {found}: the split and the parser disagree")

    def __enter__(self) -> ChunkRows:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._text.close()

    def _checked_lines(self) -> Iterator[str]:
        for number, line in enumerate(self._text, 1):
            if "\x00" in line:
                raise ChunkInvalid(
                    f"{self._job.chunk_uri}: binary data (NUL byte) at {self._where(number)}"
                )
            yield line

    def _next_fields(self) -> list[str] | None:
        try:
            return next(self._reader, None)
        except UnicodeDecodeError as exc:
            raise self._invalid_utf8(exc) from None
        except csv.Error as exc:
            where = self._where(self._reader.line_num)
            raise ChunkInvalid(f"{self._job.chunk_uri}: unreadable CSV at {where}: {exc}") from None

    def _source_line(self, chunk_line: int, header_lines: int | None = None) -> int:
        header_lines = self._header_lines if header_lines is None else header_lines
        return self._job.source_line + chunk_line - 1 - (header_lines or 0)

    def _where(self, chunk_line: int) -> str:
        header_lines = self._header_lines
        if header_lines is None:
            header_lines = self._count_header_lines()
        if chunk_line <= header_lines:
            return f"line {chunk_line} of the chunk (the header)"
        return f"source line {self._source_line(chunk_line, header_lines)}"

    def _count_header_lines(self) -> int:
        """Lines of the header, for errors found before it is read (decoding reads ahead)."""
        job = self._job
        with self._storage.open_read(job.chunk_uri) as stream:
            text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
            reader = csv.reader(text, delimiter=job.delimiter, quotechar=job.quotechar)
            with suppress(csv.Error):
                next(reader, None)
            return reader.line_num

    def _invalid_utf8(self, exc: UnicodeDecodeError) -> ChunkInvalid:
        uri = self._job.chunk_uri
        with self._storage.open_read(uri) as stream:
            found = find_invalid_utf8(stream)
        if found is None:
            return ChunkInvalid(f"{uri}: invalid UTF-8 ({exc.reason})")
        offset, chunk_line = found
        return ChunkInvalid(
            f"{uri}: invalid UTF-8 at byte {offset} of the chunk ({self._where(chunk_line)})"
        )


def _allow_fields_up_to(size: int) -> None:
    """csv's field size limit (128 KiB by default, process-wide; a worker reads one chunk at a
    time) must not fail a chunk whose record is as large as the chunk itself."""
    csv.field_size_limit(max(FIELD_SIZE_LIMIT, size))


def read_rows(job: ChunkJob, storage: Storage) -> ChunkRows:
    """Stream the chunk's records; the header (when ``job.has_header``) is ``.header``."""
    return ChunkRows(job, storage)


def find_invalid_utf8(stream: IO[bytes], block: int = SCAN_BLOCK) -> tuple[int, int] | None:
    """Byte offset of the first byte that is not UTF-8, and the 1-based line it is on."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = newlines = 0
    while True:
        data = stream.read(block)
        pending = decoder.getstate()[0]
        try:
            decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            before = (pending + data)[: exc.start]
            return offset - len(pending) + exc.start, newlines + before.count(b"\n") + 1
        if not data:
            return None
        offset += len(data)
        newlines += data.count(b"\n")
