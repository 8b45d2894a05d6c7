"""Streaming split of one CSV source into header-repeating chunk files.

The source is read in large blocks; the ``Scanner`` finds record ends in each
block, so memory stays at a few blocks whatever the file size. A chunk closes at
the first record end at or after its target (bytes or rows). The split can stop
after any chunk and hand back a ``ResumeToken``; ``split(..., resume=token)``
continues from there, and the chunks are the same as in one pass.
"""

import itertools
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO, Any, NoReturn, cast

import numpy as np

from s3split.errors import HeaderTooLong, InvalidOption, SourceChanged, UnterminatedQuote
from s3split.split import sniff
from s3split.split.boundaries import next_target, swallowed_by_header
from s3split.split.destination import (
    check_destination,
    check_source,
    clear_progress,
    record_previous,
    remove_leftovers,
    remove_temporaries,
)
from s3split.split.dialect import Dialect, validate_settings
from s3split.split.encoding import (
    FROM_BOM,
    PEEK,
    Transcoder,
    bom_of,
    choose,
    codec_name,
    peek,
    replay,
)
from s3split.split.manifest import (
    MANIFEST_NAME,
    SOURCE_OFFSETS,
    UTF8_OFFSETS,
    ChunkEntry,
    Manifest,
    ResumeToken,
    SourceFormat,
    SplitSettings,
    chunk_name,
)
from s3split.split.scanner import Scanner, State, Survey
from s3split.split.utf8 import Utf8Check, compressed, line_ends, not_utf8
from s3split.storage import ObjectInfo, Storage, is_compressed, is_s3, join

SPAN = 1024 * 1024  # scanned at a time: the scanner's work arrays stay cache-sized
BLOCK = SPAN  # read at a time: a block of one span is scanned as read (a span cut from a
# larger block would be a copy)
HEADER_LIMIT = 64 * 1024 * 1024
BOM = b"\xef\xbb\xbf"
PROGRESS_DIR = "_split"
CHUNK_TAGS = {"s3split-object": "chunk"}  # the deployment's lifecycle rule expires these
RANGES_FROM = 32 * 1024 * 1024  # smaller sources: starting processes costs more than it saves
LINE_END = re.compile(rb"\r\n?|\n")


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
    copied out of the source (``s3split.split.local_ranges``); the chunks and manifest are the same.

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
        clear_previous(storage, dest)
    run = SplitRun(source, dest, settings, storage, info, should_stop, on_progress, block_size)
    try:
        if resume is None and _in_ranges(source, dest, settings, info, jobs, cuts, storage):
            from s3split.split.local_ranges import (
                split_in_ranges,  # (and multiprocessing) only here
            )
            return split_in_ranges(run, jobs, cuts)
        return run.run(resume)
    except SourceChanged:
        raise
    except Exception:
        storage.check_still(info)  # a rewritten file fails as that, not as the bad CSV it became
        raise


def _in_ranges(source: str, dest: str, settings: SplitSettings, info: ObjectInfo, jobs: int,
               cuts: Sequence[int] | None, storage: Storage) -> bool:
    """Whether the range split applies: asked for (``jobs`` > 1 on a source of at least
    ``RANGES_FROM`` bytes, or explicit ``cuts``) and possible: rows mode counts records in
    order, and compressed, transcoded or S3 sources (and S3 destinations) take the single
    pass."""
    asked = cuts is not None or (jobs > 1 and info.size >= RANGES_FROM)
    return (asked and not is_s3(source) and not is_s3(dest)
            and range_split_applies(source, settings, info, storage))


def range_split_applies(source: str, settings: SplitSettings, info: ObjectInfo,
                        storage: Storage, min_size: int = 0) -> bool:
    """Whether ``source`` may be split in ranges (by processes here, by the state machine's
    steps, or by S3 assembling the chunks), giving the single pass's chunks: by size (rows
    mode counts records in order), at least ``min_size`` bytes, read as stored (a compressed
    stream cannot be read from the middle) and not transcoded (a range of another encoding
    cannot be found without decoding all that precedes it)."""
    return (settings.chunk_size is not None and info.size >= min_size
            and not is_compressed(source) and not transcodes(settings, info, storage))


def transcodes(settings: SplitSettings, info: ObjectInfo, storage: Storage) -> bool:
    """Whether the source is read transcoded (``encoding``): another encoding given, or a
    UTF-16/32 byte order mark (its first bytes read to see)."""
    return other_encoding(settings) or starts_transcoded(settings, storage.read_head(info, PEEK))


def other_encoding(settings: SplitSettings) -> bool:
    return settings.encoding is not None and codec_name(settings.encoding) != "utf-8"


def starts_transcoded(settings: SplitSettings, start: bytes) -> bool:
    """``transcodes`` for a source whose first ``encoding.PEEK`` bytes are ``start``."""
    found = bom_of(start)
    return other_encoding(settings) or (found is not None and found[1] != "utf-8")


def _check_same_source(info: ObjectInfo, token: ResumeToken) -> None:
    if (token.source_etag, token.source_size) != (info.etag, info.size):
        raise SourceChanged(
            f"{info.uri} changed since the split started "
            f"(etag {token.source_etag} size {token.source_size} -> etag {info.etag} "
            f"size {info.size}); start the split again"
        )


def clear_previous(storage: Storage, dest: str) -> None:
    """A fresh split first notes the parts earlier splits left (the finished split deletes
    the ones it did not rewrite), then removes the old manifest, so nothing looks complete
    meanwhile."""
    record_previous(storage, dest)
    storage.delete(join(dest, MANIFEST_NAME))
    clear_progress(storage, dest)


class SplitRun:
    """One split of a source into a destination: the single pass itself, and the state the
    range splits (``parallel``, ``staged``) share with it: they read the header with
    :meth:`read_header` (through ``read_start``) or take it (:meth:`start_after`), and end with
    :meth:`finish_ranges`, which checks the source, removes an earlier split's leftovers and
    writes the manifest last."""

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
        # How the source is read: found at its start (``_open``, ``_read_header``).
        self.scanner = Scanner(Dialect.of(settings.delimiter or ",", settings.quotechar),
                               strict=settings.strict, uri=source)
        self.format = SourceFormat()
        self.encoding = ("utf-8", "default")
        self.transcoder: Transcoder | None = None
        self.utf8: Utf8Check | None = None
        self.ended = False  # the source's blocks are all read (while reading its start)
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
        self.pending_close = -1  # a boundary waiting for the byte after it (swallowed_by_header)
        # The chunk being written.
        self.index = 0
        self.chunk_file: IO[bytes] | None = None
        self.chunk_stack = ExitStack()
        self.chunk_bytes = self.chunk_rows = self.chunk_offset = self.chunk_line = 0
        self.entries: list[ChunkEntry] = []
        self.assembly: dict[str, Any] | None = None  # set by a range split (local_ranges)

    # -- driving -------------------------------------------------------------------------------

    def run(self, resume: ResumeToken | None) -> SplitResult:
        try:
            with self.storage.open_source(self.info) as raw:
                f = self.open_text(raw)
                blocks = _blocks(f, self.block_size)
                rest: bytes | None = self.read_header(blocks)
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
            self.finish_last_chunk()
            return self.finish()
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
        if self.utf8 is not None and (bad := self.utf8.check(data, base)) >= 0:
            self._not_utf8(data, base, lines, bad)
        # (rows mode may close a chunk at every few records: their ends listed, each a step)
        survey = self.scanner.survey(data, self.state, base, lines,
                                     listed=self.settings.chunk_rows is not None)
        if self.pending_close >= 0:
            boundary, self.pending_close = self.pending_close, -1
            if data[:1] != b"\n" and self._end_chunk(boundary):
                return True
        done = taken = 0  # the offset (in the span) and count of the record ends written
        while (at := self._next_boundary(survey, base, done, taken)) >= 0:
            self._write(data, self.offset - base, at)
            rows = survey.ends_upto(at)
            self._account(rows - taken, survey, lines, at)
            done, taken = at, rows
            if swallowed_by_header(self.header, data[at:at + 1]):
                if at == len(data):
                    self.pending_close = base + at  # decided by the next span's first byte
                    break
                continue
            if self._end_chunk(base + at):
                return True
        self._write(data, self.offset - base, len(data))
        self._account(survey.rows - taken, survey, lines, len(data))
        self._note_state(survey, base, lines)
        return False

    def _not_utf8(self, data: bytes, base: int, lines: int, bad: int) -> None:
        """Fail at byte ``bad``, after the CSV errors before it (each error is the first in
        the source, whatever the blocks: the range split raises the same)."""
        before = data[:max(bad - base, 0)]
        self._check_csv(before, base, lines)
        assert self.utf8 is not None
        raise not_utf8(self.source, bad, lines + line_ends(before) + 1, self.utf8.byte)

    def _check_csv(self, data: bytes, base: int, lines: int) -> None:
        """Scan ``data`` (at ``base``, after ``lines`` line ends) from the current state, span
        by span (the scanner's work arrays stay span-sized): raises its ``MalformedCsv``."""
        state, pos = self.state, 0
        while pos < len(data):
            end = _cut(data, pos + self.span)
            scan = self.scanner.scan(data[pos:end], state, base + pos, lines)
            state, lines, pos = scan.state, lines + len(scan.line_ends), end

    def _next_boundary(self, survey: Survey, base: int, done: int, taken: int) -> int:
        """The record end (an offset in the span at ``base``) where the current chunk closes,
        or -1; ``done``, ``taken``: the offset and count of the span's record ends written."""
        if self.settings.chunk_rows:
            return survey.nth_end(taken + max(self.settings.chunk_rows - self.chunk_rows, 1) - 1)
        return survey.end_from(max(self.next_target - base, done + 1))

    def _end_chunk(self, boundary: int) -> bool:
        """Close the chunk at ``boundary``; True when asked to stop there."""
        self._close_chunk()
        self._after_boundary(boundary)
        return self.should_stop()

    def _after_boundary(self, boundary: int) -> None:
        if self.settings.chunk_size is not None:  # (the rule: boundaries.py)
            self.next_target = next_target(self.data_start, self.settings.chunk_size, boundary)

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

    def _account(self, rows: int, survey: Survey, lines: int, upto: int) -> None:
        """Rows the current chunk gained, and the line ends before ``upto`` (in the span)."""
        self.chunk_rows += rows
        self.rows_before += rows
        self.lines_before = lines + survey.lines_before(upto)

    def _note_state(self, survey: Survey, base: int, lines: int) -> None:
        self.state = survey.state
        if survey.state in (State.QUOTED, State.CLOSED):
            if survey.open_quote >= 0:
                at = survey.open_quote
                self.open_quote = (base + at, lines + survey.lines_before(at) + 1)
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

    def finish_last_chunk(self) -> None:
        """Close the last chunk (UnterminatedQuote where the source ends inside quotes)."""
        if self.state is State.QUOTED:
            self.unterminated(self.open_quote)
        if self.utf8 is not None and (bad := self.utf8.finish(self.offset)) >= 0:
            raise not_utf8(self.source, bad, self.lines_before + 1, self.utf8.byte)
        self.pending_close = -1
        if self.chunk_file is not None:
            if self.state.in_record:  # a last record without a line end
                self.chunk_rows += 1
                self.rows_before += 1
            self._close_chunk()

    def unterminated(self, open_quote: tuple[int, int]) -> NoReturn:
        """UnterminatedQuote: the source ends inside the quoted field opened at
        ``open_quote`` (offset, line)."""
        offset, line = open_quote
        raise UnterminatedQuote(
            f"{self.source}: unterminated quoted field: the quote at {self.scanner.unit} "
            f"{offset} (line {line}) is never closed")

    # -- the source's start ----------------------------------------------------------------------

    def open_text(self, raw: IO[bytes]) -> IO[bytes]:
        """The source's text as UTF-8 bytes: ``raw`` itself (its first bytes read again) or,
        for another encoding, transcoded (``s3split.split.encoding``)."""
        start = peek(raw)
        encoding, origin, mark = choose(self.source, start, self.settings.encoding)
        self.encoding = (encoding, origin)
        if encoding == "utf-8":
            if not (self.settings.skip_lines or is_compressed(self.source)) and \
                    (error := compressed(self.source, start)):
                raise error
            self.utf8 = Utf8Check()
            return replay(raw, start)
        self.bom = mark > 0
        self.transcoder = Transcoder(replay(raw, start[mark:]), encoding, self.source, mark,
                                     origin)
        self.scanner.unit = "UTF-8 byte"
        return cast(IO[bytes], self.transcoder)  # (reads as a byte stream does)

    def read_header(self, blocks: Iterator[bytes]) -> bytes:
        """Read the BOM, the preamble (``skip_lines``, a ``sep=`` line) and the header
        record, settling the delimiter; return the bytes read past them."""
        buf = self._fill(blocks, b"", len(BOM))  # a block smaller than the BOM must not hide it
        self.bom = self.bom or buf.startswith(BOM)
        start = len(BOM) if buf.startswith(BOM) else 0
        buf, start, lines = self._skip_lines(blocks, buf, start)
        buf = self._fill(blocks, buf, start + sniff.SEP_LINE_MAX)
        sep = sniff.sep_line(buf[start:], self.ended)
        if sep is not None:
            start, lines = start + sep[1], lines + 1
        if sep is None and self.settings.delimiter is None:  # (to guess it from)
            buf = self._fill(blocks, buf, start + sniff.SAMPLE)
        delimiter, origin = self._delimiter(buf[start:start + sniff.SAMPLE], sep)
        dialect = Dialect.of(delimiter, self.settings.quotechar)
        self.scanner = Scanner(dialect, strict=self.settings.strict, uri=self.source,
                               unit=self.scanner.unit)
        end, header_start = start, lines
        if self.settings.header:  # (found leniently: its pieces may reach past the header)
            lenient = Scanner(dialect, uri=self.source, unit=self.scanner.unit)
            buf, end, lines = self._header_end(blocks, buf, start, lines, lenient)
        self.header = buf[start:end]
        self._check_header(start, header_start)
        self.offset = self.data_start = end
        self.lines_before = lines
        self.state = State.RECORD
        self.format = SourceFormat(
            delimiter=delimiter, delimiter_from=origin, encoding=self.encoding[0],
            encoding_from=self.encoding[1],
            offsets=UTF8_OFFSETS if self.transcoder is not None else SOURCE_OFFSETS,
            skip_lines=self.settings.skip_lines, sep_line=sep is not None, data_start=end)
        return buf[end:]

    def _fill(self, blocks: Iterator[bytes], buf: bytes, size: int) -> bytes:
        """``buf`` with blocks added until it holds ``size`` bytes or the source ends."""
        while len(buf) < size and not self.ended:
            more = next(blocks, b"")
            self.ended = not more
            buf += more
        return buf

    def _skip_lines(self, blocks: Iterator[bytes], buf: bytes,
                    start: int) -> tuple[bytes, int, int]:
        """Drop ``skip_lines`` physical lines (LF, CRLF or CR each end one, quotes or not)."""
        wanted = self.settings.skip_lines
        for skipped in range(wanted):
            while (found := LINE_END.search(buf, start)) is None and not self.ended:
                if len(buf) > HEADER_LIMIT:  # (what is skipped is held until the header)
                    raise HeaderTooLong(f"{self.source}: the {wanted} lines to skip take more "
                                        f"than {len(buf)} bytes (line {skipped + 1} has no end)")
                buf = self._fill(blocks, buf, len(buf) + 1)
            if found is None and start == len(buf):
                raise InvalidOption(f"{self.source}: --skip-lines {wanted} drops more lines "
                                    f"than it has ({skipped}); pass at most {skipped}")
            start = found.end() if found is not None else len(buf)
        return buf, start, wanted

    def _delimiter(self, sample: bytes, sep: tuple[str, int] | None) -> tuple[str, str]:
        """The delimiter and where it came from: a ``sep=`` line, the option, or the guess
        (``sniff``); an option that contradicts the ``sep=`` line is refused."""
        given = self.settings.delimiter
        if sep is not None:
            if given is not None and given != sep[0]:
                raise InvalidOption(
                    f"{self.source}: its sep={sniff.shown(sep[0])} line sets the delimiter "
                    f"{sniff.shown(sep[0])!r}, but {sniff.option(given)} was given; drop "
                    f"--delimiter (or pass {sniff.option(sep[0])})")
            return sep[0], "sep line"
        if given is not None:
            return given, "option"
        found = sniff.detect(sample, self.ended and len(sample) < sniff.SAMPLE,
                             self.settings.quotechar, self.source)
        return (found, "detected") if found is not None else (",", "default: one column")

    def _check_header(self, start: int, lines: int) -> None:
        """The header's errors in the order the data's are raised: a ``--strict`` one or a
        byte UTF-8 does not allow, the first in the source first; a quoted field the source's
        end leaves open; a character the end cuts short (a header ends at a line end, or
        where the source ends). ``lines``: the line ends before the header."""
        if self.utf8 is not None and (bad := self.utf8.check(self.header, start)) >= 0:
            self._not_utf8(self.header, start, lines, bad)
        if self.scanner.strict:
            self._check_csv(self.header, start, lines)
        if self.open_quote[0] >= 0:
            self.state = State.QUOTED
            self.finish_last_chunk()  # raises UnterminatedQuote
        if self.utf8 is not None and (bad := self.utf8.finish(start + len(self.header))) >= 0:
            line = lines + line_ends(self.header[:bad - start]) + 1
            raise not_utf8(self.source, bad, line, self.utf8.byte)

    def _header_end(self, blocks: Iterator[bytes], buf: bytes, start: int, before: int,
                    scanner: Scanner) -> tuple[bytes, int, int]:
        """The buffer read so far, where the header record ends in it and the line ends in
        the header; a quoted field the source's end leaves open is noted (``open_quote``).
        Scanned in pieces that grow from 4 KiB (a header is usually short, and the block it
        is in is scanned again as data), each byte once however many blocks the header
        takes."""
        state, scanned, piece, opened, lines = State.RECORD, start, 4096, start, before
        while True:
            if scanned < len(buf):
                end = _cut(buf, scanned + piece)
                scan = scanner.scan(buf[scanned:end], state, scanned, lines)
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
                if state is State.QUOTED:
                    self.open_quote = (opened, before + 1 + _line_ends_in(buf[start:opened]))
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

    def start_after(self, header: bytes, bom: bool, data_start: int, fmt: SourceFormat) -> None:
        """Take the header a split read earlier (a range split's later step)."""
        self.header, self.bom, self.data_start, self.format = header, bom, data_start, fmt

    def finish_ranges(self, entries: list[ChunkEntry], assembly: dict[str, Any]) -> SplitResult:
        """A range split's end: its chunks (``entries``, how they were written: ``assembly``)
        cover the whole source; then :meth:`finish`."""
        self.entries, self.assembly, self.offset = entries, assembly, self.info.size
        return self.finish()

    def finish(self) -> SplitResult:
        """The manifest, written last, once the source is checked unchanged."""
        read = self.transcoder.source_bytes if self.transcoder is not None else self.offset
        self.storage.check_unchanged(self.info, read)
        entries = self._earlier_entries() + self.entries
        if [e.index for e in entries] != list(range(len(entries))):
            raise SourceChanged(f"{self.dest}: chunk records of an earlier invocation are missing")
        manifest = Manifest(self.info, self.settings, self.header.decode("utf-8", "replace"),
                            len(self.header), self.bom, entries, format=self.format,
                            assembly=self.assembly)
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


def read_start(run: SplitRun, raw: IO[bytes]) -> None:
    """What a range split reads before its ranges: the encoding, preamble and header as the
    single pass reads them. A transcoded source cannot be cut in ranges (``transcodes``
    routes it to the single pass); one found here changed since it was asked."""
    f = run.open_text(raw)
    if run.transcoder is not None and run.encoding[1] == FROM_BOM:
        raise SourceChanged(f"{run.source} now starts with the byte order mark of "
                            f"{run.transcoder.encoding}: it changed since the split started; "
                            "start the split again")
    if run.transcoder is not None:
        raise InvalidOption(f"{run.source}: a source read as {run.transcoder.encoding} takes "
                            "the single pass, not the range split")
    run.read_header(_blocks(f, run.block_size))


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
