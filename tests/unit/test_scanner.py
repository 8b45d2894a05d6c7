"""Scanner.count / find_record_end / find_nth_record_end against a byte-at-a-time reference."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import csv_rows, make_csv, quote_field
from s3split.errors import InvalidOption
from s3split.scanner import BlockCount, Dialect, Scanner

# -- the reference: walk the bytes, toggling on every quote -----------------------------------


def ref_count(data: bytes, in_quotes: bool, quote: bytes = b'"') -> BlockCount:
    records = lines = 0
    for byte in data:
        if byte == quote[0]:
            in_quotes = not in_quotes
        elif byte == 0x0A:
            lines += 1
            records += not in_quotes
    return BlockCount(records, lines, in_quotes)


def ref_record_ends(data: bytes, start: int, in_quotes: bool, quote: bytes = b'"') -> list[int]:
    """Every index just past a record end at or after ``start``."""
    ends = []
    for i in range(start, len(data)):
        if data[i] == quote[0]:
            in_quotes = not in_quotes
        elif data[i] == 0x0A and not in_quotes:
            ends.append(i + 1)
    return ends


def ref_find_nth(data: bytes, start: int, n: int, in_quotes: bool, quote: bytes = b'"') -> int:
    ends = ref_record_ends(data, start, in_quotes, quote)
    return ends[n - 1] if len(ends) >= n else -1


# -- explicit cases -------------------------------------------------------------------------------

CASES = [
    # (data, in_quotes, expected count)
    (b"", False, BlockCount(0, 0, False)),
    (b"", True, BlockCount(0, 0, True)),
    (b"a,b\n1,2\n", False, BlockCount(2, 2, False)),
    (b"a,b\n1,2", False, BlockCount(1, 1, False)),
    (b"a,b\n1,2\n", True, BlockCount(0, 2, True)),  # all inside an open quoted field
    (b'x"\n1\n', True, BlockCount(2, 2, False)),  # a quote closes the field opened earlier
    (b'"a\nb",c\n', False, BlockCount(1, 2, False)),  # LF inside quotes
    (b'"a\r\nb",c\r\n', False, BlockCount(1, 2, False)),  # CRLF inside quotes
    (b'"say ""hi""\n",x\n', False, BlockCount(1, 2, False)),  # doubled quotes
    (b'"",""\n', False, BlockCount(1, 1, False)),  # empty quoted fields
    (b'""""\n"\n', False, BlockCount(1, 2, True)),  # an escaped quote, then an open field
    (b'"""\n"\n\n', False, BlockCount(2, 3, False)),
    (b'a\n"b\n\nc', False, BlockCount(1, 3, True)),
    (b'\n\n\n', False, BlockCount(3, 3, False)),  # blank lines are records
    (b'\n\n\n', True, BlockCount(0, 3, True)),
]


@pytest.mark.parametrize(("data", "in_quotes", "expected"), CASES)
def test_count_cases(data: bytes, in_quotes: bool, expected: BlockCount) -> None:
    assert ref_count(data, in_quotes) == expected  # the reference agrees with the table
    assert Scanner().count(data, in_quotes) == expected


@pytest.mark.parametrize(("data", "in_quotes", "_"), CASES)
def test_find_record_end_cases(data: bytes, in_quotes: bool, _: BlockCount) -> None:
    scanner = Scanner()
    for start in range(len(data) + 1):
        expected = ref_find_nth(data, start, 1, in_quotes)
        assert scanner.find_record_end(data, start, in_quotes) == expected, start


def test_find_record_end_examples() -> None:
    scanner = Scanner()
    data = b'a,"b\nc",d\r\ne,f\n'
    assert scanner.find_record_end(data, 0, False) == 11  # past the CRLF, not the quoted LF
    assert scanner.find_record_end(data, 4, False) == 5  # the quoted LF, seen from outside
    assert scanner.find_record_end(data, 4, True) == 11
    assert scanner.find_record_end(data, 5, False) == -1  # the closing quote opens, seen so
    assert scanner.find_record_end(data, 11, False) == len(data)
    assert scanner.find_record_end(data, 11, True) == -1
    assert scanner.find_record_end(b"no newline", 0, False) == -1
    assert scanner.find_nth_record_end(data, 0, 2, False) == len(data)
    assert scanner.find_nth_record_end(data, 0, 3, False) == -1
    # starting in quotes: the first quote closes; the next record end after it counts
    assert scanner.find_nth_record_end(b'x\n"\ny\nz\n', 0, 2, True) == 6


def test_other_quote_character() -> None:
    scanner = Scanner(b"'")
    data = b"'a\n''b'\n\"\n"
    assert scanner.count(data, False) == ref_count(data, False, b"'") == BlockCount(2, 3, False)
    assert scanner.find_record_end(data, 0, False) == 8
    assert Scanner().count(data, False) == BlockCount(2, 3, True)  # with '"' the last LF is quoted


def test_last_opening_quote() -> None:
    assert Scanner().last_opening_quote(b'a,"b\nc') == 2


def test_count_agrees_with_csv_module() -> None:
    rows = [["id", "text"], ["1", 'a "quoted"\r\nword'], ["2", "x,y\nz"], ["3", ""], ["4", "\r"]]
    data = make_csv(rows, newline="\r\n")
    assert csv_rows(data) == rows
    counted = Scanner().count(data, False)
    assert counted == BlockCount(len(rows), data.count(b"\n"), False)


# -- properties over random bytes -----------------------------------------------------------------

ALPHABET = [b"a", b",", b'"', b"\r", b"\n", "é".encode()]
blobs = st.lists(st.sampled_from(ALPHABET), max_size=60).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(data=blobs, in_quotes=st.booleans())
def test_count_matches_reference(data: bytes, in_quotes: bool) -> None:
    assert Scanner().count(data, in_quotes) == ref_count(data, in_quotes)


@settings(max_examples=400, deadline=None)
@given(data=blobs, in_quotes=st.booleans(), start=st.integers(0, 70), n=st.integers(1, 5))
def test_find_matches_reference(data: bytes, in_quotes: bool, start: int, n: int) -> None:
    start = min(start, len(data))
    scanner = Scanner()
    assert scanner.find_record_end(data, start, in_quotes) == ref_find_nth(
        data, start, 1, in_quotes)
    assert scanner.find_nth_record_end(data, start, n, in_quotes) == ref_find_nth(
        data, start, n, in_quotes)


@settings(max_examples=200, deadline=None)
@given(data=blobs, in_quotes=st.booleans(), cut=st.integers(0, 60))
def test_count_composes_across_blocks(data: bytes, in_quotes: bool, cut: int) -> None:
    """Counting two halves, carrying the quote state, equals counting the whole."""
    scanner = Scanner()
    cut = min(cut, len(data))
    first = scanner.count(data[:cut], in_quotes)
    second = scanner.count(data[cut:], first.in_quotes)
    whole = scanner.count(data, in_quotes)
    assert (first.records + second.records, first.lines + second.lines, second.in_quotes) == (
        whole.records, whole.lines, whole.in_quotes)


QUOTE_ALPHABET = [b"a", b";", b"'", b'"', b"\r", b"\n", "é".encode()]


@settings(max_examples=200, deadline=None)
@given(data=st.lists(st.sampled_from(QUOTE_ALPHABET), max_size=60).map(b"".join),
       in_quotes=st.booleans(), start=st.integers(0, 60))
def test_single_quote_matches_reference(data: bytes, in_quotes: bool, start: int) -> None:
    scanner = Scanner(b"'")
    start = min(start, len(data))
    assert scanner.count(data, in_quotes) == ref_count(data, in_quotes, b"'")
    assert scanner.find_record_end(data, start, in_quotes) == ref_find_nth(
        data, start, 1, in_quotes, b"'")


fields = st.text(st.sampled_from('a,"\r\né '), max_size=8)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.lists(fields, min_size=1, max_size=4), max_size=8),
       newline=st.sampled_from(["\n", "\r\n"]))
def test_records_match_csv_module(rows: list[list[str]], newline: str) -> None:
    """On valid CSV, the record ends are exactly the rows the csv module reads."""
    data = (newline.join(",".join(quote_field(v) for v in row) for row in rows)
            + (newline if rows else "")).encode()
    assert len(csv_rows(data)) == len(rows)
    assert Scanner().count(data, False) == BlockCount(len(rows), data.count(b"\n"), False)


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
