"""The delimiter of a source that does not name one: Excel's ``sep=X`` first line, or the
one the header and the first records are written with, as spreadsheet tools and
``csv.Sniffer`` judge it.

The header (the first record with ``--no-header``) decides among the candidates (``,`` ``;``
tab ``|``) by which it has two fields or more: one such is the delimiter (its records may
be ragged: the processors reject those rows), so a header of one field that holds a tab,
``;`` or ``|`` is never read as one column. Where the header splits by several, the records
decide: the one by which at least ``CONSISTENT`` of them have the header's field count; two
such, or none, refuse the source naming two. A header with no candidate is one column
(``,``). First lines that do not look like the records after them (a report's title and
notes: at least three records agree from some line on, with two fields or more) refuse the
source with the ``--skip-lines`` to pass.
"""

import csv
import io
import re
from typing import Final

from s3split.errors import DelimiterUnclear

CANDIDATES: Final = (",", ";", "\t", "|")
SAMPLE: Final = 64 * 1024  # bytes from the header's start the guess reads
RECORDS: Final = 100  # records after the header it compares
CONSISTENT: Final = 0.9
# Excel's hint (also quoted, as some writers quote every line), then its line end or the end.
SEP_LINE: Final = re.compile(rb'(?i)"?sep=([^\r\n"])"?(\r\n|\n|\r|$)')
SEP_LINE_MAX: Final = 9  # its longest form: "sep=X" CRLF


def shown(delimiter: str) -> str:
    """A delimiter as an option takes it: ``tab`` for a tab."""
    return {"\t": "tab", " ": "space"}.get(delimiter, delimiter if delimiter != "'" else '"\'"')


def option(delimiter: str) -> str:
    """``--delimiter X`` as one would type it."""
    text = shown(delimiter)
    return f"--delimiter {text}" if text.isalnum() else f"--delimiter '{text}'"


def sep_line(data: bytes, at_end: bool) -> tuple[str, int] | None:
    """Excel's ``sep=X`` line at the start of ``data``: the delimiter and the line's length.
    ``at_end``: ``data`` is all there is (else a line not yet ended is not one)."""
    found = SEP_LINE.match(data)
    if found is None or (not found.group(2) and not at_end):
        return None
    if found.group(2) == b"\r" and found.end() == len(data) and not at_end:
        return None  # a CR whose LF may follow
    return found.group(1).decode("ascii", "replace"), found.end()


def detect(sample: bytes, complete: bool, quotechar: str, uri: str) -> str | None:
    """The delimiter ``sample`` (the header and what follows, ``complete`` when it is all
    of the source) is written with; None when its header holds no candidate (one column)."""
    text = _whole_lines(sample, complete).decode("utf-8", "replace")
    counts = {d: _field_counts(text, d, quotechar, complete) for d in CANDIDATES}
    in_header = [d for d, found in counts.items() if found and found[0] > 1]
    consistent = [d for d in in_header if _plausible(counts[d])]
    if len(consistent) == 1:
        return consistent[0]
    if not consistent:
        _refuse_a_preamble(text, quotechar, uri)
    if len(in_header) <= 1:
        return in_header[0] if in_header else None
    first, second = (consistent or in_header)[:2]
    fields = f"{shown(first)!r} ({counts[first][0]} fields)", \
        f"{shown(second)!r} ({counts[second][0]} fields)"
    how = (f"both {fields[0]} and {fields[1]} read the header and first records consistently"
           if consistent else f"the header splits by {fields[0]} and by {fields[1]}, and the "
           "first records follow neither")
    raise DelimiterUnclear(f"{uri}: cannot tell the delimiter: {how}; pass {option(first)} or "
                           f"{option(second)}")


def _refuse_a_preamble(text: str, quotechar: str, uri: str) -> None:
    """When the first lines do not look like the records after them (``_preamble``)."""
    preamble = _preamble(text, quotechar)
    if preamble is not None:
        d, skip, fields = preamble
        raise DelimiterUnclear(
            f"{uri}: the first {skip} line{'s' if skip != 1 else ''} look like a preamble: from "
            f"line {skip + 1} on the records have {fields} fields by {shown(d)!r}; pass "
            f"--skip-lines {skip} (or {option(d)} to read the lines as records anyway)")


def _whole_lines(sample: bytes, complete: bool) -> bytes:
    """The sample without a last line that goes on past it."""
    if complete:
        return sample
    end = max(sample.rfind(b"\n"), sample.rfind(b"\r"))
    return sample[:end + 1] if end >= 0 else sample


def _field_counts(text: str, delimiter: str, quotechar: str, complete: bool) -> list[int]:
    """Fields per record, header first; empty records skipped. The last record of a sample
    that is not the whole source may be cut (inside a quoted field): it is left out."""
    counts: list[int] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quotechar)
    try:
        for row in reader:
            if row:
                counts.append(len(row))
            if len(counts) > RECORDS:
                break
    except csv.Error:
        pass
    return counts[:-1] if not complete and len(counts) > 2 else counts


def _preamble(text: str, quotechar: str) -> tuple[str, int, int] | None:
    """Lines before the real header (a report's title, notes): the delimiter, how many lines
    come before the first record from which on the records agree (at least three, with two
    fields or more), and their field count; None when there are none such."""
    best: tuple[int, str, int, int] | None = None
    for d in CANDIDATES:
        rows = _rows_with_lines(text, d, quotechar)
        if len(rows) < 3:
            continue
        fields = rows[-1][1]
        first = len(rows)
        while first > 0 and rows[first - 1][1] == fields:
            first -= 1
        agreeing = len(rows) - first
        if fields >= 2 and first > 0 and agreeing >= 3 and (best is None or agreeing > best[0]):
            best = (agreeing, d, rows[first][0], fields)
    return None if best is None else best[1:]


def _rows_with_lines(text: str, delimiter: str, quotechar: str) -> list[tuple[int, int]]:
    """(lines before it, fields) of each record; empty lines left out."""
    rows: list[tuple[int, int]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quotechar)
    before = 0
    try:
        for row in reader:
            if row:
                rows.append((before, len(row)))
            before = reader.line_num
            if len(rows) > RECORDS:
                break
    except csv.Error:
        pass
    return rows


def _plausible(counts: list[int]) -> bool:
    if not counts or counts[0] < 2:
        return False
    records = counts[1:]
    return not records or sum(n == counts[0] for n in records) >= CONSISTENT * len(records)
