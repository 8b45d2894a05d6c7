"""Streaming split of one CSV source into header-repeating chunk files.

The source is read in large blocks; the ``Scanner`` finds record ends in each
block, so memory stays at a few blocks whatever the file size. A chunk closes at
the first record end at or after its target (bytes or rows). The split can stop
after any chunk and hand back a ``ResumeToken``; ``split(..., resume=token)``
continues from there, and the chunks are the same as in one pass.
"""

import itertools
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from s3split.errors import HeaderTooLong, InvalidOption, SourceChanged, UnterminatedQuote
from s3split.split.destination import (
    check_destination,
    check_source,
    clear_progress,
    record_previous,
    remove_leftovers,
    remove_temporaries,
)
from s3split.split.manifest import (
    MANIFEST_NAME,
    ChunkEntry,
    Manifest,
    ResumeToken,
    SplitSettings,
    chunk_name,
)
from s3split.split.scanner import Dialect, Positions, Scan, Scanner, State
from s3split.storage import ObjectInfo, Storage, is_compressed, is_s3, join

BLOCK = 8 * 1024 * 1024
SPAN = 1024 * 1024  # scanned at a time: the scanner's work arrays stay cache-sized
HEADER_LIMIT = 64 * 1024 * 1024
BOM = b"\xef\xbb\xbf"
PROGRESS_DIR = "_split"
CHUNK_TAGS = {"s3split-object": "chunk"}  # the deployment's lifecycle rule expires these
RANGES_FROM = 32 * 1024 * 1024  # smaller sources: starting processes costs more than it saves


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
    jobs: int = 1,
    cuts: Sequence[int] | None = None,
) -> SplitResult:
    """Split ``source`` into ``dest`` (see module docstring).

    ``jobs`` > 1 (or explicit range ``cuts``): a local, uncompressed source split by size
    into a local ``dest`` is scanned in ranges by that many processes and its chunks are
    copied out of the source (``s3split.split.parallel``); the chunks and manifest are the same.

    Only one split of ``dest`` may run at a time: the caller ensures it (``s3split split``
    holds ``split.lock``, the pipeline the run lock). What ``dest`` held that no split wrote
    is never touched (``split.destination``).
    """
    validate_settings(settings)
    check_destination(dest)
    check_source(source, dest)
    storage.check_directory(dest)
    info = storage.stat(source)
    if resume is not None:
        _check_same_source(info, resume)
    remove_temporaries(storage, dest)
    if resume is None:
        _clear_previous(storage, dest)
    run = _Split(source, dest, settings, storage, info, should_stop, on_progress, block_size)
    try:
        if resume is None and _in_ranges(source, dest, settings, info, jobs, cuts):
            from s3split.split.parallel import split_in_ranges  # (and multiprocessing) only here
            return split_in_ranges(run, jobs, cuts)
        return run.run(resume)
    except SourceChanged:
        raise
    except Exception:
        storage.check_still(info)  # a rewritten file fails as that, not as the bad CSV it became
        raise


def _in_ranges(source: str, dest: str, settings: SplitSettings, info: ObjectInfo, jobs: int,
               cuts: Sequence[int] | None) -> bool:
    """Whether the range split applies: asked for (``jobs`` > 1 on a source of at least
    ``RANGES_FROM`` bytes, or explicit ``cuts``) and possible: rows mode counts records in
    order, and compressed or S3 sources (and S3 destinations) take the single pass for now."""
    asked = cuts is not None or (jobs > 1 and info.size >= RANGES_FROM)
    return (asked and settings.chunk_size is not None and not is_s3(source) and not is_s3(dest)
            and not is_compressed(source))


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
    """A fresh split first notes the parts earlier splits left (the finished split deletes
    the ones it did not rewrite), then removes the old manifest, so nothing looks complete
    meanwhile."""
    record_previous(storage, dest)
    storage.delete(join(dest, MANIFEST_NAME))
    clear_progress(storage, dest)


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
        self.block_size, self.span = block_size, min(SPAN, block_size)
        dialect = Dialect.of(settings.delimiter, settings.quotechar)
        self.scanner = Scanner(dialect, strict=settings.strict, uri=source)
        self.header = b""
        self.bom = False
        self.data_start = 0  # where the first record after the header begins
        # Position, parser state and counters at the end of what has been consumed so far.
        self.offset = 0
        self.state = State.RECORD
        self.lines_before = 0
        self.rows_before = 0
        self.open_quote = (-1, 0)  # (offset, line) of the quote that opened the current field
        self.next_target = 0  # size mode: the chunk closes at the first record end from here
        self.pending_close = -1  # a boundary waiting for the byte after it (_header_swallows_lf)
        # The chunk being written.
        self.index = 0
        self.chunk_file: IO[bytes] | None = None
        self.chunk_stack = ExitStack()
        self.chunk_bytes = self.chunk_rows = self.chunk_offset = self.chunk_line = 0
        self.entries: list[ChunkEntry] = []
        self.assembly: dict[str, Any] | None = None  # set by a range split (s3split.split.parallel)

    # -- driving -------------------------------------------------------------------------------

    def run(self, resume: ResumeToken | None) -> SplitResult:
        try:
            with self.storage.open_source(self.info) as f:
                blocks = _blocks(f, self.block_size)
                rest: bytes | None = self._read_header(blocks)
                if resume is not None:
                    rest = self._seek(f, rest or b"", resume)
                    if rest is None:
                        blocks = _blocks(f, self.block_size)  # from the new position
                self._after_boundary(self.offset)
                self.on_progress(self.offset)  # the header (and what a resume skips)
                for block in itertools.chain([rest] if rest else [], blocks):
                    if self._feed(block):
                        return self._stopped()
                    self.on_progress(len(block))
            self._finish_last_chunk()
            return self._finished()
        except BaseException:
            self.chunk_stack.__exit__(*sys.exc_info())  # abort the half-written chunk
            raise

    def _feed(self, block: bytes) -> bool:
        """Scan ``block`` span by span and write it into chunks; True when asked to stop after
        a chunk (the rest of the block is read again by the next invocation)."""
        pos = 0
        while pos < len(block):
            end = _cut(block, pos + self.span)
            if self._feed_span(block, pos, end):
                return True
            pos = end
        return False

    def _feed_span(self, block: bytes, start: int, end: int) -> bool:
        data = block[start:end] if (start, end) != (0, len(block)) else block
        base, lines = self.offset, self.lines_before
        scan = self.scanner.scan(data, self.state, base, lines)
        ends = scan.ends + base
        if self.pending_close >= 0:
            boundary, self.pending_close = self.pending_close, -1
            if data[:1] != b"\n" and self._end_chunk(boundary):
                return True
        taken = 0  # record ends in this span already counted
        while (at := self._next_boundary(ends, taken)) >= 0:
            boundary = int(ends[at])
            self._write(data, self.offset - base, boundary - base)
            self._account(at + 1 - taken, scan.line_ends, base, lines, boundary)
            taken = at + 1
            if self._header_swallows_lf(data, boundary - base):
                if boundary - base == len(data):
                    self.pending_close = boundary  # decided by the next span's first byte
                    break
                continue
            if self._end_chunk(boundary):
                return True
        self._write(data, self.offset - base, len(data))
        self._account(len(ends) - taken, scan.line_ends, base, lines, base + len(data))
        self._note_state(scan, base, lines)
        return False

    def _next_boundary(self, ends: Positions, taken: int) -> int:
        """Index in ``ends`` of the record end where the current chunk closes, or -1."""
        if self.settings.chunk_rows:
            at = taken + max(self.settings.chunk_rows - self.chunk_rows, 1) - 1
        else:
            at = max(taken, int(np.searchsorted(ends, self.next_target)))
        return at if at < len(ends) else -1

    def _end_chunk(self, boundary: int) -> bool:
        """Close the chunk at ``boundary``; True when asked to stop there."""
        self._close_chunk()
        self._after_boundary(boundary)
        return self.should_stop()

    def _after_boundary(self, boundary: int) -> None:
        """Size mode: the next chunk closes at the first record end at or after the next
        multiple of the chunk size, counted from the end of the header."""
        if self.settings.chunk_size is not None:
            size = self.settings.chunk_size
            self.next_target = self.data_start + ((boundary - self.data_start) // size + 1) * size

    def _header_swallows_lf(self, data: bytes, at: int) -> bool:
        """A header that ends in a bare CR would swallow a chunk's first LF (csv.reader reads
        CR, LF as one line end), so no chunk may start with one: the chunk goes on past it
        (an LF at a record's start is an empty record). At the span's end: not known yet."""
        return self.header.endswith(b"\r") and data[at:at + 1] in (b"\n", b"")

    # -- writing -------------------------------------------------------------------------------

    def _write(self, data: bytes, start: int, end: int) -> None:
        """Append ``data[start:end]`` to the current chunk, opening it if needed."""
        if end <= start:
            return
        if self.chunk_file is None:
            self._open_chunk()
        assert self.chunk_file is not None
        self.chunk_file.write(memoryview(data)[start:end])
        self.chunk_bytes += end - start
        self.offset += end - start

    def _account(self, rows: int, line_ends: Positions, base: int, lines: int, upto: int) -> None:
        """Rows the current chunk gained, and the line ends before ``upto``."""
        self.chunk_rows += rows
        self.rows_before += rows
        self.lines_before = lines + int(np.searchsorted(line_ends, upto - base))

    def _note_state(self, scan: Scan, base: int, lines: int) -> None:
        self.state = scan.state
        if scan.state in (State.QUOTED, State.CLOSED):
            if scan.open_quote >= 0:
                at = scan.open_quote
                self.open_quote = (base + at,
                                   lines + int(np.searchsorted(scan.line_ends, at)) + 1)
        else:
            self.open_quote = (-1, 0)

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
        if self.state is State.QUOTED:
            offset, line = self.open_quote
            raise UnterminatedQuote(
                f"{self.source}: unterminated quoted field: the quote at byte {offset} "
                f"(line {line}) is never closed")
        self.pending_close = -1
        if self.chunk_file is not None:
            if self.state.in_record:  # a last record without a line end
                self.chunk_rows += 1
                self.rows_before += 1
            self._close_chunk()

    # -- the source's start ----------------------------------------------------------------------

    def _read_header(self, blocks: Iterator[bytes]) -> bytes:
        """Read the BOM and header record; return the bytes read past them."""
        buf = b""
        while len(buf) < len(BOM) and (more := next(blocks, b"")):
            buf += more  # a block smaller than the BOM (or a short read) must not hide it
        self.bom = buf.startswith(BOM)
        start = end = len(BOM) if self.bom else 0
        lines = 0
        if self.settings.header:
            buf, end, lines = self._header_end(blocks, buf, start)
        self.header = buf[start:end]
        self.offset = self.data_start = end
        self.lines_before = lines
        self.state = State.RECORD
        return buf[end:]

    def _header_end(self, blocks: Iterator[bytes], buf: bytes,
                    start: int) -> tuple[bytes, int, int]:
        """The buffer read so far, where the header record ends in it and the line ends in
        the header. Scanned in pieces that grow from 4 KiB (a header is usually short, and the
        block it is in is scanned again as data), each byte once however many blocks the
        header takes."""
        state, scanned, piece, opened, lines = State.RECORD, start, 4096, start, 0
        while True:
            if scanned < len(buf):
                end = _cut(buf, scanned + piece)
                scan = self.scanner.scan(buf[scanned:end], state, scanned, lines)
                if len(scan.ends):
                    at = int(scan.ends[0])
                    return buf, scanned + at, lines + int(np.searchsorted(scan.line_ends, at))
                lines += len(scan.line_ends)
                if scan.open_quote >= 0:
                    opened = scanned + scan.open_quote
                state, scanned, piece = scan.state, end, min(piece * 4, SPAN)
                continue
            more = next(blocks, b"")
            if not more:
                self.state = state
                if state is State.QUOTED:
                    self.open_quote = (opened, 1 + _line_ends_in(buf[start:opened]))
                    self._finish_last_chunk()  # raises UnterminatedQuote
                return buf, len(buf), lines
            if len(buf) > HEADER_LIMIT:
                raise HeaderTooLong(f"{self.source}: no end of the header record in the "
                                    f"first {len(buf)} bytes")
            buf += more

    def _seek(self, f: IO[bytes], rest: bytes, token: ResumeToken) -> bytes | None:
        """Move to the token's offset; return what is already read beyond it, or None when
        the stream was moved (its blocks are then read anew)."""
        if token.offset < self.offset:
            raise InvalidOption(f"resume offset {token.offset} lies inside the header")
        read_to = self.offset + len(rest)
        remaining: bytes | None = None
        if token.offset <= read_to:
            remaining = rest[token.offset - self.offset:]
        elif f.seekable():
            f.seek(token.offset)
        else:  # a compressed stream: decompress and drop
            skip = token.offset - read_to
            while skip > 0:
                dropped = len(f.read(min(skip, self.block_size)))
                if not dropped:
                    raise SourceChanged(f"{self.source} ends before resume offset {token.offset}")
                skip -= dropped
        self.offset = token.offset
        self.index = token.next_index
        self.rows_before = token.rows_before
        self.lines_before = token.lines_before
        return remaining

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
                            len(self.header), self.bom, entries, self.assembly)
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
        """Progress segments, and the parts earlier splits of this dest listed beyond ``count``."""
        clear_progress(self.storage, self.dest)
        self.storage.remove_empty_directory(join(self.dest, PROGRESS_DIR))
        remove_leftovers(self.storage, self.dest, self.source, count)


def _blocks(f: IO[bytes], size: int) -> Iterator[bytes]:
    """The stream's blocks, none ending in the CR of a CRLF: the last CR of a block waits for
    the next (the scanner must see what follows a CR to know whether it ends a line)."""
    carry = b""
    while True:
        block = f.read(size)
        if not block:
            if carry:
                yield carry
            return
        block = carry + block if carry else block
        carry = b""
        if block.endswith(b"\r"):
            block, carry = block[:-1], b"\r"
        if block:
            yield block


def _cut(block: bytes, at: int) -> int:
    """A span end at or after ``at`` (the block's end at most) that does not cut a CRLF."""
    if at >= len(block):
        return len(block)
    return at + 1 if block[at - 1:at + 1] == b"\r\n" else at


def _line_ends_in(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
