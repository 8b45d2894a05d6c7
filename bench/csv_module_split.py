"""Baseline splitter: plain stdlib ``csv.reader`` -> ``csv.writer``.

    python bench/csv_module_split.py SOURCE DEST [--chunk-size 64MiB]

What a careful engineer would write without s3split: parse every record, write it to
``DEST/part-NNNNN.csv`` (header repeated in each), and roll to a new file once the current
one has reached ``--chunk-size`` bytes, as reported by the output file's ``tell()``.
Output uses CRLF (csv.writer's default) and minimal quoting, so quoted fields that did not
need quotes lose them; the records are the same.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from gen_csv import parse_size

if TYPE_CHECKING:
    from _csv import Writer

# TextIOWrapper.tell() flushes and is comparatively slow, so it is asked every few records;
# with ~100-byte records this overshoots the target by a few KiB at most.
CHECK_EVERY = 64


def split(source: Path, dest: Path, chunk_size: int) -> int:
    """Split ``source`` into ``dest``; returns the number of chunks written."""
    dest.mkdir(parents=True, exist_ok=False)
    chunks = 0
    out: TextIO | None = None
    with source.open(newline="", encoding="utf-8") as src:
        reader = csv.reader(src)
        header = next(reader, None)
        if header is None:
            return 0

        def open_next() -> tuple[TextIO, Writer]:
            nonlocal chunks
            fh = (dest / f"part-{chunks:05d}.csv").open("w", newline="", encoding="utf-8")
            chunks += 1
            w = csv.writer(fh)
            w.writerow(header)
            return fh, w

        out, writer = open_next()
        n = 0
        try:
            for record in reader:
                writer.writerow(record)
                n += 1
                if n % CHECK_EVERY == 0 and out.tell() >= chunk_size:
                    out.close()
                    out, writer = open_next()
                    n = 0
        finally:
            out.close()
    if n == 0 and chunks > 1:
        # The last rollover happened right at the end: drop the header-only chunk.
        (dest / f"part-{chunks - 1:05d}.csv").unlink()
        chunks -= 1
    return chunks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="stdlib csv splitter (benchmark baseline)")
    ap.add_argument("source", type=Path)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--chunk-size", type=parse_size, default=parse_size("64MiB"))
    args = ap.parse_args(argv)
    chunks = split(args.source, args.dest, args.chunk_size)
    print(f"chunks={chunks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
