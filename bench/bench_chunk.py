"""One chunk's processing in a warm worker: the CPU of the ``jsonl`` processor on a chunk of
the realistic export, of its parts (the shape checks, DuckDB's COPY), of the Python reader,
and of DuckDB's own ``COPY (SELECT * FROM read_csv(.., all_varchar=true)) TO .. (FORMAT
json)`` of the same chunk (the reference of the jsonl target, on one chunk).

    python bench/bench_chunk.py [--chunk-size 8MiB] [--repeat 10]

The export (bench/gen_export.py, CRLF) is split into chunks of --chunk-size by ``s3split
split``; the second chunk is measured. Each figure is the median CPU seconds (user + sys) of
this process over --repeat calls after one untimed call; the table is printed and written to
bench/results/chunk.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench_split import BENCH_DIR, ensure_shape, load, publish, s3split_exe
from gen_csv import parse_size
from s3split.processors import native
from s3split.processors.base import ChunkJob
from s3split.processors.jsonl import JsonlProcessor
from s3split.storage import Storage


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def median_cpu(call: Callable[[], object], repeat: int, *outputs: str) -> float:
    """The median CPU of ``call``, each call writing ``outputs`` afresh (as a worker does:
    overwriting a file costs more than writing a new one)."""
    times = []
    for _ in range(repeat + 1):
        for path in outputs:
            Path(path).unlink(missing_ok=True)
        start = cpu()
        call()
        times.append(cpu() - start)
    return statistics.median(times[1:])


def chunk_job(split_dir: Path, out: Path, index: int) -> ChunkJob:
    manifest = json.loads((split_dir / "manifest.json").read_text())
    entry = manifest["chunks"][index]
    return ChunkJob(index=index, chunk_uri=entry["uri"], output_uri=str(out / "part.jsonl"),
                    rejects_uri=str(out / "rejects.jsonl"), source_line=entry["source_line"],
                    has_header=manifest["settings"]["header"],
                    delimiter=manifest["format"]["delimiter"],
                    quotechar=manifest["settings"]["quotechar"], run_id="bench",
                    manifest_etag="bench", rows=entry["rows"], bytes=entry["bytes"])


def duckdb_copy(job: ChunkJob) -> None:
    """The jsonl target's reference, on this chunk (DuckDB's default threads)."""
    import duckdb

    duckdb.execute("COPY (SELECT * FROM read_csv(?, header=true, all_varchar=true)) TO "
                   f"{native.quote_literal(job.output_uri + '.duckdb')} (FORMAT json)",
                   [job.chunk_uri])


def measure(job: ChunkJob, repeat: int) -> list[tuple[str, float]]:
    storage = Storage()
    jsonl = JsonlProcessor()
    data = Path(job.chunk_uri).read_bytes()
    rows: list[tuple[str, float]] = []
    out = job.output_uri
    rows.append(("jsonl (DuckDB path), whole call",
                 median_cpu(lambda: jsonl(job, storage), repeat, out)))
    rows.append(("  the shape checks", median_cpu(
        lambda: native.unreadable_shape(data, job.quotechar, job.delimiter), repeat)))

    with native.native_chunk(job, storage) as chunk:
        select, path = native.text_select(chunk), job.output_uri + ".copy"
        copy = median_cpu(lambda: chunk.copy(select, "json", path), repeat, path)
        os.unlink(path)
    rows.append(("  DuckDB's COPY .. (FORMAT json) alone", copy))
    rows.append(("DuckDB's own COPY of the chunk (the reference)",
                 median_cpu(lambda: duckdb_copy(job), repeat, out + ".duckdb")))
    os.environ[native.NATIVE_ENV] = "0"
    try:
        rows.append(("jsonl (Python reader)",
                     median_cpu(lambda: jsonl(job, storage), max(1, repeat // 4), out)))
    finally:
        del os.environ[native.NATIVE_ENV]
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--chunk-size", default="8MiB")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    ap.add_argument("--md", type=Path, default=BENCH_DIR / "results" / "chunk.md")
    args = ap.parse_args(argv)
    size = parse_size(args.chunk_size)
    exe = s3split_exe()
    if exe is None:
        raise SystemExit("s3split is not installed in this venv: make install")
    ds = ensure_shape(args.data_dir, "export", 4 * size, args.seed, False)
    work = Path(tempfile.mkdtemp(prefix="chunk-"))
    try:
        subprocess.run([exe, "split", str(ds.path), str(work / "split"), "--chunk-size",
                        str(size)], check=True, capture_output=True)
        (work / "out").mkdir()
        job = chunk_job(work / "split", work / "out", 1)
        rows = measure(job, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = ["# One chunk's processing", "",
             f"`python bench/bench_chunk.py --chunk-size {args.chunk_size} --repeat "
             f"{args.repeat}`: chunk 1 of the export ({job.bytes / 2**20:.2f} MiB, {job.rows:,} "
             f"records, CRLF), median CPU of {args.repeat} calls in one warm process; "
             f"{os.cpu_count()} CPUs, load (1 min) {load()}.", "",
             "| what | CPU ms |", "|---|---:|"]
    lines += [f"| {what} | {seconds * 1000:.1f} |" for what, seconds in rows]
    text = "\n".join(lines) + "\n"
    publish(text, args.md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
