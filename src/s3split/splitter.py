"""Streaming split of one CSV source into header-repeating chunk files.

The source is read in large blocks; the ``Scanner`` finds record ends in each
block, so memory stays at a few blocks whatever the file size. A chunk closes at
the first record end at or after its target (bytes or rows). The split can stop
after any chunk and hand back a ``ResumeToken``; ``split(..., resume=token)``
continues from there, and the chunks are the same as in one pass.
"""

import re
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO

from s3split.errors import HeaderTooLong, InvalidOption, SourceChanged, UnterminatedQuote
from s3split.manifest import (
    MANIFEST_NAME,
    ChunkEntry,
    Manifest,
    ResumeToken,
    SplitSettings,
    chunk_name,
)
from s3split.scanner import NEWLINE, BlockCount, Dialect, Scanner
from s3split.storage import ObjectInfo, Storage, join

BLOCK = 8 * 1024 * 1024
HEADER_LIMIT = 64 * 1024 * 1024
BOM = b"\xef\xbb\xbf"
RECORD_LOOP_LIMIT = 64  # below this many records, walk them one by one; above, count spans
PROGRESS_DIR = "_split"
CHUNK_TAGS = {"s3split-object": "chunk"}  # the deployment's lifecycle rule expires these
_PART = re.compile(r"part-(\d+)\.csv")


@dataclass(frozen=True)
class SplitResult:
    """Either a finished ``manifest`` or, when the split stopped early, a ``token``."""

    manifest_uri: str
    manifest: Manifest | None = None
    token: ResumeToken | None = None

    @property
    def done(self) -> bool:
        return self.manifest is not None


def split(
    source: str,
    dest: str,
    settings: SplitSettings,
    storage: Storage,
    *,
    resume: ResumeToken | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[int], None] = lambda n: None,
    block_size: int = BLOCK,
) -> SplitResult:
    """Split ``source`` into ``dest`` (see module docstring)."""
    validate_settings(settings)
    storage.check_directory(dest)
    info = storage.stat(source)
    if resume is not None:
        _check_same_source(info, resume)
    else:
        _clear_previous(storage, dest)
    run = _Split(source, dest, settings, storage, info, should_stop, on_progress, block_size)
    try:
        return run.run(resume)
    except SourceChanged:
        raise
    except Exception:
        storage.check_still(info)  # a rewritten file fails as that, not as the bad CSV it became
        raise


def validate_settings(settings: SplitSettings) -> None:
    Dialect.of(settings.delimiter, settings.quotechar)
    if (settings.chunk_size is None) == (settings.chunk_rows is None):
        raise InvalidOption("give exactly one of chunk size and chunk rows")
    for name, value in (("chunk size", settings.chunk_size), ("chunk rows", settings.chunk_rows)):
        if value is not None and value < 1:
            raise InvalidOption(f"invalid {name} {value}: must be at least 1")


def _check_same_source(info: ObjectInfo, token: ResumeToken) -> None:
    if (token.source_etag, token.source_size) != (info.etag, info.size):
        raise SourceChanged(
            f"{info.uri} changed since the split started "
            f"(etag {token.source_etag} size {token.source_size} -> etag {info.etag} "
            f"size {info.size}); start the split again"
        )


def _clear_previous(storage: Storage, dest: str) -> None:
    """A fresh split first removes the old manifest, so nothing looks complete meanwhile."""
    storage.delete(join(dest, MANIFEST_NAME))
    for name in storage.list(join(dest, PROGRESS_DIR)):
        storage.delete(join(dest, PROGRESS_DIR, name))


class _Split:
    def __init__(
        self,
        source: str,
        dest: str,
        settings: SplitSettings,
        storage: Storage,
        info: ObjectInfo,
        should_stop: Callable[[], bool],
        on_progress: Callable[[int], None],
        block_size: int,
    ) -> None:
        self.source, self.dest, self.settings, self.storage, self.info = (
            source, dest, settings, storage, info)
        self.should_stop, self.on_progress = should_stop, on_progress
        self.block_size, self.span = block_size, max(1, block_size // 8)
        self.scanner = Scanner(settings.quotechar.encode())
        self.header = b""
        self.bom = False
        # Position and counters at the end of what has been consumed so far.
        self.offset = 0
        self.lines_before = 0
        self.rows_before = 0
        self.in_quotes = False
        self.last_byte = NEWLINE
        self.open_quote = (0, 0)  # (offset, line) of the quote that opened the current field
        # The chunk being written.
        self.index = 0
        self.chunk_file: IO[bytes] | None = None
        self.chunk_stack = ExitStack()
        self.chunk_bytes = self.chunk_rows = self.chunk_offset = self.chunk_line = 0
        self.entries: list[ChunkEntry] = []

    # -- driving -------------------------------------------------------------------------------

    def run(self, resume: ResumeToken | None) -> SplitResult:
        try:
            with self.storage.open_source(self.info) as f:
                rest = self._read_header(f)
                if resume is not None:
                    rest = self._seek(f, rest, resume)
                self.on_progress(self.offset)  # the header (and what a resume skips)
                if self._consume(f, rest):
                    return self._stopped()
            self._finish_last_chunk()
            return self._finished()
        except BaseException:
            self.chunk_stack.__exit__(*sys.exc_info())  # abort the half-written chunk
            raise

    def _consume(self, f: IO[bytes], first: bytes) -> bool:
        """Feed blocks until the end (False) or until asked to stop after a chunk (True)."""
        block = first
        while True:
            if block and self._feed(block):
                return True
            self.on_progress(len(block))
            block = f.read(self.block_size)
            if not block:
                return False

    def _feed(self, block: bytes) -> bool:
        pos, n = 0, len(block)
        fill = self._fill_by_rows if self.settings.chunk_rows else self._fill_by_size
        while pos < n:
            pos, complete = fill(block, pos)
            if complete:
                self._close_chunk()
                if self.should_stop():
                    return True
        return False

    def _fill_by_size(self, block: bytes, pos: int) -> tuple[int, bool]:
        """Add to the chunk until the first record end that brings it to its target size."""
        assert self.settings.chunk_size is not None
        written = self.chunk_bytes if self.chunk_file else len(self.header)
        search_from = pos + max(self.settings.chunk_size - written - 1, 0)
        if search_from >= len(block):
            return self._emit_rest(block, pos)
        if search_from > pos:
            self._emit(block[pos:search_from])
        end = self.scanner.find_record_end(block, search_from, self.in_quotes)
        if end < 0:
            return self._emit_rest(block, search_from)
        self._emit(block[search_from:end])
        return end, True

    def _fill_by_rows(self, block: bytes, pos: int) -> tuple[int, bool]:
        """Add to the chunk until it holds its target number of records."""
        assert self.settings.chunk_rows is not None
        wanted = self.settings.chunk_rows - self.chunk_rows
        if wanted > RECORD_LOOP_LIMIT:
            span = block[pos:pos + self.span]
            counted = self.scanner.count(span, self.in_quotes)
            if counted.records < wanted:
                self._emit(span, counted)
                return pos + len(span), False
        end = self.scanner.find_nth_record_end(block, pos, wanted, self.in_quotes)
        if end < 0:
            return self._emit_rest(block, pos)
        self._emit(block[pos:end])
        return end, True

    def _emit_rest(self, block: bytes, pos: int) -> tuple[int, bool]:
        self._emit(block[pos:] if pos else block)
        return len(block), False

    # -- writing -------------------------------------------------------------------------------

    def _emit(self, data: bytes, counted: BlockCount | None = None) -> None:
        """Append ``data`` to the current chunk (opening it if needed) and account for it."""
        if not data:
            return
        if len(data) > self.span:  # cache-sized pieces scan and write faster
            for start in range(0, len(data), self.span):
                self._emit(data[start:start + self.span])
            return
        if self.chunk_file is None:
            self._open_chunk()
        assert self.chunk_file is not None
        c = counted or self.scanner.count(data, self.in_quotes)
        quote = self.scanner.quote
        if c.in_quotes or data.endswith(quote):  # (the latter for a "" split between spans)
            opened = self.scanner.last_opening_quote(data, c.in_quotes)
            if opened == 0 and self.last_byte == quote:
                opened = -1  # escaped: the field opened before ``data``
            if opened >= 0:
                self.open_quote = (self.offset + opened,
                                   self.lines_before + data.count(NEWLINE, 0, opened) + 1)
        self.chunk_file.write(data)
        self.chunk_bytes += len(data)
        self.chunk_rows += c.records
        self.offset += len(data)
        self.lines_before += c.lines
        self.rows_before += c.records
        self.in_quotes = c.in_quotes
        self.last_byte = data[-1:]

    def _open_chunk(self) -> None:
        self.chunk_stack = ExitStack()
        uri = join(self.dest, chunk_name(self.index))
        self.chunk_file = self.chunk_stack.enter_context(self.storage.writer(uri, CHUNK_TAGS))
        self.chunk_file.write(self.header)
        self.chunk_bytes, self.chunk_rows = len(self.header), 0
        self.chunk_offset, self.chunk_line = self.offset, self.lines_before + 1

    def _close_chunk(self) -> None:
        self.chunk_stack.close()
        self.chunk_file = None
        entry = ChunkEntry(
            index=self.index,
            uri=join(self.dest, chunk_name(self.index)),
            bytes=self.chunk_bytes,
            rows=self.chunk_rows,
            source_offset=self.chunk_offset,
            source_line=self.chunk_line,
        )
        self.entries.append(entry)
        self.chunk_bytes = self.chunk_rows = 0
        self.index += 1

    def _finish_last_chunk(self) -> None:
        if self.in_quotes:
            offset, line = self.open_quote
            raise UnterminatedQuote(
                f"{self.source}: unterminated quoted field: the quote at byte {offset} "
                f"(line {line}) is never closed")
        if self.chunk_file is not None:
            if self.last_byte != NEWLINE:  # a last record without a trailing newline
                self.chunk_rows += 1
                self.rows_before += 1
            self._close_chunk()

    # -- the source's start ----------------------------------------------------------------------

    def _read_header(self, f: IO[bytes]) -> bytes:
        """Read the BOM and header record; return the bytes read past them."""
        buf = f.read(self.block_size)
        while len(buf) < len(BOM) and (more := f.read(self.block_size)):
            buf += more  # a block smaller than the BOM (or a short read) must not hide it
        self.bom = buf.startswith(BOM)
        start = len(BOM) if self.bom else 0
        end = start
        if self.settings.header:
            end = self.scanner.find_record_end(buf, start, False)
            while end < 0:
                more = f.read(self.block_size)
                if not more:
                    self._check_header_closed(buf, start)
                    end = len(buf)
                    break
                if len(buf) > HEADER_LIMIT:
                    raise HeaderTooLong(f"{self.source}: no end of the header record in the "
                                        f"first {len(buf)} bytes")
                buf += more
                end = self.scanner.find_record_end(buf, start, False)
        self.header = buf[start:end]
        self.offset = end
        self.lines_before = self.header.count(NEWLINE)
        return buf[end:]

    def _check_header_closed(self, buf: bytes, start: int) -> None:
        if self.scanner.count(buf[start:], False).in_quotes:
            at = start + self.scanner.last_opening_quote(buf[start:])
            raise UnterminatedQuote(
                f"{self.source}: unterminated quoted field: the quote at byte {at} "
                f"(line {buf.count(NEWLINE, 0, at) + 1}) is never closed")

    def _seek(self, f: IO[bytes], rest: bytes, token: ResumeToken) -> bytes:
        """Move to the token's offset; return what is already read beyond it."""
        if token.offset < self.offset:
            raise InvalidOption(f"resume offset {token.offset} lies inside the header")
        read_to = self.offset + len(rest)
        if token.offset <= read_to:
            rest = rest[token.offset - self.offset:]
        elif f.seekable():
            f.seek(token.offset)
            rest = b""
        else:  # a compressed stream: decompress and drop
            skip = token.offset - read_to
            while skip > 0:
                dropped = len(f.read(min(skip, self.block_size)))
                if not dropped:
                    raise SourceChanged(f"{self.source} ends before resume offset {token.offset}")
                skip -= dropped
            rest = b""
        self.offset = token.offset
        self.index = token.next_index
        self.rows_before = token.rows_before
        self.lines_before = token.lines_before
        return rest

    # -- results ---------------------------------------------------------------------------------

    def _token(self) -> ResumeToken:
        return ResumeToken(self.offset, self.index, self.rows_before, self.lines_before,
                           self.info.etag, self.info.size)

    def _stopped(self) -> SplitResult:
        """Persist this invocation's chunk entries; the token points past them."""
        if self.entries:
            first = self.entries[0].index
            self.storage.write_json(join(self.dest, PROGRESS_DIR, f"segment-{first:05d}.json"),
                                    [e.__dict__ for e in self.entries])
        return SplitResult(join(self.dest, MANIFEST_NAME), token=self._token())

    def _finished(self) -> SplitResult:
        self.storage.check_unchanged(self.info, self.offset)
        entries = self._earlier_entries() + self.entries
        if [e.index for e in entries] != list(range(len(entries))):
            raise SourceChanged(f"{self.dest}: chunk records of an earlier invocation are missing")
        manifest = Manifest(self.info, self.settings, self.header.decode("utf-8", "replace"),
                            len(self.header), self.bom, entries)
        uri = join(self.dest, MANIFEST_NAME)
        self.storage.write_json(uri, manifest.to_dict())
        self._remove_leftovers(len(entries))
        return SplitResult(uri, manifest=manifest)

    def _earlier_entries(self) -> list[ChunkEntry]:
        progress = join(self.dest, PROGRESS_DIR)
        return [ChunkEntry(**e)
                for name in self.storage.list(progress)
                for e in self.storage.read_json(join(progress, name))]

    def _remove_leftovers(self, count: int) -> None:
        """Progress segments and parts of an earlier, longer split of the same dest."""
        progress = join(self.dest, PROGRESS_DIR)
        for name in self.storage.list(progress):
            self.storage.delete(join(progress, name))
        self.storage.remove_empty_directory(progress)
        for name in self.storage.list(self.dest):
            match = _PART.fullmatch(name)
            if match and int(match.group(1)) >= count:
                self.storage.delete(join(self.dest, name))
