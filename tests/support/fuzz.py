"""Random CSV sources for the property tests: RFC 4180-valid ones and any string over the
characters that matter to csv.reader, in several dialects."""

from __future__ import annotations

import os
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.support.csvdata import BOM, quote_field, ref_open_quote

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@dataclass(frozen=True)
class Source:
    data: bytes
    delimiter: str
    quotechar: str
    header: bool


DIALECTS = [(",", '"'), (";", '"'), ("\t", '"'), (",", "'"), (";", "'")]


@st.composite
def sources(draw: st.DrawFn) -> Source:
    """An RFC 4180-valid CSV: plain or quoted fields, LF or CRLF, maybe a BOM."""
    delimiter, quotechar = draw(st.sampled_from(DIALECTS))
    other_quote = "'" if quotechar == '"' else '"'
    plain = st.text(st.sampled_from(["a", "b", "7", " ", "é", "€", "中", other_quote]),
                    max_size=5)
    inside = st.lists(st.sampled_from(["a", "é", delimiter, quotechar, "\r", "\n", "\r\n", " "]),
                      max_size=6).map("".join)
    field = st.one_of(plain, inside.map(lambda v: quote_field(v, quotechar)))
    columns = draw(st.integers(1, 4))
    record = st.lists(field, min_size=columns, max_size=columns).map(delimiter.join)
    header = draw(st.booleans())
    records = draw(st.lists(record, max_size=25))
    if header:
        records.insert(0, draw(record))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(records)
    if records and draw(st.booleans()):
        text += newline
    data = (BOM if draw(st.booleans()) else b"") + text.encode()
    return Source(data, delimiter, quotechar, header)


@st.composite
def dirty_sources(draw: st.DrawFn) -> Source:
    """Any string over the characters that matter (what csv.reader accepts, RFC or not):
    quotes in unquoted fields, text after closing quotes, bare CRs, blank lines."""
    delimiter, quotechar = draw(st.sampled_from(DIALECTS))
    alphabet = ["a", "b", delimiter, quotechar, " ", "\r", "\n", "\r\n", "é"]
    text = "".join(draw(st.lists(st.sampled_from(alphabet), max_size=60)))
    data = (BOM if draw(st.booleans()) else b"") + text.encode()
    return Source(data, delimiter, quotechar, draw(st.booleans()))


def unterminated(source: Source) -> bool:
    """Whether csv.reader would end inside a quoted field (the splitter refuses that)."""
    body = source.data[len(BOM):] if source.data.startswith(BOM) else source.data
    return ref_open_quote(body, source.quotechar.encode(), source.delimiter.encode()) is not None


@st.composite
def ragged_sources(draw: st.DrawFn) -> Source:
    """Records of 2 to 4 fields as RFC 4180 writes them, with one line ending, a few with a
    field more (an empty one too: a trailing delimiter) or fewer than the first, or none (a
    blank line): the shapes where readers' field counts differ."""
    delimiter, quotechar = draw(st.sampled_from(DIALECTS))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    plain = st.text(st.sampled_from(["a", "7", " ", "é"]), max_size=3)
    inside = st.lists(st.sampled_from(["a", delimiter, quotechar, newline]), max_size=4)
    field = st.one_of(plain, inside.map(lambda v: quote_field("".join(v), quotechar)))
    columns = draw(st.integers(2, 4))
    widths = st.sampled_from([columns] * 6 + [columns + 1, columns + 1, columns - 1,
                                              columns + 2, 0])
    record = widths.flatmap(lambda n: st.lists(field, min_size=n, max_size=n))
    records = [draw(st.lists(field, min_size=columns, max_size=columns))]
    records += draw(st.lists(record, max_size=12))
    text = newline.join(delimiter.join(fields) for fields in records)
    if draw(st.booleans()):
        text += newline
    return Source(text.encode(), delimiter, quotechar, draw(st.booleans()))


any_sources = st.one_of(sources(), dirty_sources())


def write_source(tmp: str, data: bytes) -> str:
    path = os.path.join(tmp, "source.csv")
    with open(path, "wb") as f:
        f.write(data)
    return path
