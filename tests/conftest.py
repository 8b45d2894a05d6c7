"""Shared helpers for the s3split tests: build CSV bytes, and read a split back and check it.

Test modules import the plain functions with ``from conftest import ...``; the
directory is put on ``sys.path`` below so that works in any pytest import mode.

The reference functions here walk bytes one at a time with csv.reader's own states
(a quote opens a field only at its start, ``"a"b`` continues unquoted, LF, CRLF and bare CR
end records), deliberately independent of ``s3split.split.scanner``.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s3split.storage import Storage

# The module fixtures shared by the S3 pipeline tests (a moto server and its client).
pytest_plugins = ["pipeline_support"]

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

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


# -- reading a split back ---------------------------------------------------------------------


def read_split(dest: str, storage: Storage | None = None) -> tuple[dict[str, Any], list[bytes]]:
    """The manifest of a finished split in ``dest`` and the bytes of its chunks, in order."""
    storage = storage or Storage()
    manifest = storage.read_json(dest.rstrip("/") + "/manifest.json")
    chunks = []
    for entry in manifest["chunks"]:
        with storage.open_read(entry["uri"]) as f:
            chunks.append(f.read())
    return manifest, chunks


def local_parts(dest: str | os.PathLike[str]) -> list[str]:
    """Every file under a local dest directory (temporaries and progress files included),
    as sorted relative paths; an empty ``_split`` directory left by a resumed split is
    not a file and does not show."""
    return sorted(
        os.path.relpath(os.path.join(root, name), dest)
        for root, _, names in os.walk(dest) for name in names
    )


@dataclass
class Checked:
    """What ``check_split`` worked out: the header and each chunk's records."""

    header: bytes
    chunk_records: list[list[bytes]]


def check_split(
    source: bytes,
    manifest: dict[str, Any],
    chunks: list[bytes],
    *,
    header: bool = True,
    delimiter: str = ",",
    quotechar: str = '"',
    records: list[bytes] | None = None,
    parse_csv: bool = True,
) -> Checked:
    """Assert the invariants every split must keep, whatever its settings.

    * the BOM is recorded and not repeated; the header is the first record;
    * every chunk starts with exactly the header bytes and holds whole records;
    * chunks minus their header, concatenated, are the source minus BOM and header;
    * manifest entries: index, uri, bytes, rows, source_offset and source_line;
    * with ``parse_csv``, the csv module reads the same rows from the chunks as
      from the source, chunk by chunk as the manifest counts them.

    ``records`` are the source's records after BOM and header when the caller
    knows them (large inputs); otherwise they come from ``ref_records``.
    """
    has_bom = source.startswith(BOM)
    assert manifest["bom"] is has_bom
    body_start = len(BOM) if has_bom else 0
    body = source[body_start:]
    if records is None:
        records = ref_records(body, quotechar.encode(), delimiter.encode())
        head = records.pop(0) if header and records else b""
    else:
        head = body[:len(body) - sum(map(len, records))]
    if not header:
        assert head == b""
    assert manifest["header_bytes"] == len(head)
    assert manifest["header"] == head.decode("utf-8", "replace")
    assert manifest["count"] == len(chunks) == len(manifest["chunks"])

    data_start = body_start + len(head)
    assert b"".join(c[len(head):] for c in chunks) == source[data_start:]

    chunk_records: list[list[bytes]] = []
    offset, rec = data_start, 0
    for i, (entry, chunk) in enumerate(zip(manifest["chunks"], chunks, strict=True)):
        assert chunk.startswith(head), f"chunk {i} does not start with the header"
        assert entry["index"] == i
        assert entry["uri"].endswith(f"part-{i:05d}.csv")
        assert entry["bytes"] == len(chunk)
        assert entry["source_offset"] == offset, f"chunk {i} source_offset"
        assert entry["source_line"] == line_ends_before(source, offset) + 1, f"chunk {i} line"
        data = chunk[len(head):]
        taken, size = [], 0
        while size < len(data):
            assert rec < len(records), f"chunk {i} holds more than the source's records"
            taken.append(records[rec])
            size += len(records[rec])
            rec += 1
        assert size == len(data), f"chunk {i} does not end at a record end"
        assert entry["rows"] == len(taken) >= 1, f"chunk {i} rows"
        chunk_records.append(taken)
        offset += len(data)
    assert rec == len(records)
    assert manifest["rows"] == len(records) == sum(e["rows"] for e in manifest["chunks"])
    assert manifest["bytes"] == sum(map(len, chunks))

    if parse_csv:
        n_head = len(csv_rows(head, delimiter, quotechar)) if head else 0
        expected = csv_rows(source[data_start:], delimiter, quotechar)
        got: list[list[str]] = []
        for entry, chunk in zip(manifest["chunks"], chunks, strict=True):
            rows = csv_rows(chunk, delimiter, quotechar)[n_head:]
            assert entry["rows"] == len(rows)
            got.extend(rows)
        assert got == expected
    return Checked(head, chunk_records)


def _check_carried(checked: Checked, extra: list[bytes], i: int) -> None:
    """Records past a chunk's natural end: only empty LF records, and only when the header
    ends in a bare CR (no chunk may start with an LF: csv.reader would read CR, LF as one
    line end, so the chunk carries them)."""
    if extra:
        bare_cr = checked.header.endswith(b"\r")
        assert bare_cr and all(r == b"\n" for r in extra), f"chunk {i} closed late: {extra}"


def check_sizes(checked: Checked, chunk_size: int) -> None:
    """A chunk closes at the first record end at or after the next multiple of ``chunk_size``
    bytes, counted from the end of the header (so a split's chunks do not depend on the order
    in which the source is scanned)."""
    start, last = 0, len(checked.chunk_records) - 1
    for i, recs in enumerate(checked.chunk_records):
        target = (start // chunk_size + 1) * chunk_size
        ends = list(itertools.accumulate(map(len, recs), initial=start))[1:]
        natural = next((k for k, end in enumerate(ends) if end >= target), None)
        if i < last:
            assert natural is not None, f"chunk {i} closed early: {ends[-1]} < {target}"
        if natural is not None:
            _check_carried(checked, recs[natural + 1:], i)
        start = ends[-1]


def check_rows(checked: Checked, chunk_rows: int) -> None:
    """Every chunk but the last holds ``chunk_rows`` records; the last 1 to ``chunk_rows``
    (both plus any empty LF records carried, see ``_check_carried``)."""
    last = len(checked.chunk_records) - 1
    for i, recs in enumerate(checked.chunk_records):
        assert len(recs) >= (chunk_rows if i < last else 1), (i, len(recs))
        _check_carried(checked, recs[chunk_rows:], i)


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """The slow tests first (a stable sort), so that on several workers (pytest-xdist) the
    longest files start at once instead of trailing behind the rest."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@contextmanager
def mocked_s3(monkeypatch: Any, bucket: str) -> Iterator[Any]:
    """An in-process moto S3 with fake credentials and ``bucket`` made; its client."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=bucket)
        yield client
