"""Finding CSV record ends in raw bytes, exactly where Python's ``csv.reader`` finds them.

``csv.reader`` (``strict=False``, the default) is lenient, and the splitter must agree with
it on every byte string:

* a quote opens a quoted field only at the start of a field; inside an unquoted field it is
  data (``5'10"``);
* inside a quoted field a doubled quote is one quote; after the closing quote, other text
  continues the field unquoted (``"a"b`` is ``ab``), and a quote there is data again;
* outside quoted fields LF, CRLF and a bare CR each end a record.

**The parity rule.** In a file that quotes by RFC 4180, a byte is inside a quoted field exactly
when an odd number of quotes precede it, so record ends are the line ends with an even number
of quotes before them. That parity rule and the lenient rules disagree only at a quote that the
parity rule would take as opening a field but that follows other text in the field (a quote in
an unquoted field, or text after a closing quote followed by a quote): an anomaly.

**The fast path** (``_FastScan``) applies the parity rule alone, on bit arrays, 64 bytes a
step (``s3split.split.bits``): the quotes, LFs and CRs of the block as bits, the parity of the
quotes before each byte by a prefix xor, the record ends as the line ends (LFs, and CRs no LF
follows) with even parity, and one check that no quote the rule takes as opening a field
follows other text (the bytes before the openers gathered when under one quote in ``FEW``
bytes, else the delimiters as bits too). Almost every block of almost every file ends here,
in a few numpy passes over its bytes; its record ends are counted, and found one by one only
where asked (``survey``: a split needs the few that close chunks), or listed (``scan``).

**The exact path** takes a block with an anomaly: where an anomaly occurs the parser is
inside an unquoted field, which ends at the next delimiter or line end, and the parity rule
resumes from there, each quote's parity from its rank (a quote-dense block, ``DENSE``, takes
parities from a running count over the block). With the fast path off (``FAST``, for tests)
every block takes it. So a block costs a handful of C-level passes plus a few Python steps
per anomaly, never a Python step per byte or per record.

``--strict`` refuses what RFC 4180 forbids instead: a quote in an unquoted field, or text after
a closing quote, fails ``MalformedCsv`` naming the byte and line.
"""

import enum
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from s3split.errors import MalformedCsv
from s3split.split import bits
from s3split.split.dialect import Dialect

LF, CR = 0x0A, 0x0D

Positions = npt.NDArray[np.int64]
DENSE = 4  # a block with a quote in every DENSE bytes or more takes the dense path
FEW = 1024  # the fast path gathers the bytes before opening quotes under one quote in FEW bytes
FAST = True  # try the parity-only path first (off: every block takes the exact path; tests)
_EMPTY: Positions = np.zeros(0, np.int64)


class State(enum.IntEnum):
    """Where the parser stands between two bytes (the states of ``csv.reader``)."""

    RECORD = 0  # at the start of a record
    FIELD = 1  # at the start of a field, after a delimiter
    UNQUOTED = 2  # inside an unquoted field: quotes are data
    QUOTED = 3  # inside a quoted field
    CLOSED = 4  # right after a quote in a quoted field: a quote next is an escaped one

    @property
    def in_record(self) -> bool:
        """Whether bytes of an unfinished record lie before this point."""
        return self is not State.RECORD


@dataclass(frozen=True)
class Scan:
    """What one block holds, with offsets relative to the block's start.

    ``ends``: the end (exclusive) of every record that ends in the block;
    ``line_ends``: the offset of every line end (each LF, and each CR not followed by LF),
    inside quoted fields too, for line numbers; ``state``: the parser's state after the
    block; ``open_quote``: for a block that ends inside a quoted field or right after its
    closing quote, where that field began, or -1 when it began before the block.
    """

    ends: Positions
    line_ends: Positions
    state: State
    open_quote: int = -1


class Scanner:
    """Scans blocks of one source in order; each ``scan`` continues from a given state.

    A block must not end between the CR and LF of a CRLF unless it is the last one: the
    caller keeps a trailing CR for the next block.
    """

    def __init__(self, dialect: Dialect = Dialect(), *, strict: bool = False,
                 uri: str = "source", unit: str = "byte") -> None:
        self.delimiter = dialect.delimiter[0]
        self.quote = dialect.quote[0]
        self.strict = strict
        self.uri = uri
        self.unit = unit  # what an offset in an error counts: "byte", or "UTF-8 byte"
        # Bytes that may stand right before a quote that opens a field (or an escaped one).
        self.boundary = np.zeros(256, bool)
        self.boundary[[self.delimiter, LF, CR, self.quote]] = True
        self.text = int(np.flatnonzero(~self.boundary)[0])  # a byte that is none of them
        self.unquoted_rest = re.compile(b"[^" + re.escape(bytes([self.delimiter])) + b"\r\n]*")
        self._mask = self._work = self._quotes = np.empty(0, bool)
        self.packer = bits.Packer()

    def scan(self, data: bytes, state: State, base: int = 0, lines_before: int = 0) -> Scan:
        """Scan ``data``, which starts in ``state``; ``base`` and ``lines_before`` (the source
        offset of ``data`` and the line ends before it) only place errors."""
        if not data:
            return Scan(_EMPTY, _EMPTY, state)
        a = np.frombuffer(data, np.uint8)
        state = self._entered(data, a, state, base, lines_before)
        if FAST:
            found = _FastScan(self, data, a, state).scan()
            if found is not None:
                return found
        return self._exact(data, a, state, base, lines_before)

    def survey(self, data: bytes, state: State, base: int = 0, lines_before: int = 0, *,
               listed: bool = False) -> "Survey":
        """``scan``, its record ends counted and found when asked (``Survey``): the fast
        path lists none of them (unless ``listed``: for a caller that asks for most)."""
        if not data:
            return _Listed(Scan(_EMPTY, _EMPTY, state))
        a = np.frombuffer(data, np.uint8)
        state = self._entered(data, a, state, base, lines_before)
        if FAST and listed:
            found_list = _FastScan(self, data, a, state).scan()
            if found_list is not None:
                return _Listed(found_list)
        elif FAST:
            found = _FastScan(self, data, a, state).survey()
            if found is not None:
                return found
        return _Listed(self._exact(data, a, state, base, lines_before))

    def _entered(self, data: bytes, a: npt.NDArray[np.uint8], state: State, base: int,
                 lines_before: int) -> State:
        """The state at the block's first byte: after CLOSED, a quote is an escaped one and
        anything else ends the quoted part."""
        if state is State.CLOSED and a[0] != self.quote:
            if self.strict and not self.boundary[a[0]]:
                self.malformed("text after a closing quote", base, data, 0, lines_before)
            return State.UNQUOTED  # a quote now would be data
        return state

    def _exact(self, data: bytes, a: npt.NDArray[np.uint8], state: State, base: int,
               lines_before: int) -> Scan:
        """The exact path (see the module docstring)."""
        is_quote = self._quote_mask(a)
        quote_count = int(np.count_nonzero(is_quote))
        parity: _Parity
        if quote_count * DENSE < len(a):
            # Few quotes: find quotes and line ends in one pass, parity by each quote's rank.
            special = np.flatnonzero(self._special_mask(a, is_quote))
            kinds = a[special]
            line_ends = self._line_ends(a, special, kinds)
            if not quote_count:
                return self._without_quotes(a, line_ends, state)
            parity = _SparseParity(self, a, special[kinds == self.quote], line_ends, state)
        else:
            # Quote-dense text: the parity before every byte at once (a running count).
            crlf = np.flatnonzero(self._special_mask(a, None))
            line_ends = self._line_ends(a, crlf, a[crlf])
            parity = _DenseParity(self, a, is_quote, line_ends, state)
        return _Walk(self, data, a, parity, line_ends, state, base, lines_before).run()

    def _quote_mask(self, a: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
        if len(self._quotes) < len(a):
            self._quotes = np.empty(len(a), bool)
        return np.equal(a, self.quote, out=self._quotes[:len(a)])

    def _line_ends(self, a: npt.NDArray[np.uint8], crlf: Positions,
                   kinds: npt.NDArray[np.uint8]) -> Positions:
        """Line ends among the LF and CR positions ``crlf``: every LF, and each CR not
        followed by an LF."""
        line_ends: Positions = crlf[kinds == LF]
        if CR in kinds:
            line_ends = self._with_bare_crs(a, line_ends, crlf[kinds == CR])
        return line_ends

    def _special_mask(self, a: npt.NDArray[np.uint8],
                      is_quote: npt.NDArray[np.bool_] | None) -> npt.NDArray[np.bool_]:
        """LFs and CRs (and the quotes of ``is_quote``), in buffers reused across blocks (fresh
        megabyte-sized arrays for every block would cost more in page faults than the
        comparisons do)."""
        if len(self._mask) < len(a):
            self._mask, self._work = np.empty(len(a), bool), np.empty(len(a), bool)
        mask, work = self._mask[:len(a)], self._work[:len(a)]
        np.equal(a, LF, out=mask)
        np.logical_or(mask, np.equal(a, CR, out=work), out=mask)
        if is_quote is not None:
            np.logical_or(mask, is_quote, out=mask)
        return mask

    @staticmethod
    def _with_bare_crs(a: npt.NDArray[np.uint8], lfs: Positions, crs: Positions) -> Positions:
        """Line ends: the LFs, and the CRs not followed by an LF (each a line end of its own)."""
        after = crs + 1
        bare = crs[(after >= len(a)) | (a[np.minimum(after, len(a) - 1)] != LF)]
        if not len(bare):
            return lfs
        return np.sort(np.concatenate((lfs, bare))) if len(lfs) else bare

    def all_boundaries(self, found: npt.NDArray[np.uint8]) -> bool:
        """Whether every byte of ``found`` may stand before an opening quote (comparisons:
        much faster than looking each up in ``boundary``)."""
        ok = np.equal(found, self.delimiter)
        for byte in (LF, CR, self.quote):
            ok |= found == byte
        return bool(ok.all())

    def boundary_mask(self, a: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
        """Which bytes may stand before a quote that opens a field (or an escaped one)."""
        mask = np.equal(a, self.delimiter)
        for byte in (LF, CR, self.quote):
            mask |= a == byte
        return mask

    def field_end(self, data: bytes, start: int) -> int:
        """Where the unquoted field at ``start`` ends: its next delimiter or line end."""
        found = self.unquoted_rest.match(data, start)
        assert found is not None  # a pattern that may match nothing always matches
        return found.end()

    def _without_quotes(self, a: npt.NDArray[np.uint8], line_ends: Positions,
                        state: State) -> Scan:
        if state is State.QUOTED:
            return Scan(_EMPTY, line_ends, state)
        ends = line_ends + 1
        return Scan(ends, line_ends, self._state_after(a, ends))

    def _state_after(self, a: npt.NDArray[np.uint8], ends: Positions) -> State:
        """The state at the end of a block that ends outside quoted fields."""
        if len(ends) and ends[-1] == len(a):
            return State.RECORD
        last = a[-1]
        if last == self.quote:
            return State.CLOSED  # a closing quote: the next byte may make it an escaped one
        if last == self.delimiter:
            return State.FIELD
        return State.UNQUOTED

    def malformed(self, what: str, base: int, data: bytes, at: int, lines_before: int) -> None:
        line = lines_before + _line_count(data, at) + 1
        raise MalformedCsv(f"{self.uri}: {what} at {self.unit} {base + at} (line {line}); "
                           "without --strict such input is read as Python's csv module reads it")


class _FastScan:
    """The parity rule alone, on bit arrays (``s3split.split.bits``), for a block without
    anomalies (see the module docstring): the quotes, LFs and CRs as bits, the parity of the
    quotes before each byte, and one check that no quote the rule takes as opening a field
    follows other text. ``survey`` (and ``scan``, which lists what it counts) returns None
    for a block with such a quote (or, with ``--strict``, text after a closing quote): the
    exact path takes it then."""

    def __init__(self, scanner: Scanner, data: bytes, a: npt.NDArray[np.uint8],
                 state: State) -> None:
        self.s, self.data, self.a, self.state = scanner, data, a, state
        self._boundaries: bits.Words | None = None

    def scan(self) -> Scan | None:
        found = self.survey()
        return None if found is None else found.listed()

    def survey(self) -> "Survey | None":
        s, a, state = self.s, self.a, self.state
        n = len(a)
        self.quotes = quotes = s.packer.equal(a, s.quote)
        self.lfs = lfs = s.packer.equal(a, LF)
        self.crs = s.packer.equal(a, CR) if b"\r" in self.data else None
        line_ends = lfs
        if self.crs is not None:  # a CR not followed by an LF (at the block's end: bare)
            bare = self.crs & ~bits.byte_after(lfs)
            if bare.any():
                line_ends = lfs | bare
        # Bit i: inside a quoted field after byte i (a quote that opens one is set).
        inside = bits.prefix_parity(quotes, 1 if state is State.QUOTED else 0)
        openers = quotes & inside
        if not self._openers_ok(openers, bits.count(quotes) * FEW < n):
            return None
        if s.strict and not self._closers_ok(quotes & ~inside):
            return None
        ends = line_ends & ~inside
        if bits.bit(inside, n - 1):
            after = State.QUOTED
        elif bits.bit(ends, n - 1):
            after = State.RECORD
        else:
            after = State.CLOSED if a[-1] == s.quote else \
                State.FIELD if a[-1] == s.delimiter else State.UNQUOTED
        opened = -1
        if after in (State.QUOTED, State.CLOSED):
            # The last opener that does not follow a quote (one that does is an escaped quote
            # of the same field).
            fresh = openers & ~bits.byte_before(quotes, 1 if state is State.CLOSED else 0)
            opened = bits.last_below(fresh, n)
        return _Counted(ends, line_ends, after, opened)

    def _openers_ok(self, openers: bits.Words, few: bool) -> bool:
        """Whether every opening quote follows a delimiter, a line end or a quote (or, at
        the block's start, what the state says stood before: a line end after RECORD or
        FIELD, a quote after CLOSED, other text after UNQUOTED). Few quotes: the bytes
        before them are gathered; otherwise compared as bits."""
        first = 0 if self.state is State.UNQUOTED else 1
        if few:
            at = bits.positions(openers)
            before = np.take(self.a, at - 1)  # (at 0: fixed below)
            if len(at) and at[0] == 0:
                before[0] = LF if first else self.s.text
            return self.s.all_boundaries(before)
        return not (openers & ~bits.byte_before(self.boundaries(), first)).any()

    def _closers_ok(self, closers: bits.Words) -> bool:
        """``--strict``: every closing quote is followed by a boundary or the block's end."""
        after = bits.byte_after(self.boundaries())
        bits.set_bit(after, len(self.a) - 1, 1)
        return not (closers & ~after).any()

    def boundaries(self) -> bits.Words:
        """Bytes that may stand before an opening quote: delimiters, quotes, LFs and CRs."""
        if self._boundaries is None:
            found = self.quotes | self.lfs | self.s.packer.equal(self.a, self.s.delimiter)
            self._boundaries = found | self.crs if self.crs is not None else found
        return self._boundaries


class Survey:
    """A block's record ends and line ends, counted, each found only when asked for: what a
    split needs of a block (its boundaries are few, a list of every record end is not).
    Offsets are the block's; a record end is the offset just past its line end."""

    rows: int  # record ends in the block
    lines: int  # line ends
    state: State  # the parser's after the block
    open_quote: int  # as ``Scan.open_quote``

    def ends_upto(self, end: int) -> int:
        """Record ends at or before ``end``."""
        raise NotImplementedError

    def end_from(self, at: int) -> int:
        """The first record end at or after ``at``, or -1."""
        raise NotImplementedError

    def end_before(self, at: int) -> int:
        """The last record end before ``at``, or -1."""
        raise NotImplementedError

    def nth_end(self, k: int) -> int:
        """The ``k``-th record end (from 0), or -1."""
        raise NotImplementedError

    def lines_before(self, at: int) -> int:
        """Line ends before offset ``at``."""
        raise NotImplementedError

    def listed(self) -> Scan:
        raise NotImplementedError


class _Listed(Survey):
    """A ``Scan``'s lists, asked as a survey (the exact path's blocks)."""

    def __init__(self, scan: Scan) -> None:
        self.scan = scan
        self.rows, self.lines = len(scan.ends), len(scan.line_ends)
        self.state, self.open_quote = scan.state, scan.open_quote

    def ends_upto(self, end: int) -> int:
        return int(np.searchsorted(self.scan.ends, end, side="right"))

    def end_from(self, at: int) -> int:
        return self._end(int(np.searchsorted(self.scan.ends, at)))

    def end_before(self, at: int) -> int:
        return self._end(int(np.searchsorted(self.scan.ends, at)) - 1)

    def nth_end(self, k: int) -> int:
        return self._end(k)

    def _end(self, k: int) -> int:
        return int(self.scan.ends[k]) if 0 <= k < len(self.scan.ends) else -1

    def lines_before(self, at: int) -> int:
        return int(np.searchsorted(self.scan.line_ends, at))

    def listed(self) -> Scan:
        return self.scan


class _Counted(Survey):
    """The fast path's bits: bit ``i`` of ``ends`` set where byte ``i`` is a line end that
    ends a record (its record end is ``i + 1``), of ``line_ends`` where it is a line end."""

    def __init__(self, ends: bits.Words, line_ends: bits.Words, state: State,
                 open_quote: int) -> None:
        self.ends, self.line_ends = bits.Ranked(ends), bits.Ranked(line_ends)
        self.rows, self.lines = self.ends.total, self.line_ends.total
        self.state, self.open_quote = state, open_quote

    def ends_upto(self, end: int) -> int:
        return self.ends.count_below(end)

    def end_from(self, at: int) -> int:
        return _past(bits.first_from(self.ends.b, at - 1))

    def end_before(self, at: int) -> int:
        return _past(bits.last_below(self.ends.b, at - 1))

    def nth_end(self, k: int) -> int:
        return _past(self.ends.nth(k))

    def lines_before(self, at: int) -> int:
        return self.line_ends.count_below(at)

    def listed(self) -> Scan:
        return Scan(bits.positions(self.ends.b) + 1, bits.positions(self.line_ends.b),
                    self.state, self.open_quote)


def _past(line_end: int) -> int:
    return line_end + 1 if line_end >= 0 else -1


def _line_count(data: bytes, end: int) -> int:
    """Line ends (LF, or CR not followed by LF) in ``data[:end]``."""
    head = data[:end]
    return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n")


class _Parity:
    """How many quotes (mod 2) precede the positions the walk asks about. A position is
    outside quoted fields when that parity equals its segment's ``outside`` bit."""

    def before(self, positions: Positions) -> npt.NDArray[np.int64]:
        raise NotImplementedError

    def at_end(self) -> int:
        raise NotImplementedError

    def bad_openers(self, bit: int) -> Positions:
        """Quotes that follow other text (not a delimiter, line end or quote) and have
        parity ``bit``, by position."""
        raise NotImplementedError

    def quotes_from(self, start: int) -> tuple[Positions, npt.NDArray[np.int64]]:
        """The quotes at or after ``start`` and their parities."""
        raise NotImplementedError

    def run_starts(self, start: int) -> Positions:
        """The quotes at or after ``start`` that do not follow a quote."""
        raise NotImplementedError


class _SparseParity(_Parity):
    """Few quotes: a quote's parity is its rank, a position's the number of quotes before it."""

    def __init__(self, scanner: Scanner, a: npt.NDArray[np.uint8], quotes: Positions,
                 line_ends: Positions, state: State) -> None:
        self.quotes = quotes
        ok_before = scanner.boundary[a[quotes - 1]]  # (quotes[0] - 1 may be -1: fixed here)
        if quotes[0] == 0:  # the byte before the block is what the state says it was
            ok_before[0] = state is not State.UNQUOTED
        self.ok_before = ok_before
        self._bad: dict[int, Positions] = {}  # made when first asked (see DENSE)

    def before(self, positions: Positions) -> npt.NDArray[np.int64]:
        return np.searchsorted(self.quotes, positions) & 1

    def at_end(self) -> int:
        return len(self.quotes) & 1

    def bad_openers(self, bit: int) -> Positions:
        if bit not in self._bad:
            self._bad[bit] = self.quotes[bit::2][~self.ok_before[bit::2]]
        return self._bad[bit]

    def quotes_from(self, start: int) -> tuple[Positions, npt.NDArray[np.int64]]:
        first = int(np.searchsorted(self.quotes, start))
        return self.quotes[first:], np.arange(first, len(self.quotes)) & 1

    def run_starts(self, start: int) -> Positions:
        quotes = self.quotes[int(np.searchsorted(self.quotes, start)):]
        after_quote = np.zeros(len(quotes), bool)
        after_quote[1:] = quotes[1:] - quotes[:-1] == 1
        if len(quotes) and quotes[0] > 0 and start > 0:
            after_quote[0] = bool(self.is_quote_at(quotes[0] - 1))
        starts: Positions = quotes[~after_quote]
        return starts

    def is_quote_at(self, position: int) -> bool:
        at = int(np.searchsorted(self.quotes, position))
        return at < len(self.quotes) and int(self.quotes[at]) == position


class _DenseParity(_Parity):
    """Many quotes: a running count of them (mod 256, which keeps the parity) over the block."""

    def __init__(self, scanner: Scanner, a: npt.NDArray[np.uint8],
                 is_quote: npt.NDArray[np.bool_], line_ends: Positions, state: State) -> None:
        self.is_quote = is_quote
        counts = np.cumsum(is_quote, dtype=np.uint8)  # quotes up to and including each byte
        self.count_before = counts - is_quote  # (uint8: wraps, parity intact)
        self.total = int(counts[-1])
        ok_before = np.empty(len(a), bool)
        ok_before[1:] = scanner.boundary_mask(a[:-1])
        ok_before[0] = state is not State.UNQUOTED
        self.bad = is_quote & ~ok_before
        self._bad: dict[int, Positions] = {}

    def before(self, positions: Positions) -> npt.NDArray[np.int64]:
        return (self.count_before[positions] & 1).astype(np.int64)

    def at_end(self) -> int:
        return self.total & 1

    def bad_openers(self, bit: int) -> Positions:
        if bit not in self._bad:
            self._bad[bit] = np.flatnonzero(self.bad & ((self.count_before & 1) == bit))
        return self._bad[bit]

    def quotes_from(self, start: int) -> tuple[Positions, npt.NDArray[np.int64]]:
        quotes = np.flatnonzero(self.is_quote[start:]) + start
        return quotes, self.before(quotes)

    def run_starts(self, start: int) -> Positions:
        tail = self.is_quote[start:]
        starts = np.flatnonzero(tail[1:] & ~tail[:-1]) + start + 1
        if len(tail) and tail[0] and not (start > 0 and self.is_quote[start - 1]):
            starts = np.concatenate(([start], starts))
        return starts


class _Walk:
    """One block with quotes: parity segments between anomalies (see the module docstring)."""

    def __init__(self, scanner: Scanner, data: bytes, a: npt.NDArray[np.uint8], parity: _Parity,
                 line_ends: Positions, state: State, base: int, lines_before: int) -> None:
        self.s, self.data, self.a, self.parity, self.line_ends = scanner, data, a, parity, line_ends
        self.state, self.base, self.lines_before = state, base, lines_before
        self.line_end_parity = parity.before(line_ends)

    def run(self) -> Scan:
        n = len(self.a)
        # A segment starts outside quoted fields (inside for a block that starts in one): its
        # positions whose parity equals ``outside`` are outside, its quotes of that parity open.
        start, outside = 0, 1 if self.state is State.QUOTED else 0
        pieces: list[Positions] = []
        while True:
            anomaly = self._first_anomaly(start, outside)
            stop = anomaly if anomaly >= 0 else n
            if self.s.strict:
                self._check_closers(start, stop, outside)
            pieces.append(self._record_ends(start, stop, outside))
            if anomaly < 0:
                break
            if self.s.strict:
                self.s.malformed("quote in an unquoted field", self.base, self.data, stop,
                                 self.lines_before)
            # Inside an unquoted field: its quotes are data up to the next delimiter or line end.
            start = self.s.field_end(self.data, stop)
            if start >= n:
                return Scan(np.concatenate(pieces), self.line_ends, State.UNQUOTED)
            outside = int(self.parity.before(np.array([start]))[0])
        ends = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        state = State.QUOTED if self.parity.at_end() != outside else \
            self.s._state_after(self.a, ends)
        opened = self._last_opening(start, outside) \
            if state in (State.QUOTED, State.CLOSED) else -1
        return Scan(ends, self.line_ends, state, opened)

    def _first_anomaly(self, start: int, outside: int) -> int:
        candidates = self.parity.bad_openers(outside)
        at = int(np.searchsorted(candidates, start))
        return int(candidates[at]) if at < len(candidates) else -1

    def _record_ends(self, start: int, stop: int, outside: int) -> Positions:
        """Line ends in ``[start, stop)`` outside quoted fields, as record ends (exclusive)."""
        lo, hi = np.searchsorted(self.line_ends, [start, stop])
        if lo == hi:
            return _EMPTY
        found: Positions = self.line_ends[lo:hi][self.line_end_parity[lo:hi] == outside] + 1
        return found

    def _last_opening(self, start: int, outside: int) -> int:
        """Where the quoted field open at the end began: the segment's last opening quote that
        does not follow a quote (one that does is an escaped quote in the same field)."""
        runs = self.parity.run_starts(start)  # quotes that do not follow a quote
        fresh = self.parity.before(runs) == outside
        if len(runs) and runs[0] == 0:  # the byte before the block: a quote after CLOSED
            fresh[0] = outside == 0 and self.state is not State.CLOSED
        found = np.flatnonzero(fresh)
        return int(runs[found[-1]]) if len(found) else -1

    def _check_closers(self, start: int, stop: int, outside: int) -> None:
        """``--strict``: a closing quote before ``stop`` must be followed by a delimiter, a line
        end, an escaped quote or the block's end."""
        quotes, parities = self.parity.quotes_from(start)
        closers = quotes[(parities != outside) & (quotes + 1 < min(stop, len(self.a)))]
        bad = np.flatnonzero(~self.s.boundary[self.a[closers + 1]])
        if len(bad):
            at = int(closers[bad[0]]) + 1
            self.s.malformed("text after a closing quote", self.base, self.data, at,
                             self.lines_before)
