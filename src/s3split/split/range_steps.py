"""The range split in steps that keep their state in storage: the pipeline's split of a big
source on the state machine (``s3split.pipeline.range_tasks`` runs each step as a Task or a Map).

* ``prepare`` does what ``splitter.split`` does before its first chunk (checks the source and
  destination, notes the parts an earlier split left, removes its manifest), reads the header
  and pins the source version; it returns a ``Staged`` split: JSON-able, the ranges planned.
* ``scan`` scans one range of the pinned version (``range_scan.scan_range``): ranged GETs for an
  S3 source, ``pread`` for a local one.
* ``combine_scans`` folds the scans into the chunk table and raises the single pass's errors
  (``MalformedCsv``, ``UnterminatedQuote``) at the same byte and line.
* ``assemble`` writes chunks: S3 to S3 server-side (``s3_assembly``), a local source by
  ``local_ranges.write_chunk`` (read and written through a buffer), an S3 source into a
  local destination read and written.
* ``finish`` writes the manifest, the single pass's own but for its ``assembly`` record.

Every read and copy is of the version ``prepare`` pinned: an S3 source by its version id and
ETag, a local one by its identity (inode, mtime, ctime, size) checked around each step; another
version fails ``SourceChanged``. Each step can run again with the same result.
"""

import bisect
import io
import itertools
import math
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import IO, TYPE_CHECKING, Any, Final, cast

from s3split.errors import (
    InvalidInput,
    InvalidOption,
    S3SplitError,
    SourceChanged,
    SplitTaskFailed,
)
from s3split.split.destination import (
    check_destination,
    check_source,
    note_written,
    remove_temporaries,
)
from s3split.split.dialect import validate_settings
from s3split.split.encoding import PEEK
from s3split.split.local_ranges import READ_WRITE, raise_errors, write_chunk
from s3split.split.manifest import ChunkEntry, Manifest, SourceFormat, SplitSettings, chunk_name
from s3split.split.range_scan import (
    BLOCK,
    SNAP_READ,
    Chunk,
    Combiner,
    Failure,
    Invalid,
    Mark,
    Piece,
    Plan,
    RangeScan,
    Reader,
    Table,
    combine,
    plan_ranges,
    pread_reader,
    scan_range,
)
from s3split.split.s3_assembly import MIN_PART, PinnedSource, assemble_chunk
from s3split.split.s3_assembly import read_range as read_pinned
from s3split.split.scanner import State
from s3split.split.splitter import (
    BLOCK as STREAM_BLOCK,
)
from s3split.split.splitter import (
    CHUNK_TAGS,
    SplitRun,
    clear_previous,
    other_encoding,
    read_start,
    starts_transcoded,
)
from s3split.storage import ObjectInfo, Storage, is_compressed, is_s3, join, split_s3

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_RANGES: Final = 10_000  # the range list travels in the state: ~6 bytes a range
READAHEAD: Final = 16 * 1024 * 1024  # one ranged GET serves this many bytes of a scan
SMALL_READ: Final = 256 * 1024  # reads below this (a cut's first line end) get no read-ahead
_PLAN_ID: Final = re.compile(r"[0-9a-f]{16}")
Fetch = Callable[[int, int], bytes]
"""``fetch(start, end)``: bytes ``[start, end)`` of the pinned version, got from S3."""
KEEP_CAP: Final = 256 * 1024 * 1024  # bytes a split between S3 locations keeps to read again
KEEP_BEFORE: Final = 8  # bytes a PinnedReader keeps from before its buffer


# -- the staged split ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Staged:
    """What every later step needs: the pinned source version, the range plan and the header
    (kept apart: it may be MiBs, and only the steps that write chunks need it)."""

    id: str  # names this plan's scratch files: a late task of an earlier plan writes elsewhere
    dest: str
    info: ObjectInfo
    settings: SplitSettings
    bom: bool
    header_lines: int  # line ends in the header (before the plan's data_start)
    header_bytes: int
    plan: Plan
    header: bytes | None = None
    format: SourceFormat = field(default_factory=SourceFormat)  # as reading the header found

    def to_dict(self) -> dict[str, Any]:
        """Everything but the header itself."""
        plan = asdict(self.plan) | {"cuts": list(self.plan.cuts)}
        return {"id": self.id, "dest": self.dest, "info": asdict(self.info),
                "settings": asdict(self.settings), "bom": self.bom,
                "header_lines": self.header_lines, "header_bytes": self.header_bytes,
                "plan": plan, "format": asdict(self.format)}

    def with_header(self, header: bytes) -> "Staged":
        if len(header) != self.header_bytes:
            raise InvalidInput(f"staged range split of {self.info.uri}: its header has "
                               f"{len(header)} bytes, not {self.header_bytes}")
        return replace(self, header=header)

    @property
    def head(self) -> bytes:
        """The header every chunk starts with."""
        if self.header is None:
            raise AssertionError(f"staged range split of {self.info.uri}: header not read")
        return self.header

    @classmethod
    def from_dict(cls, data: Any, source: str, dest: str) -> "Staged":
        """The staged split of ``source`` into ``dest``; InvalidInput when ``data`` is not one
        (another source or destination, or not the shape ``to_dict`` writes)."""
        try:
            plan = Plan(**(data["plan"] | {"cuts": tuple(data["plan"]["cuts"])}))
            staged = cls(str(data["id"]), data["dest"], ObjectInfo(**data["info"]),
                         SplitSettings(**data["settings"]), bool(data["bom"]),
                         int(data["header_lines"]), int(data["header_bytes"]), plan,
                         format=SourceFormat(**data["format"]) if "format" in data else
                         SourceFormat(delimiter=data["settings"]["delimiter"] or ",",
                                      data_start=plan.data_start))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"staged range split of {source}: not a plan "
                               f"({type(exc).__name__}: {exc})") from None
        if not _PLAN_ID.fullmatch(staged.id):  # it names files: no path of its own
            raise InvalidInput(f"staged range split of {source}: plan id {staged.id!r}")
        if (staged.info.uri, plan.uri, staged.dest) != (source, source, dest):
            raise InvalidInput(f"staged range split: it is of {staged.info.uri} into "
                               f"{staged.dest}, not of {source} into {dest}")
        cuts = list(plan.cuts)
        increasing = bool(cuts) and cuts == sorted(set(cuts))
        if not (increasing and cuts[0] == plan.data_start
                and cuts[-1] <= plan.size == staged.info.size):
            raise InvalidInput(f"staged range split of {source}: its ranges do not cut "
                               f"[{plan.data_start}, {plan.size})")
        return staged


def prepare(source: str, dest: str, settings: SplitSettings, storage: Storage, plan_id: str,
            range_size: int, max_ranges: int = MAX_RANGES,
            got: list[tuple[int, bytes]] | None = None, fetch: Fetch | None = None) -> Staged:
    """Check and clear ``dest`` as a fresh ``splitter.split`` does, read the header of the
    version of ``source`` there is now, and plan its data in ranges of ``range_size``
    (``got``: where to note what was read, as (offset, bytes); ``fetch``: how, for an S3
    source)."""
    validate_settings(settings)
    if settings.chunk_size is None or is_compressed(source):
        raise InvalidOption(f"{source}: a range split needs a chunk size and a source that is "
                            "not compressed")
    check_destination(dest)
    check_source(source, dest)
    storage.check_directory(dest)
    info = storage.stat(source)
    remove_temporaries(storage, dest)
    clear_previous(storage, dest)
    run = _run(storage, source, dest, settings, info)
    try:
        with source_reader(storage, info, readahead=0, fetch=fetch, got=got) as read:
            read_start(run, cast(IO[bytes], GrowingReads(read, info.size)))
    except SourceChanged:
        raise
    except Exception:
        storage.check_still(info)  # a rewritten file fails as that, not as the bad CSV it became
        raise
    count = max(1, min(max_ranges, math.ceil((info.size - run.data_start) / range_size)))
    plan = plan_ranges(source, info.size, run.data_start, settings.chunk_size, count,
                       delimiter=run.format.delimiter, quotechar=settings.quotechar,
                       strict=settings.strict, header_cr=run.header.endswith(b"\r"), block=BLOCK)
    return Staged(plan_id, dest, info, settings, run.bom, run.lines_before, len(run.header), plan,
                  run.header, run.format)


def _run(storage: Storage, source: str, dest: str, settings: SplitSettings,
         info: ObjectInfo) -> SplitRun:
    return SplitRun(source, dest, settings, storage, info, lambda: False, lambda n: None,
                  STREAM_BLOCK)


# -- reading the pinned version -----------------------------------------------------------------




class PinnedReader:
    """A ``Reader`` of one version of an S3 object by ranged GETs (``VersionId``/``If-Match``:
    any other version fails ``SourceChanged``), each serving ``readahead`` bytes of a scan;
    ``fetch`` gets them (by default a GET each). No byte it holds is got again: a read that
    goes on from where its buffer ends gets only the rest (with the read-ahead: the byte
    after a block, then the next block), and the last bytes before the buffer are kept (a
    block that ended in the CR of a CRLF gives it to the next)."""

    def __init__(self, s3: "S3Client", source: PinnedSource, size: int,
                 readahead: int = READAHEAD, limit: int | None = None,
                 fetch: Fetch | None = None) -> None:
        self.s3, self.source, self.size, self.readahead = s3, source, size, readahead
        self.limit = size if limit is None else min(limit, size)  # no read-ahead past it
        self.fetch = fetch or partial(read_pinned, s3, source)
        self.start, self.buffer = 0, b""
        self.before = b""  # the bytes just before ``start``

    def __call__(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        if end <= offset:
            return b""
        held = self.start + len(self.buffer)
        if self.start <= offset and end <= held:
            return self.buffer[offset - self.start:end - self.start]
        if self.start - len(self.before) <= offset < self.start and end <= held:
            joined = self.before + self.buffer[:end - self.start]
            return joined[offset - self.start + len(self.before):]
        ahead = min(offset + self.readahead, self.limit)
        fetch = end if length < SMALL_READ and offset != held else max(end, ahead)
        old, cut = self.buffer, offset - self.start
        if 0 <= cut < len(old):
            self.buffer = old[cut:] + self.fetch(held, fetch)
        else:
            self.buffer = self.fetch(offset, fetch)
        self.before = old[max(cut - KEEP_BEFORE, 0):cut] if 0 <= cut <= len(old) else b""
        self.start = offset
        return self.buffer[:end - offset]


@dataclass
class _Zone:
    """Bytes ``[start, end)`` kept for those who read them again (``owners``), as got."""

    start: int
    end: int
    owners: set[str]
    pieces: dict[int, bytes] = field(default_factory=dict)  # start -> bytes, apart
    lock: threading.Lock = field(default_factory=threading.Lock)


class KeptReads:
    """A ``Fetch`` that gets each byte of the zones it is told of once, and keeps it until
    every owner of the zone released it: what a split between S3 locations reads twice.
    Bytes outside the zones are got as asked (each read once by the one range scan that
    covers it). It holds at most ``cap`` bytes: past that (chunks assembled far behind the
    scans), zone bytes are got again when read again rather than held."""

    def __init__(self, get: Fetch, zones: Sequence[tuple[str, int, int]],
                 got: Sequence[tuple[int, bytes]] = (), cap: int = KEEP_CAP) -> None:
        """``zones``: (owner, start, end), in any order, overlapping or not; ``got``: bytes
        already read, (offset, bytes), kept where a zone covers them."""
        self.get, self.cap, self.held = get, cap, 0
        self.zones = _disjoint(zones)  # (a released zone stays, without owners or bytes)
        self.starts = [z.start for z in self.zones]
        self.owned: dict[str, list[_Zone]] = {}
        for zone in self.zones:
            for owner in zone.owners:
                self.owned.setdefault(owner, []).append(zone)
        self.lock = threading.Lock()  # (owners and ``held``; a zone's bytes: its own)
        reached = 0
        for offset, whole in sorted(got, key=lambda g: g[0]):  # (each byte kept once)
            data = whole[max(reached - offset, 0):]
            offset = max(offset, reached)
            reached = max(reached, offset + len(data))
            for zone in self._between(offset, offset + len(data)):
                a, b = max(zone.start, offset), min(zone.end, offset + len(data))
                self._keep(zone, a, data[a - offset:b - offset])

    def __call__(self, start: int, end: int) -> bytes:
        parts, pos = [], start
        for zone in self._between(start, end):
            if pos < zone.start:
                parts.append(self.get(pos, zone.start))
                pos = zone.start
            parts.append(self._from(zone, pos, min(zone.end, end)))
            pos = min(zone.end, end)
        if pos < end:
            parts.append(self.get(pos, end))
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self, owner: str) -> None:
        """Drop the bytes of the zones ``owner`` was the last owner of (only its zones are
        touched: a split releases each of its thousands of owners once)."""
        with self.lock:
            for zone in self.owned.pop(owner, []):
                zone.owners.discard(owner)
                if not zone.owners:
                    self.held -= sum(len(d) for d in zone.pieces.values())
                    zone.pieces = {}  # (a new dict: a reader in ``_from`` keeps its own)

    def _between(self, start: int, end: int) -> list[_Zone]:
        with self.lock:
            first = max(bisect.bisect_right(self.starts, start) - 1, 0)
            found: list[_Zone] = []
            for zone in itertools.islice(self.zones, first, None):
                if zone.start >= end:
                    break
                if zone.end > start and zone.owners:
                    found.append(zone)
            return found

    def _from(self, zone: _Zone, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of ``zone``: what it holds, the rest got now and kept."""
        with zone.lock:
            parts, pos, pieces = [], start, zone.pieces
            for a in sorted(pieces):
                data = pieces[a]
                if a + len(data) <= pos or a >= end:
                    continue
                if pos < a:
                    parts.append(self._keep(zone, pos, self.get(pos, a)))
                    pos = a
                parts.append(data[pos - a:min(end, a + len(data)) - a])
                pos = min(end, a + len(data))
            if pos < end:
                parts.append(self._keep(zone, pos, self.get(pos, end)))
            return parts[0] if len(parts) == 1 else b"".join(parts)

    def _keep(self, zone: _Zone, at: int, data: bytes) -> bytes:
        with self.lock:
            if self.held + len(data) <= self.cap and zone.owners:
                zone.pieces[at] = data
                self.held += len(data)
        return data


def _disjoint(zones: Sequence[tuple[str, int, int]]) -> list[_Zone]:
    """The zones cut where any begins or ends, each piece with every owner that covers it
    (one sweep over the edges: a split has tens of thousands of zones)."""
    opening: dict[int, list[str]] = {}
    closing: dict[int, list[str]] = {}
    for owner, a, b in zones:
        if a < b:
            opening.setdefault(a, []).append(owner)
            closing.setdefault(b, []).append(owner)
    covering: Counter[str] = Counter()  # (an owner's zones may overlap)
    out: list[_Zone] = []
    for a, b in itertools.pairwise(sorted(opening.keys() | closing.keys())):
        for owner in closing.get(a, ()):
            covering[owner] -= 1
            if not covering[owner]:
                del covering[owner]
        covering.update(opening.get(a, ()))
        if covering:
            out.append(_Zone(a, b, set(covering)))
    return out


@contextmanager
def local_source(storage: Storage, info: ObjectInfo) -> Iterator[int]:
    """The local source open for reading, its identity checked before and after (a file
    replaced or rewritten meanwhile fails ``SourceChanged``)."""
    storage.check_still(info)
    fd = os.open(info.uri, os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)
    storage.check_still(info)


class GrowingReads(io.RawIOBase):
    """A source read from its start in reads that grow from 64 KiB to the stream's block (a
    header is usually short: a GET of the whole object would send much of it for nothing)."""

    def __init__(self, read: Reader, size: int) -> None:
        self._read, self._size, self._offset, self._next = read, size, 0, 64 * 1024

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        length = self._next if n is None or n < 0 else min(n, self._next)
        data = self._read(self._offset, min(length, self._size - self._offset))
        self._offset += len(data)
        self._next = min(self._next * 2, STREAM_BLOCK)
        return data


@contextmanager
def source_reader(storage: Storage, info: ObjectInfo, readahead: int = READAHEAD,
                  limit: int | None = None, fetch: Fetch | None = None,
                  got: list[tuple[int, bytes]] | None = None) -> Iterator[Reader]:
    """The pinned version's reader (``readahead``, ``limit`` and ``fetch``: those of
    PinnedReader; ``got``: where an S3 reader notes what it got, as (offset, bytes))."""
    if is_s3(info.uri):
        pinned = PinnedSource.of(info)
        fetch = fetch or partial(read_pinned, storage.s3, pinned)
        if got is not None:
            fetch = partial(_noted, fetch, got)
        yield PinnedReader(storage.s3, pinned, info.size, readahead, limit, fetch)
        return
    with local_source(storage, info) as fd:
        yield pread_reader(fd)


def _noted(fetch: Fetch, got: list[tuple[int, bytes]], start: int, end: int) -> bytes:
    data = fetch(start, end)
    got.append((start, data))
    return data


# -- the steps ----------------------------------------------------------------------------------


def scan(storage: Storage, staged: Staged, index: int, fetch: Fetch | None = None) -> RangeScan:
    if not 0 <= index < staged.plan.count:
        raise InvalidInput(f"range {index} of {staged.info.uri}: it has ranges 0 to "
                           f"{staged.plan.count - 1}")
    plan = staged.plan
    following = plan.cuts[index + 1] if index + 1 < plan.count else plan.size
    with source_reader(storage, staged.info, limit=following + SMALL_READ, fetch=fetch) as read:
        return scan_range(read, plan, index)


def combine_scans(storage: Storage, staged: Staged, scans: Sequence[RangeScan]) -> Table:
    """The chunk table, or the single pass's error at the same byte and line."""
    try:
        table = combine(staged.plan, staged.header_lines, scans)
    except ValueError as exc:
        raise SplitTaskFailed(f"{staged.info.uri}: the range scans do not fit together: "
                              f"{exc}") from None
    if table.failure is None and table.invalid is None and table.state is not State.QUOTED:
        storage.check_still(staged.info)  # a local source rewritten since the scans
        return table
    raise_table_errors(storage, staged, table)
    return table


def raise_table_errors(storage: Storage, staged: Staged, table: Table) -> None:
    """The single pass's error for a table that ends in one, at the same byte and line."""
    run = _run(storage, staged.info.uri, staged.dest, staged.settings, staged.info)
    try:
        with source_reader(storage, staged.info) as read:
            raise_errors(run, staged.plan, table, read)
    except SourceChanged:
        raise
    except Exception:
        storage.check_still(staged.info)
        raise


def assemble(storage: Storage, staged: Staged, chunks: Sequence[Chunk],
             fetch: Fetch | None = None) -> list[tuple[ChunkEntry, str]]:
    """Write ``chunks``: their manifest entries and how each was written (``fetch``: how
    S3 to S3 gets the bytes uploaded with the header)."""
    info, dest, header = staged.info, staged.dest, staged.head
    if not is_s3(info.uri):
        with local_source(storage, info) as fd:
            return [write_chunk(storage, dest, fd, header, info.uri, c) for c in chunks]
    if is_s3(dest):
        return [_copy_in_s3(storage, staged, c, fetch) for c in chunks]
    read = PinnedReader(storage.s3, PinnedSource.of(info), info.size)
    return [_read_write(storage, staged, read, c) for c in chunks]


def _entry(staged: Staged, chunk: Chunk) -> ChunkEntry:
    return ChunkEntry(chunk.index, join(staged.dest, chunk_name(chunk.index)),
                      staged.header_bytes + chunk.end - chunk.start, chunk.rows, chunk.start,
                      chunk.source_line)


def _copy_in_s3(storage: Storage, staged: Staged, chunk: Chunk,
                fetch: Fetch | None) -> tuple[ChunkEntry, str]:
    entry = _entry(staged, chunk)
    method = assemble_chunk(storage.s3, PinnedSource.of(staged.info), staged.head, chunk.start,
                            chunk.end, split_s3(entry.uri), fetch=fetch)
    return entry, method


def _read_write(storage: Storage, staged: Staged, read: Reader,
                chunk: Chunk) -> tuple[ChunkEntry, str]:
    entry = _entry(staged, chunk)
    with storage.writer(entry.uri, CHUNK_TAGS) as f:
        f.write(staged.head)
        for pos in range(chunk.start, chunk.end, BLOCK):
            f.write(read(pos, min(BLOCK, chunk.end - pos)))
    return entry, READ_WRITE


def finish(storage: Storage, staged: Staged, entries: list[ChunkEntry],
           assembly: dict[str, Any]) -> Manifest:
    """Write the manifest (last) and remove what earlier splits of ``dest`` left."""
    run = _run(storage, staged.info.uri, staged.dest, staged.settings, staged.info)
    run.start_after(staged.head, staged.bom, staged.plan.data_start, staged.format)
    manifest = run.finish_ranges(entries, assembly).manifest
    assert manifest is not None
    return manifest


# -- the scratch documents ----------------------------------------------------------------------


def scan_to_dict(scan: RangeScan) -> dict[str, Any]:
    return {"index": scan.index, "start": scan.start, "end": scan.end,
            "pieces": {str(int(state)): _piece_to_dict(p) for state, p in scan.pieces.items()},
            "invalid": asdict(scan.invalid) if scan.invalid is not None else None}


def scan_from_dict(data: Any) -> RangeScan:
    """Raises KeyError, TypeError or ValueError for what ``scan_to_dict`` did not write."""
    pieces = {State(int(state)): _piece_from_dict(p) for state, p in data["pieces"].items()}
    invalid = data.get("invalid")
    return RangeScan(int(data["index"]), int(data["start"]), int(data["end"]), pieces,
                     invalid=Invalid(int(invalid["offset"]), int(invalid["lines"]),
                                     int(invalid["byte"]), bool(invalid["at_end"]))
                     if invalid else None)


def _piece_to_dict(p: Piece) -> dict[str, Any]:
    return {"start": p.start, "end": p.end, "state": int(p.state), "rows": p.rows,
            "lines": p.lines, "first": _mark(p.first), "marks": [_mark(m) for m in p.marks],
            "pending": p.pending, "open_quote": list(p.open_quote) if p.open_quote else None,
            "failure": [p.failure.start, p.failure.end, int(p.failure.state), p.failure.lines]
            if p.failure else None}


def _mark(mark: Mark | None) -> list[int] | None:
    return None if mark is None else [mark.offset, mark.rows, mark.lines]


def _piece_from_dict(d: dict[str, Any]) -> Piece:
    failure = d["failure"]
    return Piece(int(d["start"]), int(d["end"]), State(int(d["state"])), int(d["rows"]),
                 int(d["lines"]), Mark(*d["first"]) if d["first"] else None,
                 tuple(Mark(*m) for m in d["marks"]), bool(d["pending"]),
                 (int(d["open_quote"][0]), int(d["open_quote"][1])) if d["open_quote"] else None,
                 Failure(failure[0], failure[1], State(failure[2]), failure[3])
                 if failure else None)


def chunks_to_list(chunks: Sequence[Chunk]) -> list[list[int]]:
    return [[c.index, c.start, c.end, c.rows, c.source_line] for c in chunks]


def chunks_from_list(data: Any, staged: Staged) -> list[Chunk]:
    """The chunk table; InvalidInput unless its chunks follow each other over the data."""
    try:
        chunks = [Chunk(*(int(v) for v in row)) for row in data]
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"chunk table of {staged.info.uri}: {exc}") from None
    at = staged.plan.data_start
    for i, c in enumerate(chunks):
        if (c.index, c.start) != (i, at) or c.end <= c.start or c.rows < 0:
            raise InvalidInput(f"chunk table of {staged.info.uri}: chunk {i} is {c}")
        at = c.end
    if chunks and at != staged.plan.size:
        raise InvalidInput(f"chunk table of {staged.info.uri}: it ends at {at}, not at "
                           f"{staged.plan.size}")
    return chunks


# -- all steps in one process: `s3split split s3://... s3://...` ---------------------------------

SERVER_SIDE_FROM: Final = 16 * 1024 * 1024  # smaller chunks are mostly their uploaded 5 MiB
SERVER_SIDE_RANGE: Final = 32 * 1024 * 1024
SERVER_SIDE_SCANS: Final = 2  # ranges scanned at a time (numpy releases the GIL)
SERVER_SIDE_COPIES: Final = 4  # chunks assembled at a time: waiting on S3, not on the CPU


def _note_assembled(storage: Storage, dest: str,
                    written: Sequence[Future[list[tuple[ChunkEntry, str]]]]) -> None:
    """The chunks a failed split assembled, noted for the next split of ``dest`` to delete;
    the split's own error is what the caller sees, whatever happens here."""
    names = [chunk_name(entry.index) for future in written
             if future.done() and not future.cancelled() and future.exception() is None
             for entry, _ in future.result()]
    with suppress(OSError, S3SplitError):
        note_written(storage, dest, names)


def server_side_applies(source: str, dest: str, settings: SplitSettings) -> bool:
    """Whether a split between S3 locations is assembled by S3 (``split_server_side``):
    by size, chunks large enough for the copied parts to outweigh the uploaded first part, of
    an uncompressed source (``split_server_side`` sees whether it is read transcoded)."""
    return (is_s3(source) and is_s3(dest) and settings.chunk_size is not None
            and settings.chunk_size >= SERVER_SIDE_FROM and not is_compressed(source))


def split_server_side(source: str, dest: str, settings: SplitSettings, storage: Storage,
                      on_progress: Callable[[int], None] = lambda n: None) -> Manifest | None:
    """The staged split's steps run here: the pinned source scanned once in ranges by ranged
    GETs, each chunk assembled by S3 (its header and first bytes uploaded, the rest
    ``UploadPartCopy`` of the source) as soon as the ranges up to its end are combined; the
    same chunks and manifest as the single pass (but for the manifest's ``assembly``). Each
    source byte is got once: what is read again (the header's bytes, the bytes around each
    cut, each chunk's first part) is kept from the first read (``twice_read``). None, having
    read only its first bytes, for a source read transcoded (``splitter.transcodes``): a
    range of another encoding cannot be found without decoding what precedes it, so it
    takes the single pass."""
    if other_encoding(settings):
        return None
    info = storage.stat(source)
    get = partial(read_pinned, storage.s3, PinnedSource.of(info))
    start = get(0, min(PEEK, info.size))
    if starts_transcoded(settings, start):
        return None
    got = [(0, start)]
    staged = prepare(source, dest, settings, storage, "local", SERVER_SIDE_RANGE, got=got,
                     fetch=KeptReads(get, [(HEAD, 0, len(start))], got))
    on_progress(staged.plan.data_start)
    kept = KeptReads(get, twice_read(staged.plan, got), got, cap=KEEP_CAP)
    got.clear()  # (kept holds what is read again; the rest, up to the header's 64 MiB, goes)
    combiner = Combiner(staged.plan, staged.header_lines)
    written: list[Future[list[tuple[ChunkEntry, str]]]] = []

    def assembled(chunk: Chunk) -> Future[list[tuple[ChunkEntry, str]]]:
        future = copies.submit(assemble, storage, staged, [chunk], kept)
        future.add_done_callback(lambda _: _release_targets(kept, staged.plan, chunk))
        return future

    with ThreadPoolExecutor(SERVER_SIDE_SCANS) as scans, \
            ThreadPoolExecutor(SERVER_SIDE_COPIES) as copies:
        try:
            ranges = scans.map(partial(scan, storage, staged, fetch=kept),
                               range(staged.plan.count))
            for done in ranges:
                kept.release(HEAD if done.index == 0 else f"cut {done.index}")
                on_progress(done.end - done.start)
                written += [assembled(chunk) for chunk in combiner.add(done)]
            table = combiner.table()
            if table.failure is not None or table.invalid is not None or (
                    table.state is State.QUOTED):
                raise_table_errors(storage, staged, table)
            written += [assembled(chunk) for chunk in table.chunks[len(written):]]
            records = [record for future in written for record in future.result()]
        except BaseException:
            scans.shutdown(cancel_futures=True)
            copies.shutdown(cancel_futures=True)  # (waits for the running ones)
            _note_assembled(storage, dest, written)
            raise
    assembly = {"scan": "ranges", "ranges": staged.plan.count, "jobs": SERVER_SIDE_SCANS,
                "chunks": [method for _, method in records]}
    return finish(storage, staged, [entry for entry, _ in records], assembly)


HEAD: Final = "head"
# A chunk's first part lies in [target, target + MIN_PART + TARGET_SLACK) unless the record
# that ends after its target is longer than the slack: then its tail is got again.
TARGET_SLACK: Final = 1024 * 1024


def twice_read(plan: Plan, got: Sequence[tuple[int, bytes]]) -> list[tuple[str, int, int]]:
    """Where a split between S3 locations reads source bytes a second time, as (owner, start,
    end): what ``prepare`` read (range 0 reads on from the header's end); around each cut, the
    reads that look for the first line end after it (from both ranges beside it), the first
    block of the range after it and the read-ahead of the range before it (which may pass
    its end by SMALL_READ); from each chunk target, the chunk's first part (uploaded)."""
    zones = [(HEAD, 0, max((o + len(d) for o, d in got), default=0))]
    for i, cut in enumerate(plan.cuts[1:], start=1):
        zones.append((f"cut {i}", cut - 1, cut + SMALL_READ + SNAP_READ + 2))
    for target in range(plan.data_start, plan.size, plan.chunk_size):
        zones.append((_target(plan, target), target, target + MIN_PART + TARGET_SLACK))
    return zones


def _target(plan: Plan, offset: int) -> str:
    """The owner of the zone of the last chunk target at or before ``offset``."""
    return f"target {_target_index(plan, offset)}"


def _target_index(plan: Plan, offset: int) -> int:
    return (offset - plan.data_start) // plan.chunk_size


def _release_targets(kept: KeptReads, plan: Plan, chunk: Chunk) -> None:
    """Release the zones of the targets from the chunk's start up to the next chunk's: a
    record longer than a chunk passes targets no chunk starts after, whose zones no one
    reads again (held, they would fill the cap with what is never asked for)."""
    first = _target_index(plan, chunk.start)
    stop = _target_index(plan, chunk.end) if chunk.end < plan.size else \
        _target_index(plan, plan.size - 1) + 1
    for index in range(first, max(stop, first + 1)):
        kept.release(f"target {index}")
