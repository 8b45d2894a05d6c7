"""Read a finished split back and check the invariants every split must keep."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

from s3split.storage import Storage
from tests.support.csvdata import BOM, csv_rows, line_ends_before, ref_records


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
