"""The range split (s3split.split.range_scan, s3split.split.local_ranges) against the single
pass: the same chunk bytes, the same manifest, the same errors at the same byte and line, for
any cuts; also on sources chosen to break it (seeded random sources over a hostile alphabet, a file
rewritten during the split, a destination holding an earlier split)."""

from __future__ import annotations

import errno
import gzip
import io
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3split.errors import (
    DestinationUnwritable,
    MalformedCsv,
    SourceChanged,
    UnterminatedQuote,
    WorkerDied,
)
from s3split.split import local_ranges as assemble
from s3split.split.manifest import Manifest, SplitSettings
from s3split.split.range_scan import (
    SNAP_READ,
    Combiner,
    Plan,
    Reader,
    combine,
    plan_ranges,
    pread_reader,
    scan_local_range,
    scan_range,
)
from s3split.split.scanner import Scanner, State
from s3split.split.splitter import split
from s3split.storage import Storage
from tests.support.csvdata import BOM
from tests.support.fuzz import SETTINGS, Source, any_sources, write_source
from tests.support.splits import local_parts, read_split

Outcome = tuple[str, Any]


def outcome(path: str, dest: str, settings_: SplitSettings, **kw: Any) -> Outcome:
    """What a split of ``path`` into ``dest`` gives: its manifest (without the assembly
    record), chunk bytes and file names, or its error; ``dest`` is removed again."""
    try:
        result = split(path, dest, settings_, Storage(), **kw)
    except (MalformedCsv, UnterminatedQuote) as exc:
        assert "manifest.json" not in local_parts(dest)
        shutil.rmtree(dest, ignore_errors=True)
        return type(exc).__name__, str(exc)
    assert result.manifest is not None
    manifest, chunks = read_split(dest)
    assembly = manifest.pop("assembly", None)
    assert assembly is None or assembly["chunks"] == ["read_write"] * len(chunks)
    done = ("done", (manifest, chunks, local_parts(dest)))
    shutil.rmtree(dest)
    return done


def same_as_sequential(data: bytes, settings_: SplitSettings, cuts: list[int],
                       jobs: int = 1, block_size: int = 1 << 20) -> Outcome:
    with tempfile.TemporaryDirectory() as tmp:
        path, dest = write_source(tmp, data), os.path.join(tmp, "out")
        sequential = outcome(path, dest, settings_)
        ranged = outcome(path, dest, settings_, jobs=jobs, cuts=cuts, block_size=block_size)
        assert ranged == sequential
        return ranged


@settings(SETTINGS, max_examples=200)
@given(data=st.data(), source=any_sources, jobs=st.integers(1, 8),
       chunk_size=st.integers(1, 120), strict=st.booleans(),
       block_size=st.one_of(st.integers(1, 16), st.just(1 << 20)))
def test_ranges_equal_the_single_pass(data: st.DataObject, source: Source, jobs: int,
                                      chunk_size: int, strict: bool, block_size: int) -> None:
    """Random sources over the dialect fuzz alphabet, random cuts (``jobs`` ranges, or any
    number), tiny blocks: byte-identical chunks, identical manifests, identical errors."""
    n = len(source.data)
    count = data.draw(st.one_of(st.just(jobs - 1), st.integers(0, 12)))
    cuts = data.draw(st.lists(st.integers(0, n + 1), min_size=count, max_size=count))
    settings_ = SplitSettings(chunk_size=chunk_size, header=source.header,
                              delimiter=source.delimiter, quotechar=source.quotechar,
                              strict=strict)
    same_as_sequential(source.data, settings_, cuts, block_size=block_size)


# -- the edge cases, each with its cut ------------------------------------------------------------

QUOTED = b'id,note\n1,"first\nsecond\r\nthird"\n2,"a ""b"" c"\n3,plain\r\n4,"x,y"\n'


def chunks_of(result: Outcome) -> list[bytes]:
    assert result[0] == "done"
    chunks: list[bytes] = result[1][1]
    return chunks


def scans_for(data: bytes, cuts: list[int], chunk_size: int = 10,
              header: bytes = b"id,note\n", block: int = 1 << 20,
              strict: bool = False) -> tuple[Plan, list[Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_source(tmp, data)
        plan = plan_ranges(path, len(data), len(header), chunk_size, 1, cuts=cuts,
                           strict=strict, block=block)
        return plan, [scan_local_range(path, plan, i) for i in range(plan.count)]


def test_cut_inside_a_quoted_field() -> None:
    cut = QUOTED.index(b"second")  # just after the LF inside "first\nsecond..."
    plan, scans = scans_for(QUOTED, [cut])
    assert scans[1].start == cut  # (already after a line end)
    table = combine(plan, 1, scans)
    assert scans[0].pieces[State.RECORD].state is State.QUOTED  # so range 1 starts quoted
    assert table.state is State.RECORD
    for chunk_size in (1, 5, 10, 1000):
        settings_ = SplitSettings(chunk_size=chunk_size)
        chunks = chunks_of(same_as_sequential(QUOTED, settings_, [cut]))
        assert b"".join(c[len(b"id,note\n"):] for c in chunks) == QUOTED[len(b"id,note\n"):]


def test_cut_right_after_the_cr_of_a_crlf() -> None:
    cr = QUOTED.index(b"plain\r\n") + len(b"plain")
    _, scans = scans_for(QUOTED, [cr + 1])  # between CR and LF
    assert scans[1].start == cr + 2  # the range starts after the LF
    assert scans[0].end == cr + 2
    for chunk_size in (1, 7, 40):
        same_as_sequential(QUOTED, SplitSettings(chunk_size=chunk_size), [cr + 1])
        same_as_sequential(QUOTED, SplitSettings(chunk_size=chunk_size), [cr + 1], block_size=1)


def test_cut_inside_a_doubled_quote() -> None:
    doubled = QUOTED.index(b'""b') + 1
    for chunk_size in (1, 3, 30):
        for cuts in ([doubled], [doubled - 1, doubled, doubled + 1]):
            same_as_sequential(QUOTED, SplitSettings(chunk_size=chunk_size), cuts, block_size=2)


def test_cut_in_the_header() -> None:
    data = b'"long\nheader",b\n1,2\n3,4\n'
    plan, _ = scans_for(data, [3, 12, 20], header=b'"long\nheader",b\n')
    assert plan.cuts == (len(b'"long\nheader",b\n'), 20)  # cuts in the header are dropped
    for chunk_size in (1, 4):
        same_as_sequential(data, SplitSettings(chunk_size=chunk_size), [3, 12, 20])


def test_a_range_without_a_record_end_carries_its_target() -> None:
    """A quoted field spans the whole middle range (read in 4-byte blocks): the chunk target
    in it closes at the first record end of the range after it."""
    data = b"h\n1,2\n" + b'"' + b"x\n" * 40 + b'"\n5,6\n7,8\n'
    cuts = [10, 60]
    plan, scans = scans_for(data, cuts, chunk_size=20, header=b"h\n", block=4)
    middle = scans[1].pieces[State.QUOTED]
    assert middle.first is None and middle.marks == () and middle.pending
    table = combine(plan, 1, scans)
    closing = data.index(b'"\n5') + 2
    assert scans[1].start < 22 < 42 < scans[1].end < closing  # two targets in the range
    assert [c.end for c in table.chunks] == [closing, len(data)]
    same_as_sequential(data, SplitSettings(chunk_size=20), cuts, block_size=4)


def test_header_ending_in_a_bare_cr() -> None:
    """No chunk starts with an LF (the header's CR would swallow it): also at a cut."""
    data = b"h\r" + b"\n\n1\r\n\n\n2\n\n"
    for chunk_size in (1, 2, 3):
        for cuts in ([3], [4], [4, 5, 6, 9]):
            same_as_sequential(data, SplitSettings(chunk_size=chunk_size), cuts)


def test_strict_error_in_the_third_range_names_the_same_byte_and_line() -> None:
    rows = [b"%d,plain\n" % i for i in range(30)]
    bad = b'31,text "quoted" later\n'
    data = b"id,note\n" + b"".join(rows) + b'30,"a\nb"\n' + bad + b"32,x\n"
    at = data.index(b'"quoted')
    cuts = [60, data.index(b'30,"a'), len(data) - 2]
    _, scans = scans_for(data, cuts, strict=True)
    assert scans[2].start <= at < scans[2].end
    result = same_as_sequential(data, SplitSettings(chunk_size=10, strict=True), cuts)
    line = data[:at].count(b"\n") + 1
    assert result[0] == "MalformedCsv"
    assert f"quote in an unquoted field at byte {at} (line {line})" in result[1]


def test_unterminated_quote_at_the_end() -> None:
    data = b'id,note\n1,"a\nb"\n2,ok\n3,"open\n4,still\r\n5,x'
    at = data.index(b'"open')
    for cuts in ([20], [20, 28, 33, 40], list(range(len(data)))):
        result = same_as_sequential(data, SplitSettings(chunk_size=5), cuts, block_size=3)
        assert result[0] == "UnterminatedQuote"
        assert f"the quote at byte {at} (line 5) is never closed" in result[1]


def test_strict_scan_on_the_wrong_side_of_a_quote_is_not_an_error() -> None:
    """Every field quoted, strict: the scan that starts inside a quoted field fails at once
    on valid data; only the chosen scan counts."""
    data = b'"id","note"\n' + b"".join(b'"%d","v\n%d"\n' % (i, i) for i in range(50))
    cuts = list(range(15, len(data), 37))
    _, scans = scans_for(data, cuts, header=b'"id","note"\n', strict=True)
    assert any(scan.pieces[State.QUOTED].failure is not None for scan in scans[1:])
    result = same_as_sequential(data, SplitSettings(chunk_size=64, strict=True), cuts)
    assert result[0] == "done"


# -- processes, assembly and the manifest ----------------------------------------------------------


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real pool (each worker opens the file itself), under fork and spawn."""
    monkeypatch.setattr(assemble, "START_METHOD", method)
    data = QUOTED * 50
    result = same_as_sequential(data, SplitSettings(chunk_size=100), [700, 1500, 2300], jobs=3)
    assert len(chunks_of(result)) > 10


def split_dict(path: str, dest: str, **kw: Any) -> dict[str, Any]:
    result = split(path, dest, SplitSettings(chunk_size=64), Storage(), **kw)
    assert result.manifest is not None
    with open(result.manifest_uri, "rb") as f:
        document: dict[str, Any] = json.load(f)
    assert Manifest.from_dict(document).to_dict() == document  # loads back, record and all
    return document


def test_manifest_records_the_assembly(tmp_path: Any) -> None:
    path = write_source(str(tmp_path), QUOTED * 20)
    ranged = split_dict(path, str(tmp_path / "a"), jobs=2, cuts=[300, 900])
    assert ranged["assembly"] == {"scan": "ranges", "ranges": 3, "jobs": 2,
                                  "chunks": ["read_write"] * ranged["count"]}
    summary = Manifest.from_dict(ranged).summary()
    assert summary["assembly"]["methods"] == {"read_write": ranged["count"]}
    assert "assembly" not in split_dict(path, str(tmp_path / "b"))  # the single pass: none
    old = {k: v for k, v in ranged.items() if k != "assembly"}  # an older manifest loads
    assert Manifest.from_dict(old).assembly is None


def test_chunks_copied_through_a_buffer_smaller_than_them_are_the_single_pass_chunks(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk is copied through one buffer, refilled from where the last read ended (here
    7 bytes: every chunk takes many reads and writes, each at its own offset)."""
    path = write_source(str(tmp_path), QUOTED * 20)
    expected = outcome(path, str(tmp_path / "seq"), SplitSettings(chunk_size=64))
    monkeypatch.setattr(assemble, "COPY_BLOCK", 7)
    dest = str(tmp_path / "out")
    document = split_dict(path, dest, jobs=2, cuts=[500])
    assert document["assembly"]["chunks"] == ["read_write"] * document["count"]
    _, chunks = read_split(dest)
    assert chunks == expected[1][1]


def test_chunks_copied_by_reads_and_writes_that_come_back_short_are_whole(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The OS may read and write fewer bytes than asked (a signal, a pipe, a network
    filesystem): each copy goes on from where the last one ended, to the same chunks."""
    path = write_source(str(tmp_path), QUOTED * 20)
    expected = outcome(path, str(tmp_path / "seq"), SplitSettings(chunk_size=64))
    rng = random.Random(7)
    preadv, pwrite = os.preadv, os.pwrite

    def short_read(fd: int, buffers: list[memoryview], offset: int) -> int:
        return preadv(fd, [buffers[0][:rng.randint(1, len(buffers[0]))]], offset)

    def short_write(fd: int, data: memoryview, offset: int) -> int:
        return pwrite(fd, data[:rng.randint(1, len(data))], offset)

    monkeypatch.setattr(os, "preadv", short_read)
    monkeypatch.setattr(os, "pwrite", short_write)
    monkeypatch.setattr(assemble, "COPY_BLOCK", 13)
    assert outcome(path, str(tmp_path / "out"), SplitSettings(chunk_size=64), jobs=2,
                   cuts=[500, 900])[1][1] == expected[1][1]


@pytest.mark.parametrize("into_file", [True, False])
def test_a_source_cut_short_under_the_copy_fails_naming_where_it_ends(
        into_file: bool, tmp_path: Any) -> None:
    """The bytes a chunk was planned to hold are not all there any more (the source was
    truncated after its scan): SourceChanged names where it ends, into a file and into a
    writer without one (an upload) alike."""
    source = tmp_path / "source.csv"
    source.write_bytes(b"x" * 100)
    fd = os.open(source, os.O_RDONLY)
    try:
        with (open(tmp_path / "chunk", "wb") if into_file else io.BytesIO()) as f:
            f.write(b"h\n")
            with pytest.raises(SourceChanged, match="it ends at byte 100, but the chunk being "
                               "written runs to byte 150"):
                assemble.copy_out(fd, f, 40, 150, 2, str(source))
    finally:
        os.close(fd)


def test_a_full_disk_under_the_copy_fails_the_split_and_leaves_no_manifest(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_source(str(tmp_path), QUOTED * 20)

    def full(*args: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    dest = tmp_path / "out"
    with pytest.raises(DestinationUnwritable):
        split(path, str(dest), SplitSettings(chunk_size=64), Storage(), jobs=2, cuts=[500])
    names = local_parts(dest)
    assert "manifest.json" not in names and not [n for n in names if n.endswith(".tmp")]


def test_a_source_that_shrank_is_refused(tmp_path: Any) -> None:
    path = write_source(str(tmp_path), QUOTED * 4)
    plan = plan_ranges(path, len(QUOTED) * 5, 8, 10, 2)  # as if it had one QUOTED more
    with pytest.raises(SourceChanged, match=r"changed during the split"):
        scan_local_range(path, plan, 1)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert scan_range(pread_reader(fd), replace(plan, size=len(QUOTED) * 4), 1).end == \
            len(QUOTED) * 4
    finally:
        os.close(fd)


def test_rows_mode_and_compressed_sources_take_the_single_pass(tmp_path: Any) -> None:
    path = write_source(str(tmp_path), QUOTED * 20)
    rows = split(path, str(tmp_path / "rows"), SplitSettings(chunk_size=None, chunk_rows=7),
                 Storage(), jobs=4, cuts=[100])
    assert rows.manifest is not None and rows.manifest.assembly is None
    gz = str(tmp_path / "source.csv.gz")
    with gzip.open(gz, "wb") as f:
        f.write(QUOTED * 20)
    packed = split(gz, str(tmp_path / "gz"), SplitSettings(chunk_size=64), Storage(), jobs=4,
                   cuts=[100])
    assert packed.manifest is not None and packed.manifest.assembly is None
    assert packed.manifest.rows == rows.manifest.rows


def test_small_sources_take_the_single_pass(tmp_path: Any) -> None:
    path = write_source(str(tmp_path), QUOTED * 20)
    result = split(path, str(tmp_path / "out"), SplitSettings(chunk_size=64), Storage(), jobs=8)
    assert result.manifest is not None and result.manifest.assembly is None


def test_a_local_split_does_not_import_boto3(tmp_path: Any) -> None:
    path = write_source(str(tmp_path), BOM + QUOTED * 20)
    code = ("import sys\n"
            "from s3split.command import main\n"
            f"sys.argv = ['s3split', 'split', {path!r}, {str(tmp_path / 'out')!r}, "
            "'--chunk-size', '100', '--jobs', '2']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            # (the file is too small for ranges)
            "import s3split.split.local_ranges, s3split.split.range_scan\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('boto3', 'botocore', 'smart_open')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "chunks" in done.stdout


# -- long stretches without a line end, incremental combining, workers that fail ----------------


def counting(read: Reader, counts: list[int]) -> Reader:
    """``read``, adding the bytes it returns to ``counts[-1]``."""
    def counted(offset: int, length: int) -> bytes:
        data = read(offset, length)
        counts[-1] += len(data)
        return data
    return counted


def test_a_field_over_many_ranges_is_read_linearly(tmp_path: Any) -> None:
    """One 40 MiB quoted field (no line end in it) over 16 ranges: the 14 ranges wholly
    inside it report themselves empty after reading only up to the next cut, and only the
    range before the field reads on to its end, so the bytes read stay a small multiple of
    the source (when each range looked for its end up to the first line end after it, they
    read ~15x the source)."""
    field = b'"' + b"x" * (40 << 20) + b'"\r\n'
    data = b"id,note\n" + b"1,a\n" * 1000 + b"2," + field + b"3,b\n" * 1000
    opened = data.index(b'"')
    cuts = [opened + i * (len(field) // 16) for i in range(1, 16)] + [len(data) - 1000]
    path = write_source(str(tmp_path), data)
    plan = plan_ranges(path, len(data), len(b"id,note\n"), 1 << 20, 1, cuts=cuts)
    counts: list[int] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        read = counting(pread_reader(fd), counts)
        scans = []
        for index in range(plan.count):
            counts.append(0)
            scans.append(scan_range(read, plan, index))
    finally:
        os.close(fd)
    assert [scan.empty for scan in scans] == [False] + [True] * 14 + [False, False]
    for index in range(1, 15):  # an empty range reads no further than the next cut
        span = plan.cuts[index + 1] - plan.cuts[index]
        assert counts[index] <= span + span // SNAP_READ + 2  # (each read overlaps by a byte)
    assert scans[0].end == scans[15].start == opened + len(field)
    assert sum(counts) <= 3 * len(data)
    table = combine(plan, 1, scans)
    assert sum(c.end - c.start for c in table.chunks) == len(data) - len(b"id,note\n")
    same_as_sequential(data, SplitSettings(chunk_size=1 << 20), cuts, jobs=2)


def test_no_line_end_after_the_last_cut() -> None:
    """The last range holds no line end (the source ends without one): it is empty and its
    bytes are the previous range's, up to the source's end."""
    data = b"id,note\n1,a\n2," + b"y" * 300
    _, scans = scans_for(data, [20, 100])
    assert [scan.empty for scan in scans] == [False, True, True]
    assert scans[0].end == len(data)
    for chunk_size in (1, 50, 1000):
        same_as_sequential(data, SplitSettings(chunk_size=chunk_size), [20, 100])


def test_chunks_come_out_of_the_combiner_as_soon_as_their_end_is_known() -> None:
    """Scans arriving in any order: nothing until range 0 is in, then each chunk whose end
    lies in the ranges folded so far; with the table's last chunk, exactly ``combine``'s."""
    data = QUOTED * 40
    cuts = list(range(100, len(data), 150))
    plan, scans = scans_for(data, cuts, chunk_size=64)
    expected = combine(plan, 1, scans).chunks
    combiner = Combiner(plan, 1)
    order = [*range(3, len(scans)), 1, 2, 0]
    got = [combiner.add(scans[i]) for i in order]
    assert got[:-1] == [[]] * (len(scans) - 1)
    assert combiner.table().chunks[:len(got[-1])] == tuple(got[-1])
    assert len(expected) - 1 <= len(got[-1]) <= len(expected)
    assert combiner.table().chunks == expected
    combiner = Combiner(plan, 1)
    early = [c for scan in scans[:4] for c in combiner.add(scan)]
    assert early and early == list(expected[:len(early)])
    assert all(c.end <= scans[4].start for c in early)
    with pytest.raises(ValueError, match="again"):
        combiner.add(scans[2])


def test_a_worker_killed_by_the_os_is_named(tmp_path: Any) -> None:
    """SIGKILL a worker mid-scan (as the OOM killer would): the split fails at once with
    ``WorkerDied`` naming the range it held and its byte offsets and the signal, writes no
    manifest and leaves no worker process behind."""
    data = b"id,note\n" + b"".join(b"%d,some plain text\n" % i for i in range(800_000))
    path = write_source(str(tmp_path), data)
    cuts = [len(data) * i // 4 for i in range(1, 4)]
    killed: list[int] = []

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 60
        while len(children := multiprocessing.active_children()) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.2)
        killed.append(min(children, key=lambda p: p.pid).pid)
        os.kill(killed[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    dest = tmp_path / "out"
    started = time.monotonic()
    try:
        with pytest.raises(WorkerDied) as raised:  # (16-byte blocks: each range takes seconds)
            split(path, str(dest), SplitSettings(chunk_size=1 << 20), Storage(), jobs=2,
                  cuts=cuts, block_size=16)
    finally:
        killer.join()
    assert killed and time.monotonic() - started < 30
    message = str(raised.value)
    bounds = [len(b"id,note\n"), *cuts, len(data)]
    assert any(f"range {i} (bytes {bounds[i]} to {bounds[i + 1]}) of {path}" in message
               for i in (0, 1)), message
    assert "killed by SIGKILL" in message
    assert "manifest.json" not in local_parts(dest)
    assert multiprocessing.active_children() == []


def test_a_workers_own_error_comes_back_as_it_was(tmp_path: Any) -> None:
    """A worker's exception (here: the source is shorter than when the split started)
    reaches the caller as the same class and message, not as a pool error."""
    path = write_source(str(tmp_path), QUOTED * 40)
    size = len(QUOTED) * 40
    plan = plan_ranges(path, size + 100, 8, 64, 4)  # as if it had 100 bytes more
    with pytest.raises(SourceChanged) as raised:
        list(assemble.scan_ranges(plan, 2))
    assert f"it had {size + 100} when the split started" in str(raised.value)
    assert multiprocessing.active_children() == []


def test_the_second_start_state_is_scanned_only_until_it_falls_in_step(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A range after a cut is scanned from two states; on ordinary data they agree within a
    few records, so the bytes scanned exceed the range by at most a sixteenth of a block
    (not a whole block scanned twice)."""
    data = b"id,note\n" + b"".join(b'%d,"a, ""b""",c\r\n' % i for i in range(200_000))
    path = write_source(str(tmp_path), data)
    plan = plan_ranges(path, len(data), len(b"id,note\n"), 1 << 20, 2)
    scanned: list[int] = []
    real_survey = Scanner.survey

    def counted(self: Scanner, data: bytes, *args: Any, **options: Any) -> Any:
        scanned.append(len(data))
        return real_survey(self, data, *args, **options)

    monkeypatch.setattr(Scanner, "survey", counted)
    scan = scan_local_range(path, plan, 1)
    assert set(scan.pieces) == {State.RECORD, State.QUOTED}
    assert scan.end - scan.start < sum(scanned) <= scan.end - scan.start + plan.block // 16


def test_stopping_the_split_midway_stops_the_workers(tmp_path: Any) -> None:
    """Ctrl-C while the first scans come in (here raised by the progress callback, which
    runs in the splitting process): the interrupt propagates, no worker is left behind,
    and no manifest is written."""
    data = b"id,note\n" + b"".join(b"%d,some plain text\n" % i for i in range(100_000))
    path = write_source(str(tmp_path), data)
    calls: list[int] = []

    def interrupt(n: int) -> None:
        calls.append(n)
        if len(calls) == 2:  # (the first call is the header)
            raise KeyboardInterrupt

    dest = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        split(path, str(dest), SplitSettings(chunk_size=1 << 16), Storage(), jobs=2,
              cuts=[len(data) * i // 8 for i in range(1, 8)], block_size=64,
              on_progress=interrupt)
    assert len(calls) == 2
    assert multiprocessing.active_children() == []
    assert "manifest.json" not in local_parts(dest)


def test_parts_of_a_failed_split_are_removed_by_the_next_one(tmp_path: Any) -> None:
    """Chunks are written while later ranges are still scanned, so a split that then fails
    (a quote never closed, found at the end) has written parts that no manifest lists: they
    are noted, and the next split of the destination deletes those it does not rewrite."""
    dest = tmp_path / "d"
    good = write_source(str(tmp_path), QUOTED * 4)
    split(good, str(dest), SplitSettings(chunk_size=64), Storage(), jobs=2, cuts=[100])
    before = [n for n in local_parts(dest) if n.startswith("part-")]
    bad = str(tmp_path / "bad.csv")
    with open(bad, "wb") as f:
        f.write(QUOTED * 40 + b'9,"never closed\n')
    with pytest.raises(UnterminatedQuote):  # (each range's progress gives the writer time)
        split(bad, str(dest), SplitSettings(chunk_size=64), Storage(), jobs=1,
              cuts=list(range(100, 40 * len(QUOTED), 400)),
              on_progress=lambda n: time.sleep(0.05))
    written = [n for n in local_parts(dest) if n.startswith("part-")]
    assert len(written) > len(before) + 10  # (the failed split's complete chunks)
    one = str(tmp_path / "one.csv")
    with open(one, "wb") as f:
        f.write(b"id,note\n1,x\n")
    split(one, str(dest), SplitSettings(chunk_size=64), Storage())
    assert local_parts(dest) == ["manifest.json", "part-00000.csv"]


# -- hostile sources, rewritten sources, destinations with an earlier split -------------------

DIALECTS = [(",", '"'), (";", '"'), ("\t", '"'), (",", "'"), ("|", "'"), ("a", "b"), (" ", "x")]


def hostile_source(rng: random.Random) -> tuple[bytes, str, str]:
    """Bytes over what matters to csv.reader in a random dialect: doubled quotes, bare CRs,
    CRLFs, blank lines, the other quote, a BOM, sometimes a field far longer than a block."""
    d, q = rng.choice(DIALECTS)
    other = "'" if q == '"' else '"'
    alphabet = ["a", "b", d, q, q + q, " ", "\r", "\n", "\r\n", "é", other, "\n\n", "\r\r"]
    weights = [3, 2, 3, 3, 1, 1, 2, 3, 2, 1, 1, 1, 1]
    parts = rng.choices(alphabet, weights, k=rng.choice([0, 1, 2, 5, 20, 60, 150, 400]))
    if rng.random() < 0.2:  # a quoted field spanning many cuts and blocks
        long = q + "x" * rng.randint(50, 500) + "\n" * rng.randint(0, 3) + q
        parts.insert(rng.randrange(len(parts) + 1), long)
    if rng.random() < 0.2:  # a stretch without line ends
        parts.insert(rng.randrange(len(parts) + 1), "z" * rng.randint(50, 500))
    data = (BOM if rng.random() < 0.3 else b"") + "".join(parts).encode()
    if rng.random() < 0.05:
        data = data[:rng.randint(0, 3)]  # empty, a piece of a BOM
    return data, d, q


def any_outcome(path: str, dest: str, settings_: SplitSettings, **kw: Any) -> Outcome:
    """``outcome``, with any other error as its class and message too."""
    try:
        return outcome(path, dest, settings_, **kw)
    except Exception as exc:  # (compared, not hidden)
        shutil.rmtree(dest, ignore_errors=True)
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("first", range(0, 600, 150))
def test_hostile_sources_split_in_ranges_as_in_one_pass(first: int) -> None:
    """300 seeded sources each: random cuts (none, a few, or more than bytes; outside the
    data too), chunk sizes 1..300, strict or not, header or not, blocks of 1 byte up."""
    for seed in range(first, first + 150):
        rng = random.Random(seed)
        data, delimiter, quotechar = hostile_source(rng)
        n = len(data)
        count = rng.choice([0, 1, 3, 10, 40, n + 2])
        cuts = [rng.randint(-2, n + 2) for _ in range(count)]
        settings_ = SplitSettings(chunk_size=rng.choice([1, 2, 3, 5, 17, 64, 300]),
                                  header=rng.random() < 0.8, delimiter=delimiter,
                                  quotechar=quotechar, strict=rng.random() < 0.4)
        block = rng.choice([1, 2, 3, 4, 7, 16, 1 << 20])
        with tempfile.TemporaryDirectory() as tmp:
            path, dest = write_source(tmp, data), os.path.join(tmp, "out")
            single = any_outcome(path, dest, settings_, block_size=block)
            ranged = any_outcome(path, dest, settings_, block_size=block, cuts=cuts)
        assert ranged == single, (seed, data, settings_, cuts, block)


@pytest.mark.parametrize("block", [3, 1 << 20])
def test_strict_error_in_a_long_header_names_its_line(block: int, tmp_path: Any) -> None:
    data = b'"' + b"\n" * 5000 + b'"x,b\n1,2\n'  # text after the closing quote at byte 5002
    path = write_source(str(tmp_path), data)
    for cuts in (None, [5003]):
        result = any_outcome(path, str(tmp_path / "out"),
                             SplitSettings(chunk_size=10, strict=True), block_size=block,
                             cuts=cuts)
        assert result[0] == "MalformedCsv"
        assert "at byte 5002 (line 5001)" in result[1]


@pytest.mark.parametrize("when", [1, 2, 5])
@pytest.mark.parametrize("how", ["same size", "same size and mtime", "grown", "renamed over"])
def test_a_source_rewritten_during_the_split_fails_as_changed(when: int, how: str,
                                                              tmp_path: Any) -> None:
    """Rewritten after the header, or after some ranges: the single pass and the range
    split both fail ``SourceChanged`` and leave no manifest."""
    data = b"id,note\n" + b"".join(b'%d,"v\n%d"\n' % (i, i) for i in range(200))
    path = write_source(str(tmp_path), data)
    cuts = list(range(50, len(data), 97))

    def rewrite_at(n: int) -> Any:
        calls = [0]

        def progress(_: int) -> None:
            calls[0] += 1
            if calls[0] != n:
                return
            other = data.replace(b'"', b"'")  # same size, other records
            if how == "grown":
                other = data + b"9,x\n"
            if how == "renamed over":
                with open(path + ".new", "wb") as f:
                    f.write(other)
                st = os.stat(path)
                os.utime(path + ".new", ns=(st.st_atime_ns, st.st_mtime_ns))
                os.replace(path + ".new", path)
                return
            st = os.stat(path)
            with open(path, "r+b") as f:
                f.write(other)
            if how == "same size and mtime":
                os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        return progress

    for kw in ({}, {"cuts": cuts}):
        dest = tmp_path / f"out{len(kw)}"
        with pytest.raises(SourceChanged):
            split(path, str(dest), SplitSettings(chunk_size=40), Storage(), block_size=64,
                  on_progress=rewrite_at(when), **kw)
        assert "manifest.json" not in local_parts(dest)
        with open(path, "wb") as f:
            f.write(data)


@pytest.mark.parametrize("earlier", [1, 7, 500])
def test_a_destination_with_an_earlier_split_ends_the_same(earlier: int,
                                                           tmp_path: Any) -> None:
    """An earlier split (more, as many or fewer chunks) and a file of the user's in the
    destination: after the range split it holds what it holds after the single pass."""
    data = b"id,note\n" + b"".join(b'%d,"a\r\nb"\r\n' % i for i in range(60))
    path = write_source(str(tmp_path), data)
    cuts = list(range(3, len(data), 29))
    ends = []
    for kw in ({}, {"cuts": cuts}):
        dest = tmp_path / f"out{len(kw)}"
        split(path, str(dest), SplitSettings(chunk_size=earlier), Storage())
        (dest / "notes.txt").write_bytes(b"mine")
        split(path, str(dest), SplitSettings(chunk_size=50), Storage(), **kw)
        manifest, chunks = read_split(str(dest))
        manifest.pop("assembly", None)
        ends.append((manifest, chunks, local_parts(dest), (dest / "notes.txt").read_bytes()))
    manifest_0, chunks_0, names_0, mine_0 = ends[0]
    manifest_1, chunks_1, names_1, mine_1 = ends[1]
    assert (chunks_1, names_1, mine_1) == (chunks_0, names_0, mine_0)
    assert str(manifest_1).replace("out1", "out0") == str(manifest_0)
