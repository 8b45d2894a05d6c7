"""The parallel split's core: chunk boundaries from independent scans of byte ranges.

Chunk ``k`` closes at the first record end at or after ``data_start + k * chunk_size``
(empty chunks dropped), the sequential splitter's definition, so a scanner that knows only
its range can find the boundaries in it. Three pure steps, each small and picklable:

* ``plan_ranges`` cuts ``[data_start, size)`` into ranges (``Plan``).
* ``scan_range`` scans one range, once for each state it may start in, into a ``RangeScan``:
  per start state a ``Piece`` (end state, the boundaries in the range, rows and line ends).
* ``combine`` folds the scans left to right, each range's start state being the previous
  one's end state, into the chunk ``Table``.

**Where a range starts.** A planned cut moves forward to just after the next line end (an
LF, or a CR not followed by an LF): both ranges on either side compute the same point from
the bytes alone, no cut falls between the CR and LF of a CRLF, and after a line end the
parser can only be at a record's start (``RECORD``) or inside a quoted field (``QUOTED``).
So each range is scanned from at most two states, block by block; once both scans stand in
the same state after a block, the rest is scanned once (convergence: with csv.reader's
lenient rules a scan started on the wrong side of a quote falls in step within a few
fields, so the first block of such a range is only a sixteenth of the others). A block
without a quote leaves a ``QUOTED`` scan where it was, uncounted.

A range looks for its start only up to the next cut: with no line end there it is empty
(its bytes belong to the range before, which reads on to the next line end), so a long
stretch without line ends is read about three times in all, not once per range over it.

**Errors.** A ``--strict`` scan that fails is only a failure if the combine chooses it: the
piece records the block it failed in, and ``raise_failure`` scans that block again from the
chosen state with the real line count, raising exactly the sequential split's error. An
``UnterminatedQuote`` is raised by the caller from the table's end state and open quote.
"""

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from s3split.errors import MalformedCsv, SourceChanged
from s3split.split.boundaries import before_lf, next_target, target_between
from s3split.split.dialect import Dialect
from s3split.split.scanner import Scanner, State, Survey
from s3split.split.utf8 import Utf8Check, line_ends

LF, CR = 0x0A, 0x0D
BLOCK: Final = 1024 * 1024  # read and scanned at a time (the scanner's arrays stay cache-sized)
SNAP_READ: Final = 64 * 1024  # read at a time while looking for a range's first line end
# The first block of a range scanned from two states is 1/SETTLE of a block: the two usually
# fall in step within a few records, and from there on the range is scanned once.
SETTLE: Final = 16
QUOTED_STATES: Final = (State.QUOTED, State.CLOSED)

Reader = Callable[[int, int], bytes]
"""``read(offset, length)``: ``length`` bytes of the source from ``offset`` (fewer at its end)."""


@dataclass(frozen=True)
class Plan:
    """What every range scan needs to know about the split (small; sent to each worker)."""

    uri: str
    size: int  # the source's size: the last range ends there
    data_start: int  # where the first record after the header begins
    chunk_size: int
    cuts: tuple[int, ...]  # planned range starts: data_start first, then increasing
    delimiter: str = ","
    quotechar: str = '"'
    strict: bool = False
    header_cr: bool = False  # the header ends in a bare CR: no chunk may start with an LF
    block: int = BLOCK

    @property
    def count(self) -> int:
        return len(self.cuts)

    def scanner(self) -> Scanner:
        return Scanner(Dialect.of(self.delimiter, self.quotechar), strict=self.strict,
                       uri=self.uri)


def plan_ranges(uri: str, size: int, data_start: int, chunk_size: int, ranges: int, *,
                cuts: Sequence[int] | None = None, delimiter: str = ",", quotechar: str = '"',
                strict: bool = False, header_cr: bool = False, block: int = BLOCK) -> Plan:
    """``ranges`` equal ranges of ``[data_start, size)``, or the given ``cuts`` (any offsets;
    those outside the data are dropped)."""
    if cuts is None:
        span, count = max(size - data_start, 0), max(ranges, 1)
        cuts = [data_start + span * i // count for i in range(count)]
    inside = sorted({c for c in cuts if data_start < c < size})
    return Plan(uri, size, data_start, chunk_size, (data_start, *inside), delimiter, quotechar,
                strict, header_cr, block)


@dataclass(frozen=True)
class Mark:
    """A record end that closes a chunk, with the counts from its piece's start."""

    offset: int  # the record end (exclusive): the next chunk starts here
    rows: int  # record ends in (piece start, offset]
    lines: int  # line ends in [piece start, offset)


@dataclass(frozen=True)
class Failure:
    """Where a ``--strict`` scan failed: the block ``[start, end)``, the parser's state at its
    start and the line ends before it (counted from its piece's start)."""

    start: int
    end: int
    state: State
    lines: int


@dataclass(frozen=True)
class Piece:
    """One scan of ``[start, end)`` from one start state; counts are from ``start``.

    ``first``: the first record end that may close a chunk (for a chunk target carried from
    before the piece); ``marks``: the chunk boundaries of the targets in ``(start, end]``;
    ``pending``: a target in ``(start, end]`` has no record end after it in the piece;
    ``open_quote``: (offset, line ends before it) of the quote that opened the field still
    open at the end, when it lies in the piece.
    """

    start: int
    end: int
    state: State
    rows: int = 0
    lines: int = 0
    first: Mark | None = None
    marks: tuple[Mark, ...] = ()
    pending: bool = False
    open_quote: tuple[int, int] | None = None
    failure: Failure | None = None


class Fold:
    """Pieces joined left to right (each starting where the last ended, in its end state)."""

    def __init__(self, start: int, state: State) -> None:
        self.start = self.end = start
        self.state = state
        self.rows = self.lines = 0
        self.first: Mark | None = None
        self.marks: list[Mark] = []
        self.pending = False
        self.open_quote: tuple[int, int] | None = None
        self.failure: Failure | None = None

    def add(self, q: Piece) -> None:
        assert q.start == self.end, (q.start, self.end)
        if self.failure is not None:
            return
        if self.first is None and q.first is not None:
            self.first = self._shift(q.first)
        if self.pending and q.first is not None:
            self.marks.append(self._shift(q.first))  # a target carried into this piece
        for mark in q.marks:
            if not self.marks or self.marks[-1].offset != mark.offset:
                self.marks.append(self._shift(mark))
        self.pending = q.pending or (self.pending and q.first is None)
        if q.state in QUOTED_STATES:
            if q.open_quote is not None:
                self.open_quote = (q.open_quote[0], q.open_quote[1] + self.lines)
        else:
            self.open_quote = None
        if q.failure is not None:
            f = q.failure
            self.failure = Failure(f.start, f.end, f.state, f.lines + self.lines)
        self.rows += q.rows
        self.lines += q.lines
        self.end, self.state = q.end, q.state

    def _shift(self, mark: Mark) -> Mark:
        return Mark(mark.offset, mark.rows + self.rows, mark.lines + self.lines)

    def piece(self) -> Piece:
        return Piece(self.start, self.end, self.state, self.rows, self.lines, self.first,
                     tuple(self.marks), self.pending, self.open_quote, self.failure)


@dataclass(frozen=True)
class Invalid:
    """The first byte UTF-8 does not allow: its offset, the line ends before it (from its
    range's start, or absolute in a ``Table``), its value, and whether it starts a
    character the source's end cut short (the single pass finds that one last)."""

    offset: int
    lines: int
    byte: int
    at_end: bool = False


@dataclass(frozen=True)
class RangeScan:
    """What one range holds, for each state it may start in; an ``empty`` range (no line
    end between its cut and the next) holds nothing: its bytes are its predecessor's."""

    index: int
    start: int
    end: int
    pieces: dict[State, Piece] = field(default_factory=dict)
    empty: bool = False
    invalid: Invalid | None = None  # (the same from any start state)


# -- scanning one range ------------------------------------------------------------------------


def read_exact(read: Reader, plan: Plan, offset: int, length: int) -> bytes:
    """``length`` bytes from ``offset`` (clipped to the source's size); a short read means
    the source shrank during the split."""
    length = max(min(length, plan.size - offset), 0)
    data = read(offset, length) if length else b""
    if len(data) != length:
        raise SourceChanged(f"{plan.uri} changed during the split: {length} bytes at byte "
                            f"{offset} were expected, {len(data)} could be read (it had "
                            f"{plan.size} when the split started); start the split again")
    return data


def range_start(read: Reader, plan: Plan, index: int) -> int:
    """Where range ``index`` really starts: its cut, moved to just after a line end."""
    if index == 0:
        return plan.data_start
    if index >= plan.count:
        return plan.size
    return snap(read, plan, plan.cuts[index])


def snap(read: Reader, plan: Plan, cut: int) -> int:
    """The first offset at or after ``cut`` that follows a line end (or the source's end)."""
    found = snap_before(read, plan, cut, plan.size)
    return plan.size if found is None else found


def snap_before(read: Reader, plan: Plan, cut: int, limit: int) -> int | None:
    """``snap(cut)`` if it lies before ``limit``, else None; reads only ``[cut - 1, limit)``."""
    pos = cut - 1  # the byte before the cut may already be the line end
    while pos < limit - 1:  # (a line end at limit - 1 or later ends at or after the limit)
        # (+ the byte after, for a CR)
        buf = read_exact(read, plan, pos, min(SNAP_READ + 1, limit - pos))
        at = _first_line_end(buf, complete=pos + len(buf) >= plan.size)
        if at >= 0:
            return pos + at + 1 if pos + at + 1 < limit else None
        pos += max(len(buf) - 1, 1)
    return None


def own_start(read: Reader, plan: Plan, index: int) -> int | None:
    """Where range ``index`` starts, or None when no line end lies between its cut and the
    next one (or the source's end): then it starts where the next range starts, so it is
    empty, and its predecessor's scan reads on over its bytes; looking only that far keeps
    a source without line ends over many ranges linear in reading."""
    if index == 0:
        return plan.data_start
    limit = plan.cuts[index + 1] if index + 1 < plan.count else plan.size
    return snap_before(read, plan, plan.cuts[index], limit)


def _first_line_end(buf: bytes, complete: bool) -> int:
    """The first LF or bare CR in ``buf`` whose kind is known from ``buf`` (a CR at its end
    is bare only when ``buf`` ends the source), or -1."""
    lf, cr = buf.find(b"\n"), buf.find(b"\r")
    while cr >= 0 and (lf < 0 or cr < lf):
        if cr + 1 < len(buf):
            if buf[cr + 1] != LF:
                return cr
            return cr + 1  # the LF of a CRLF
        return cr if complete else -1
    return lf


def scan_range(read: Reader, plan: Plan, index: int) -> RangeScan:
    """Scan range ``index`` from each state it may start in (see module docstring)."""
    start = own_start(read, plan, index)
    if start is None:
        return RangeScan(index, plan.cuts[index], plan.cuts[index], empty=True)
    end = range_start(read, plan, index + 1)
    states = (State.RECORD,) if index == 0 else (State.RECORD, State.QUOTED)
    if end <= start:  # (at the source's end, after a range that ended in any state)
        return RangeScan(index, start, start, {s: Piece(start, start, s) for s in State})
    scanner = plan.scanner()
    tracks = [_Track([s], s, Fold(start, s)) for s in states]
    done: dict[State, list[Piece]] = {s: [] for s in states}
    quote = plan.quotechar.encode()
    first = max(1, plan.block // SETTLE) if len(tracks) > 1 else plan.block
    utf8, lines, invalid = Utf8Check(), 0, None
    for base, data, after in _range_blocks(read, plan, start, end, first):
        if invalid is None and (bad := utf8.check(data, base)) >= 0:
            invalid = Invalid(bad, lines + line_ends(data[:max(bad - base, 0)]), utf8.byte)
        has_quote = quote in data
        counted = -1  # the block's line ends, once a scan counted them (the same from any state)
        # (the scans first: a quoted field without a quote in the block takes their count)
        for track in sorted(tracks, key=lambda t: t.state is State.QUOTED and not has_quote):
            if track.fold.failure is None:
                piece = _scan_block(scanner, plan, data, base, track.state, after, has_quote,
                                    counted)
                if piece.failure is None:
                    counted = piece.lines
                track.fold.add(piece)
                track.state = track.fold.state
        lines += counted if counted >= 0 else line_ends(data)
        tracks = _merge(tracks, done, base + len(data))
    for track in tracks:
        for s in track.starts:
            done[s].append(track.fold.piece())
    if invalid is None and (bad := utf8.finish(end)) >= 0:  # (only the last range's may)
        invalid = Invalid(bad, lines, utf8.byte, at_end=True)
    return RangeScan(index, start, end, {s: _joined(done[s], start, s) for s in states},
                     invalid=invalid)


@dataclass
class _Track:
    """The scan of the start states ``starts``, which stand in one state from here on."""

    starts: list[State]
    state: State
    fold: Fold


def _merge(tracks: list[_Track], done: dict[State, list[Piece]], at: int) -> list[_Track]:
    """Tracks that stand in the same state at ``at`` (and have not failed) go on as one: what
    each scanned so far is set aside for its start states."""
    groups: dict[State, list[_Track]] = {}
    for track in tracks:
        if track.fold.failure is None:
            groups.setdefault(track.state, []).append(track)
    if all(len(group) == 1 for group in groups.values()):
        return tracks
    out = [t for t in tracks if t.fold.failure is not None]  # kept to the end as they are
    for state, group in groups.items():
        if len(group) == 1:
            out.extend(group)
            continue
        starts: list[State] = []
        for track in group:
            for s in track.starts:
                done[s].append(track.fold.piece())
            starts.extend(track.starts)
        out.append(_Track(starts, state, Fold(at, state)))
    return out


def _joined(pieces: list[Piece], start: int, state: State) -> Piece:
    fold = Fold(start, state)
    for piece in pieces:
        if piece.end > piece.start or piece.failure is not None:
            fold.add(piece)
    return fold.piece()


def _range_blocks(read: Reader, plan: Plan, start: int, end: int,
                  first: int) -> Iterator[tuple[int, bytes, bytes]]:
    """``(offset, block, the byte after it)`` over ``[start, end)``, the first block at most
    ``first`` bytes; no block ends between the CR and LF of a CRLF."""
    pos, block = start, min(first, plan.block)
    while pos < end:
        want = min(block, end - pos)
        block = plan.block
        # (the byte after in a read of its own: slicing it off a block would copy the block)
        data, after = read_exact(read, plan, pos, want), read_exact(read, plan, pos + want, 1)
        if data.endswith(b"\r") and after == b"\n":  # keep the CR with its LF
            if len(data) > 1:
                data, after = data[:-1], b"\r"
            else:
                data, after = data + after, read_exact(read, plan, pos + want + 1, 1)
        yield pos, data, after
        pos += len(data)


def _scan_block(scanner: Scanner, plan: Plan, data: bytes, base: int, state: State,
                after: bytes, has_quote: bool, lines: int) -> Piece:
    """One block from one state (``lines``: its line ends, when a scan of it from another
    state counted them; else -1)."""
    end = base + len(data)
    if state is State.QUOTED and not has_quote:  # nothing can close the field
        return Piece(base, end, state, lines=lines if lines >= 0 else line_ends(data),
                     pending=_targets_after(plan, base, end))
    try:
        survey = scanner.survey(data, state, base, 0)
    except MalformedCsv:
        return Piece(base, end, state, failure=Failure(base, end, state, 0))
    ends = _Eligible(survey, data, after, plan.header_cr)
    marks = _marks(plan, base, ends)
    first = ends.first_from(0)
    last = ends.last_before(len(data) + 1)
    open_quote = None
    if survey.state in QUOTED_STATES and survey.open_quote >= 0:
        open_quote = (base + survey.open_quote, survey.lines_before(survey.open_quote))
    return Piece(base, end, survey.state, survey.rows, survey.lines,
                 _mark(survey, first, base) if first >= 0 else None, marks,
                 _targets_after(plan, base + max(last, 0), end), open_quote)


class _Eligible:
    """The record ends of a block that may close a chunk: all of them, or where the header
    ends in a bare CR, those no LF follows (``after``: the byte after the block)."""

    def __init__(self, survey: Survey, data: bytes, after: bytes, header_cr: bool) -> None:
        self.survey, self.data, self.after, self.header_cr = survey, data, after, header_cr

    def first_from(self, at: int) -> int:
        end = self.survey.end_from(at)
        while end >= 0 and self._refused(end):
            end = self.survey.end_from(end + 1)
        return end

    def last_before(self, at: int) -> int:
        end = self.survey.end_before(at)
        while end >= 0 and self._refused(end):
            end = self.survey.end_before(end)
        return end

    def _refused(self, end: int) -> bool:
        return self.header_cr and before_lf(self.data, self.after, end)


def _marks(plan: Plan, base: int, ends: _Eligible) -> tuple[Mark, ...]:
    """The eligible record ends that are the first at or after a chunk target in the block:
    from each target, the first eligible end, and the next target is the first after it."""
    marks: list[Mark] = []
    target = next_target(plan.data_start, plan.chunk_size, base) - base
    while target <= len(ends.data) and (end := ends.first_from(target)) >= 0:
        marks.append(_mark(ends.survey, end, base))
        target = next_target(plan.data_start, plan.chunk_size, base + end) - base
    return tuple(marks)


def _mark(survey: Survey, end: int, base: int) -> Mark:
    return Mark(base + end, survey.ends_upto(end), survey.lines_before(end))


def _targets_after(plan: Plan, last: int, end: int) -> bool:
    """Whether a chunk target lies in ``(last, end]`` (it has no record end in the piece)."""
    return target_between(plan.data_start, plan.chunk_size, last, end)


# -- combining --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # source offset of the chunk's first record
    end: int
    rows: int
    source_line: int  # 1-based line of its first record


@dataclass(frozen=True)
class Table:
    """The chunks, the parser's state at the source's end and where the quoted field still
    open there began (offset, 1-based line); or the ``failure`` to raise instead."""

    chunks: tuple[Chunk, ...]
    state: State
    open_quote: tuple[int, int] | None = None
    failure: Failure | None = None
    invalid: Invalid | None = None  # the first byte UTF-8 does not allow (absolute line)


def combine(plan: Plan, header_lines: int, scans: Sequence[RangeScan]) -> Table:
    """Fold the range scans left to right into the chunk table (``header_lines``: the line
    ends before ``data_start``). A failure's ``lines`` are then absolute."""
    ordered = sorted(scans, key=lambda s: s.index)
    if [s.index for s in ordered] != list(range(plan.count)):
        raise ValueError(f"range scans {[s.index for s in ordered]} for {plan.count} ranges")
    combiner = Combiner(plan, header_lines)
    for scan in ordered:
        combiner.add(scan)
    return combiner.table()


class Combiner:
    """``combine`` as the scans arrive, in any order: each ``add`` folds what it can (the
    scans that follow the ones folded so far) and returns the chunks whose end is now known,
    so they can be written while later ranges are still scanned."""

    def __init__(self, plan: Plan, header_lines: int) -> None:
        self.plan, self.header_lines = plan, header_lines
        self.total = Fold(plan.data_start, State.RECORD)
        self.waiting: dict[int, RangeScan] = {}
        self.folded = 0  # ranges folded (in index order)
        self.chunks: list[Chunk] = []
        self.last = Mark(plan.data_start, 0, 0)  # where the next chunk starts
        self.invalid: Invalid | None = None

    def add(self, scan: RangeScan) -> list[Chunk]:
        if not self.folded <= scan.index < self.plan.count or scan.index in self.waiting:
            raise ValueError(f"range scan {scan.index} again, or not one of {self.plan.count}")
        self.waiting[scan.index] = scan
        while self.folded in self.waiting and self.total.failure is None:
            self._fold(self.waiting.pop(self.folded))
            self.folded += 1
        return self._new_chunks()

    def _fold(self, scan: RangeScan) -> None:
        if scan.empty:
            return
        if scan.start != self.total.end:
            raise ValueError(f"range {scan.index} starts at {scan.start}, not {self.total.end}")
        if scan.invalid is not None and self.invalid is None:
            i = scan.invalid
            self.invalid = Invalid(i.offset, self.header_lines + self.total.lines + i.lines + 1,
                                   i.byte, i.at_end)
        self.total.add(scan.pieces[self.total.state])

    def _new_chunks(self) -> list[Chunk]:
        if self.total.failure is not None:
            return []
        new: list[Chunk] = []
        for mark in self.total.marks[len(self.chunks):]:
            new.append(Chunk(len(self.chunks) + len(new), self.last.offset, mark.offset,
                             mark.rows - self.last.rows,
                             self.header_lines + self.last.lines + 1))
            self.last = mark
        self.chunks.extend(new)
        return new

    def table(self) -> Table:
        """The chunk table once every scan is in: the last chunk too (``add`` returns only
        chunks that end at a mark); or the failure."""
        total, header_lines = self.total, self.header_lines
        if total.failure is not None:
            f = total.failure
            return Table((), f.state, None, Failure(f.start, f.end, f.state,
                                                    f.lines + header_lines), self.invalid)
        if self.folded != self.plan.count:
            raise ValueError(f"{self.folded} of {self.plan.count} range scans folded")
        if total.end != self.plan.size:
            raise ValueError(f"the ranges end at {total.end}, not at {self.plan.size}")
        chunks = list(self.chunks)
        last = self.last
        if last.offset < self.plan.size:
            rows = total.rows - last.rows + (1 if total.state.in_record else 0)
            chunks.append(Chunk(len(chunks), last.offset, self.plan.size, rows,
                                header_lines + last.lines + 1))
        open_quote = None
        if total.open_quote is not None:
            open_quote = (total.open_quote[0], header_lines + total.open_quote[1] + 1)
        return Table(tuple(chunks), total.state, open_quote, invalid=self.invalid)


def raise_failure(read: Reader, plan: Plan, failure: Failure, before: int | None = None) -> None:
    """Scan the failed block again from the chosen state, with the real line count: the
    scanner raises the sequential split's ``MalformedCsv``. With ``before`` (a byte UTF-8
    does not allow, which fails the split unless the CSV error comes first): only the bytes
    before it, and nothing raised means the CSV error lies after it."""
    end = failure.end if before is None else max(min(failure.end, before), failure.start)
    data = read_exact(read, plan, failure.start, end - failure.start)
    plan.scanner().scan(data, failure.state, failure.start, failure.lines)
    if before is None:
        raise AssertionError(f"{plan.uri}: the block at byte {failure.start} failed in a range "
                             "scan but not when scanned again")


# -- local sources ------------------------------------------------------------------------------


def pread_reader(fd: int) -> Reader:
    def read(offset: int, length: int) -> bytes:
        parts: list[bytes] = []
        while length > 0:
            got = os.pread(fd, length, offset)
            if not got:
                break
            parts.append(got)
            offset += len(got)
            length -= len(got)
        return b"".join(parts)
    return read


def scan_local_range(path: str, plan: Plan, index: int) -> RangeScan:
    """``scan_range`` of a local file, opened here (a worker process's task)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return scan_range(pread_reader(fd), plan, index)
    finally:
        os.close(fd)
