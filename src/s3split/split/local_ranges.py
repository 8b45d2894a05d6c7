"""The range split of a local source: ranges scanned by several processes, chunks copied.

``split_in_ranges`` is ``splitter.split``'s branch for ``jobs`` > 1: the header is read as
the single pass reads it, the data is cut into ranges (``s3split.split.range_scan``) scanned by
worker processes (``s3split.split.workers``; each worker opens the file itself and reads its
range in 1 MiB blocks), the scans are combined into the chunk table as they arrive, and each
chunk, as soon as its end is known, is written as the header followed by its source bytes
(read and written through one buffer, ``copy_out``), through the same all-or-nothing
``Storage.writer``. The
manifest, leftovers and source checks are the single pass's own (``SplitRun.finish``); the
manifest also records how each chunk was written (``Manifest.assembly``).
"""

import math
import multiprocessing
import os
import sys
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, suppress
from functools import partial
from typing import IO, Final

from s3split.errors import S3SplitError, SourceChanged
from s3split.split.destination import note_written
from s3split.split.manifest import ChunkEntry, chunk_name
from s3split.split.range_scan import (
    BLOCK,
    Chunk,
    Combiner,
    Plan,
    RangeScan,
    Reader,
    Table,
    plan_ranges,
    pread_reader,
    raise_failure,
    scan_local_range,
)
from s3split.split.scanner import State
from s3split.split.splitter import CHUNK_TAGS, SplitResult, SplitRun, read_start
from s3split.split.utf8 import not_utf8
from s3split.split.workers import run_tasks
from s3split.storage import Storage, join

MIN_RANGE: Final = 16 * 1024 * 1024  # a smaller range costs more in start-up than it saves
# Several ranges per process even out their speeds, and the sooner the first ones are done
# the sooner chunks are written; each range costs a few reads and 1/16 of a block scanned
# twice.
RANGES_PER_JOB: Final = 8
COPY_BLOCK: Final = 1024 * 1024  # the copy's buffer
READ_WRITE: Final = "read_write"
# Worker processes: fork starts in a fraction of spawn's time (no numpy import per worker);
# the task (a path, a Plan and an index) works under spawn as well.
START_METHOD = "fork" if sys.platform == "linux" else "spawn"


def split_in_ranges(run: SplitRun, jobs: int, cuts: Sequence[int] | None = None) -> SplitResult:
    """Split ``run``'s source in ranges (see module docstring); ``cuts``: explicit range
    starts instead of planned ones."""
    settings, info = run.settings, run.info
    assert settings.chunk_size is not None
    with run.storage.open_source(info) as f:
        read_start(run, f)
    run.on_progress(run.offset)
    plan = plan_ranges(run.source, info.size, run.data_start, settings.chunk_size,
                       range_count(info.size - run.data_start, jobs), cuts=cuts,
                       delimiter=run.format.delimiter, quotechar=settings.quotechar,
                       strict=settings.strict, header_cr=run.header.endswith(b"\r"),
                       block=min(run.block_size, BLOCK))
    fd = os.open(run.source, os.O_RDONLY)
    try:
        entries, methods = _scan_and_write(run, plan, jobs, fd)
    finally:
        os.close(fd)
    return run.finish_ranges(entries, {"scan": "ranges", "ranges": plan.count, "jobs": jobs,
                                       "chunks": methods})


def _scan_and_write(run: SplitRun, plan: Plan, jobs: int,
                    fd: int) -> tuple[list[ChunkEntry], list[str]]:
    """Scan the ranges and write each chunk as soon as the ranges up to its end are
    combined (the kernel copies while later ranges are scanned); the entries and methods."""
    combiner = Combiner(plan, run.lines_before)
    write = partial(write_chunk, run.storage, run.dest, fd, run.header, run.source)
    writers = ThreadPoolExecutor(max(1, jobs))
    written: list[Future[tuple[ChunkEntry, str]]] = []
    try:
        with closing(scan_ranges(plan, jobs)) as scans:  # (whatever stops us stops them)
            for scan in scans:
                run.on_progress(scan.end - scan.start)
                written += [writers.submit(write, chunk) for chunk in combiner.add(scan)]
        table = combiner.table()
        raise_errors(run, plan, table, pread_reader(fd))
        written += [writers.submit(write, chunk) for chunk in table.chunks[len(written):]]
        done = [future.result() for future in written]
    except BaseException:
        writers.shutdown(cancel_futures=True)  # (waits for the running ones)
        _note_written(run, written)
        raise
    finally:
        writers.shutdown(cancel_futures=True)
    return [entry for entry, _ in done], [method for _, method in done]


def _note_written(run: SplitRun, written: Sequence[Future[tuple[ChunkEntry, str]]]) -> None:
    """The parts a failed split wrote, noted for the next split of its destination to
    delete (chunks are written before the split knows it will fail); the split's own
    error is what the caller sees, whatever happens here."""
    names = [chunk_name(f.result()[0].index) for f in written
             if f.done() and not f.cancelled() and f.exception() is None]
    with suppress(OSError, S3SplitError):
        note_written(run.storage, run.dest, names)


def range_count(data_bytes: int, jobs: int) -> int:
    """Ranges for ``jobs`` processes: ``RANGES_PER_JOB`` each, none below ``MIN_RANGE``."""
    return max(1, min(jobs * RANGES_PER_JOB, math.ceil(data_bytes / MIN_RANGE)))


def scan_ranges(plan: Plan, jobs: int) -> Generator[RangeScan, None, None]:
    """Every range of ``plan`` scanned, as each is done, by ``jobs`` worker processes (here
    when 1); a worker that dies fails the split with ``WorkerDied`` naming its range.
    Closing the generator stops the workers."""
    task = partial(scan_local_range, plan.uri, plan)
    if min(jobs, plan.count) <= 1:
        yield from map(task, range(plan.count))
        return
    context = multiprocessing.get_context(START_METHOD)
    with closing(run_tasks(task, plan.count, jobs, context,
                           partial(describe_range, plan))) as done:
        for _, scan in done:
            yield scan


def describe_range(plan: Plan, index: int) -> str:
    end = plan.cuts[index + 1] if index + 1 < plan.count else plan.size
    return f"range {index} (bytes {plan.cuts[index]} to {end}) of {plan.uri}"


def raise_errors(run: SplitRun, plan: Plan, table: Table, read: Reader) -> None:
    """The single pass's errors, at the same byte and line, the first in the source first:
    a ``--strict`` failure, a byte UTF-8 does not allow, a quoted field still open at the
    end, a character cut short by the end."""
    bad = table.invalid
    if table.failure is not None:
        raise_failure(read, plan, table.failure, None if bad is None else bad.offset)
    if bad is not None and not bad.at_end:
        raise not_utf8(plan.uri, bad.offset, bad.lines, bad.byte)
    if table.state is State.QUOTED:
        run.unterminated(table.open_quote or (-1, 0))
    if bad is not None:
        raise not_utf8(plan.uri, bad.offset, bad.lines, bad.byte)


# -- writing the chunks ---------------------------------------------------------------------------


def write_chunk(storage: Storage, dest: str, fd: int, header: bytes, source: str,
                chunk: Chunk) -> tuple[ChunkEntry, str]:
    uri = join(dest, chunk_name(chunk.index))
    with storage.writer(uri, CHUNK_TAGS) as f:
        f.write(header)
        method = copy_out(fd, f, chunk.start, chunk.end, len(header), source)
    entry = ChunkEntry(chunk.index, uri, len(header) + chunk.end - chunk.start, chunk.rows,
                       chunk.start, chunk.source_line)
    return entry, method


def copy_out(src: int, f: IO[bytes], start: int, end: int, at: int, source: str) -> str:
    """Append bytes ``[start, end)`` of ``source`` (open as ``src``) to ``f``, which holds
    ``at`` bytes; how they were copied. A file is written through one reused buffer:
    ``copy_file_range`` cost about 40 % more system time on ext4 (its splice copies page by
    page), and the clone that makes it cheap elsewhere needs block-aligned ranges, which a
    chunk (a header, then source bytes from a record's start) never has."""
    f.flush()
    try:
        dst = f.fileno()
    except (OSError, ValueError):  # not a file of its own (an S3 upload)
        dst = -1
    pos = start
    if dst >= 0:
        buf = memoryview(bytearray(min(COPY_BLOCK, max(end - start, 1))))
        while pos < end:
            got = os.preadv(src, [buf[:min(len(buf), end - pos)]], pos)
            if not got:
                raise _shrunk(source, pos, end)
            _pwrite_all(dst, buf[:got], at + pos - start)
            pos += got
        return READ_WRITE
    while pos < end:
        data = os.pread(src, min(COPY_BLOCK, end - pos), pos)
        if not data:
            raise _shrunk(source, pos, end)
        f.write(data)
        pos += len(data)
    return READ_WRITE


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _shrunk(source: str, pos: int, end: int) -> SourceChanged:
    return SourceChanged(f"{source} changed during the split: it ends at byte {pos}, but the "
                         f"chunk being written runs to byte {end}; start the split again")
