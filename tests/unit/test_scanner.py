"""Scanner.scan against csv.reader and a byte-at-a-time reference of csv.reader's states."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3split.errors import InvalidOption, MalformedCsv
from s3split.split import scanner as scanner_module
from s3split.split.scanner import Dialect, Scanner, State
from tests.support.csvdata import _lenient_walk, csv_rows, line_ends_before, ref_records

STATES = {"R": State.RECORD, "S": State.FIELD, "F": State.UNQUOTED, "Q": State.QUOTED,
          "E": State.CLOSED}


def scan_in_pieces(data: bytes, cuts: list[int], scanner: Scanner | None = None,
                   state: State = State.RECORD) -> tuple[list[int], State, int]:
    """Record ends, final state and open quote, scanning ``data`` cut at ``cuts`` (a cut
    between the CR and LF of a CRLF is moved past the LF, as the splitter does)."""
    scanner = scanner or Scanner()
    ends: list[int] = []
    opened, pos = -1, 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if cut <= pos:
            continue
        if data[cut - 1:cut + 1] == b"\r\n":
            cut += 1
        scan = scanner.scan(data[pos:cut], state, pos)
        ends.extend(int(e) + pos for e in scan.ends)
        if scan.state in (State.QUOTED, State.CLOSED):
            opened = pos + scan.open_quote if scan.open_quote >= 0 else opened
        else:
            opened = -1
        state, pos = scan.state, cut
    return ends, state, opened


# -- explicit cases -------------------------------------------------------------------------------

CASES = [
    # (data, record ends, final state)
    (b"", [], State.RECORD),
    (b"a,b\n1,2\n", [4, 8], State.RECORD),
    (b"a,b\n1,2", [4], State.UNQUOTED),
    (b"a,", [], State.FIELD),
    (b'"a\nb",c\n', [8], State.RECORD),  # LF inside quotes
    (b'"a\r\nb",c\r\n', [10], State.RECORD),  # CRLF inside quotes
    (b'"say ""hi""\n",x\n', [16], State.RECORD),  # doubled quotes
    (b'"",""\n', [6], State.RECORD),  # empty quoted fields
    (b'""""\n"\n', [5], State.QUOTED),  # an escaped quote, then an open field
    (b'\n\n\n', [1, 2, 3], State.RECORD),  # blank lines are records
    # where csv.reader is lenient
    (b'5\'10",x\n6\'1",y\n', [8, 15], State.RECORD),  # a quote in an unquoted field is data
    (b'12" pizza,"a\nb"\n', [16], State.RECORD),
    (b'"a"b"c\nd\n', [7, 9], State.RECORD),  # text after a closing quote; its quote is data
    (b'"a"b,"c\nd"\n', [11], State.RECORD),
    (b'a\rb\rc', [2, 4], State.UNQUOTED),  # bare CR ends records
    (b'a\r\r\nb\r', [2, 4, 6], State.RECORD),
    (b'"a\rb"\r', [6], State.RECORD),  # a quoted bare CR is data
    (b'x""\ny\n', [4, 6], State.RECORD),  # an even run of quotes in an unquoted field
    (b'a,"b"', [], State.CLOSED),  # after a closing quote: an escaped quote may follow
]


@pytest.mark.parametrize(("data", "ends", "state"), CASES)
def test_cases(data: bytes, ends: list[int], state: State) -> None:
    scan = Scanner().scan(data, State.RECORD)
    assert [int(e) for e in scan.ends] == ends
    assert scan.state is state
    assert _lenient_walk(data)[0] == ends


def test_states_at_the_start_of_a_block() -> None:
    scanner = Scanner()
    assert list(scanner.scan(b'x"\n1\n', State.QUOTED).ends) == [3, 5]
    assert list(scanner.scan(b'"\n1\n', State.UNQUOTED).ends) == [2, 4]  # data: a 5'10" split
    assert list(scanner.scan(b'"\n"x\n', State.CLOSED).ends) == [5]  # "" escaped across blocks
    assert list(scanner.scan(b'\n"x\n', State.CLOSED).ends) == [1]  # the field had closed
    assert scanner.scan(b'"a', State.FIELD).open_quote == 0
    assert scanner.scan(b'"a', State.CLOSED).open_quote == -1  # re-opened, began earlier


def test_other_quote_character_and_delimiter() -> None:
    scanner = Scanner(Dialect.of(";", "'"))
    data = b"a;'x\n;y'\n'\"';b\n"
    assert [int(e) for e in scanner.scan(data, State.RECORD).ends] == [9, 15]
    assert csv_rows(data, ";", "'") == [["a", "x\n;y"], ['"', "b"]]


def test_strict_refuses_what_rfc_4180_forbids() -> None:
    strict = Scanner(strict=True, uri="s.csv")
    with pytest.raises(MalformedCsv, match=r"^s\.csv: quote in an unquoted field at byte 9 "
                                           r"\(line 2\)"):
        strict.scan(b'id,h\n5\'10",x\n', State.RECORD)
    with pytest.raises(MalformedCsv, match=r"text after a closing quote at byte 8 \(line 2\)"):
        strict.scan(b'id,h\n"a"b,x\n', State.RECORD, 0)
    with pytest.raises(MalformedCsv, match=r"text after a closing quote at byte 100 \(line 8\)"):
        strict.scan(b"b", State.CLOSED, 100, 7)  # the closing quote ended the block before
    assert list(strict.scan(b'"a""b",c\r\n"x"\n', State.RECORD).ends) == [10, 14]


# -- against the references ---------------------------------------------------------------------

ALPHABET = [b"a", b",", b'"', b" ", b"\r", b"\n", b"\r\n", "é".encode()]
dirty = st.lists(st.sampled_from(ALPHABET), max_size=40).map(b"".join)


# Each of the scanner's ways, forced: the parity-only fast path (blocks with an anomaly go on
# to the exact path) finding quotes and LFs in one pass or apart, and the exact path alone,
# with parities by rank or by a running count.
PATHS = {
    "fast, quotes with LFs": {"FAST": True, "FEW": 0},
    "fast, quotes apart": {"FAST": True, "FEW": 10**9},
    "exact, by rank": {"FAST": False, "DENSE": 0},
    "exact, running count": {"FAST": False, "DENSE": 10**9},
}
each_path = pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
fast_or_exact = pytest.mark.parametrize("path", [PATHS["fast, quotes with LFs"],
                                                 PATHS["fast, quotes apart"],
                                                 PATHS["exact, by rank"]])


@contextmanager
def forced(path: dict[str, int]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for name, value in path.items():
            stack.enter_context(mock.patch.object(scanner_module, name, value))
        yield


@each_path
@settings(max_examples=400, deadline=None)
@given(data=dirty, cuts=st.lists(st.integers(1, 40), max_size=4))
def test_matches_csv_readers_states_in_any_pieces(path: dict[str, int], data: bytes,
                                                   cuts: list[int]) -> None:
    """Any byte string, scanned in any pieces, on each of the scanner's ways: csv.reader's
    record ends, state and open quote."""
    ends, state, opened = _lenient_walk(data)
    with forced(path):
        got_ends, got_state, got_opened = scan_in_pieces(data,
                                                         [c for c in cuts if c < len(data)])
    assert got_ends == ends
    assert got_state is STATES[state]
    assert got_opened == opened


@settings(max_examples=300, deadline=None)
@given(data=dirty)
def test_reference_is_csv_reader(data: bytes) -> None:
    """The reference's records, each parsed alone, are the rows csv.reader reads from the whole
    (so the scanner, which matches the reference, matches csv.reader)."""
    _, state, _ = _lenient_walk(data)
    if state == "Q":
        return  # csv.reader swallows an unterminated field; the splitter refuses it
    rows = [row for record in ref_records(data) for row in csv_rows(record)]
    assert rows == csv_rows(data)


@fast_or_exact
@settings(max_examples=200, deadline=None)
@given(data=dirty)
def test_strict_accepts_exactly_rfc_input(path: dict[str, int], data: bytes) -> None:
    """Strict mode refuses a source iff csv.reader's parse leaves RFC 4180 somewhere."""
    assert _refused_by_strict(path, data) == _breaks_rfc(data)


def _refused_by_strict(path: dict[str, int], data: bytes) -> bool:
    try:
        with forced(path):
            Scanner(strict=True).scan(data, State.RECORD)
    except MalformedCsv:
        return True
    return False


def _breaks_rfc(data: bytes) -> bool:
    """A quote in an unquoted field, or text right after a closing quote."""
    state = "R"
    for i, c in enumerate(data):
        if state == "Q":
            state = "E" if c == 0x22 else "Q"
        elif c == 0x22:
            if state == "F":
                return True
            state = "Q"
        elif state == "E" and c not in b",\r\n":
            return True
        else:
            state = "S" if c == 0x2C else ("R" if c in b"\r\n" else "F")
        del i
    return False


# Blocks of several 64-byte words: the fast path's bits carry parities and neighbours from one
# word to the next (quote-heavy and quote-light mixes).
long_dirty = st.lists(st.sampled_from([*ALPHABET, b"abcdefgh", b'","', b"\r\n"]),
                      max_size=400).map(b"".join)


@fast_or_exact
@settings(max_examples=200, deadline=None)
@given(data=long_dirty, cuts=st.lists(st.integers(1, 2000), max_size=3))
def test_matches_csv_readers_states_over_many_words(path: dict[str, int], data: bytes,
                                                    cuts: list[int]) -> None:
    ends, state, opened = _lenient_walk(data)
    with forced(path):
        got = scan_in_pieces(data, [c for c in cuts if c < len(data)])
    assert got == (ends, STATES[state], opened)


@settings(max_examples=150, deadline=None)
@given(data=long_dirty, cuts=st.lists(st.integers(1, 2000), max_size=3))
def test_another_dialect_over_many_words(data: bytes, cuts: list[int]) -> None:
    """The fast path with ``;`` and ``'`` (the bytes of the default dialect are then text)."""
    swapped = data.translate(bytes.maketrans(b'",;\'', b"';,\""))
    ends, state, opened = _lenient_walk(swapped, b";", b"'")
    got = scan_in_pieces(swapped, [c for c in cuts if c < len(swapped)],
                         Scanner(Dialect.of(";", "'")))
    assert got == (ends, STATES[state], opened)


@fast_or_exact
@settings(max_examples=100, deadline=None)
@given(data=long_dirty)
def test_strict_over_many_words(path: dict[str, int], data: bytes) -> None:
    assert _refused_by_strict(path, data) == _breaks_rfc(data)


@pytest.mark.parametrize("listed", [False, True], ids=["counted", "listed"])
@fast_or_exact
@settings(max_examples=150, deadline=None)
@given(data=long_dirty, state=st.sampled_from(list(State)))
def test_the_survey_answers_what_the_scan_lists(path: dict[str, int], listed: bool,
                                                data: bytes, state: State) -> None:
    """Every question the split asks of a survey, against the scan's lists of the block."""
    with forced(path):
        scan = Scanner().scan(data, state)
        survey = Scanner().survey(data, state, listed=listed)
    ends, line_ends = scan.ends.tolist(), scan.line_ends.tolist()
    assert (survey.rows, survey.lines) == (len(ends), len(line_ends))
    assert (survey.state, survey.open_quote) == (scan.state, scan.open_quote)
    assert survey.listed().ends.tolist() == ends
    assert survey.listed().line_ends.tolist() == line_ends
    for at in range(len(data) + 2):
        assert survey.ends_upto(at) == sum(1 for e in ends if e <= at)
        assert survey.end_from(at) == next((e for e in ends if e >= at), -1)
        assert survey.end_before(at) == max((e for e in ends if e < at), default=-1)
        assert survey.lines_before(at) == sum(1 for p in line_ends if p < at)
    for k in range(-1, len(ends) + 1):
        assert survey.nth_end(k) == (ends[k] if 0 <= k < len(ends) else -1)


# -- the fast path and its edges ----------------------------------------------------------------


def fast_path_outcomes(data: bytes, cuts: list[int]) -> tuple[list[int], list[bool]]:
    """Scan ``data`` in pieces; the length of each block the fast path saw and whether it
    took the block (False: it handed the block to the exact path)."""
    seen: list[tuple[int, bool]] = []
    fast_scan = scanner_module._FastScan.scan

    def spy(self: scanner_module._FastScan) -> scanner_module.Scan | None:
        result = fast_scan(self)
        seen.append((len(self.a), result is not None))
        return result

    with mock.patch.object(scanner_module._FastScan, "scan", spy):
        scan_in_pieces(data, cuts)
    return [n for n, _ in seen], [took for _, took in seen]


def quotes_read_as_data(data: bytes) -> list[int]:
    """Where csv.reader meets a quote inside an unquoted field (the fast path's anomaly)."""
    found, state = [], "R"
    for i, c in enumerate(data):
        if state == "Q":
            state = "E" if c == 0x22 else "Q"
        elif c == 0x22:
            if state == "F":
                found.append(i)
            state = "F" if state == "F" else "Q"
        elif c == 0x2C:
            state = "S"
        elif c in b"\r\n":
            state = "R"
        else:
            state = "F"
    return found


@pytest.mark.parametrize("few", [0, 10**9], ids=["quotes with LFs", "quotes apart"])
@settings(max_examples=400, deadline=None)
@given(data=dirty, cuts=st.lists(st.integers(1, 40), max_size=4))
def test_the_fast_path_takes_exactly_the_blocks_without_a_quote_read_as_data(
        few: int, data: bytes, cuts: list[int]) -> None:
    """Any block without a quote inside an unquoted field (bare CRs included) is the fast
    path's; a block with one goes to the exact path (the property test above checks that
    either's answer is csv.reader's)."""
    with mock.patch.object(scanner_module, "FEW", few):
        lengths, took = fast_path_outcomes(data, [c for c in cuts if c < len(data)])
    anomalies = quotes_read_as_data(data)
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    assert took == [not any(s <= at < s + n for at in anomalies)
                    for s, n in zip(starts, lengths, strict=True)]


EDGES = [
    # (data, cuts, which blocks the fast path takes)
    (b'ab"c\n"d"\n', [2], [True, False]),  # a quote read as data: the first byte of a block
    (b'ab"\nc\n', [3], [False, True]),  # ... and the last byte of one
    (b'"x"y"\nz\n', [], [False]),  # text after a closing quote, then a quote: data
    (b'a\rb\n', [2], [True, True]),  # a bare CR: the last byte of a block
    (b'x\n\na\r', [2], [True, True]),  # a block that starts with an LF and ends in a bare CR
    (b'\na\r\nb\rc', [], [True]),  # an LF first, a CRLF, then a bare CR
    (b'"a""b"\n', [3], [True, True]),  # an escaped quote across two blocks (CLOSED, then ")
    (b'"a",b\n', [3], [True, True]),  # a closing quote: the last byte of a block
    (b'"a\n"\n', [3], [True, True]),  # a closing quote: the first byte of a block
    (b'a,"', [2], [True, True]),  # an opening quote alone in the last block
    (b'"a"b\n', [3], [True, True]),  # text after a closing quote in the next block
    (b'"a"\r\n"b"', [4], [True, True]),  # the cut moves past the LF of a CRLF
]


@each_path
@pytest.mark.parametrize(("data", "cuts", "fast_takes"), EDGES)
def test_the_fast_paths_edges(path: dict[str, int], data: bytes, cuts: list[int],
                              fast_takes: list[bool]) -> None:
    """Blocks that put an anomaly, a quote or a CR on a block's first or last byte: each way
    gives csv.reader's answer, and the fast path takes the blocks it should."""
    ends, state, opened = _lenient_walk(data)
    with forced(path):
        assert scan_in_pieces(data, cuts) == (ends, STATES[state], opened)
        if path["FAST"]:
            assert fast_path_outcomes(data, cuts)[1] == fast_takes


def test_line_numbers_count_bare_crs() -> None:
    assert line_ends_before(b"a\rb\r\nc\nd", 8) == 3


# -- the dialect ------------------------------------------------------------------------------


def test_dialect_of_encodes() -> None:
    assert Dialect.of(";", "'") == Dialect(b";", b"'")
    assert Dialect.of("\t", '"') == Dialect(b"\t", b'"')


@pytest.mark.parametrize(
    ("delimiter", "quotechar", "message"),
    [
        ("", '"', "invalid delimiter ''"),
        (",,", '"', "invalid delimiter ',,'"),
        ("\n", '"', "invalid delimiter '\\n'"),
        ("\r", '"', "invalid delimiter '\\r'"),
        ("é", '"', "invalid delimiter 'é'"),
        (",", "", "invalid quotechar ''"),
        (",", "\n", "invalid quotechar '\\n'"),
        (",", "«", "invalid quotechar '«'"),
        (",", ",", "delimiter and quotechar must differ"),
    ],
)
def test_dialect_rejects(delimiter: str, quotechar: str, message: str) -> None:
    with pytest.raises(InvalidOption, match="^" + message.replace("\\", "\\\\")):
        Dialect.of(delimiter, quotechar)
