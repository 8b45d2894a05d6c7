"""CSV for the tests: build it, and read it back one byte at a time as csv.reader does.

The reference functions walk bytes one at a time with csv.reader's own states (a quote opens a
field only at its start, ``"a"b`` continues unquoted, LF, CRLF and bare CR end records),
deliberately independent of ``s3split.split.scanner``.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Sequence

BOM = b"\xef\xbb\xbf"
LF, CR = 0x0A, 0x0D


# -- building CSV ----------------------------------------------------------------------------


def quote_field(value: str, quotechar: str = '"') -> str:
    """``value`` as a quoted field: wrapped in quotes, inner quotes doubled."""
    return quotechar + value.replace(quotechar, quotechar * 2) + quotechar


def make_csv(
    rows: Sequence[Sequence[str]],
    *,
    delimiter: str = ",",
    quotechar: str = '"',
    newline: str = "\n",
    bom: bool = False,
    trailing_newline: bool = True,
    quote_all: bool = False,
) -> bytes:
    """Encode ``rows`` (the first one is the header, if any) as CSV bytes.

    A field is quoted when ``quote_all`` or when it holds the delimiter, the
    quote character, CR or LF.
    """

    def field(value: str) -> str:
        special = any(c in value for c in (delimiter, quotechar, "\r", "\n"))
        return quote_field(value, quotechar) if quote_all or special else value

    text = newline.join(delimiter.join(field(v) for v in row) for row in rows)
    if rows and trailing_newline:
        text += newline
    return (BOM if bom else b"") + text.encode()


# -- reference parsing (one byte at a time) ---------------------------------------------------


def _lenient_walk(data: bytes, delimiter: bytes = b",",
                  quote: bytes = b'"') -> tuple[list[int], str, int]:
    """csv.reader's states (strict=False), one byte at a time: record ends (exclusive), the
    final state (R record start, S field start, F unquoted, Q quoted, E after a quote in a
    quoted field) and where the quoted field open at the end began (-1 if none)."""
    d, q = delimiter[0], quote[0]
    ends: list[int] = []
    state, opened, i, n = "R", -1, 0, len(data)
    while i < n:
        c = data[i]
        if state == "Q":
            state = "E" if c == q else "Q"
        elif state in ("R", "S") and c == q:
            state, opened = "Q", i
        elif state == "E" and c == q:
            state = "Q"
        elif c == d and state != "Q":
            state = "S"
        elif c in (LF, CR):
            if c == CR and data[i + 1:i + 2] == b"\n":
                i += 1
            ends.append(i + 1)
            state = "R"
        else:
            state = "F"
        i += 1
    return ends, state, opened if state in ("Q", "E") else -1


def ref_records(data: bytes, quote: bytes = b'"', delimiter: bytes = b",") -> list[bytes]:
    """Split ``data`` into records as csv.reader does, each with its line end; a last one
    may lack it."""
    ends, _, _ = _lenient_walk(data, delimiter, quote)
    bounds = [0, *ends]
    if bounds[-1] < len(data):
        bounds.append(len(data))
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def line_ends_before(data: bytes, offset: int) -> int:
    """Line ends as csv.reader counts them (LF, CRLF, bare CR) in ``data[:offset]``."""
    head = data[:offset]
    return head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n")


def ref_open_quote(data: bytes, quote: bytes = b'"',
                   delimiter: bytes = b",") -> tuple[int, int] | None:
    """(offset, 1-based line) of the quote that opened the field still open at the end of
    ``data``, or None when every quoted field is closed."""
    _, state, opened = _lenient_walk(data, delimiter, quote)
    if state != "Q":
        return None
    return opened, line_ends_before(data, opened) + 1


def csv_rows(data: bytes, delimiter: str = ",", quotechar: str = '"') -> list[list[str]]:
    """What Python's csv module reads from ``data`` (UTF-8), as the workers read chunks."""
    text = data.decode("utf-8")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                           quotechar=quotechar, strict=False))
