"""KeptReads: the bytes of its zones got once and served to every later read until released;
the pinned reader gets no byte its buffer holds."""

from __future__ import annotations

import threading
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from s3split.split.range_scan import plan_ranges, scan_range
from s3split.split.range_steps import KeptReads, PinnedReader
from s3split.split.s3_assembly import PinnedSource
from s3split.split.scanner import State

DATA = bytes(range(256)) * 4  # 1 KiB


class Source:
    """A ``get`` that counts how often each byte was got."""

    def __init__(self) -> None:
        self.times = [0] * len(DATA)
        self.lock = threading.Lock()

    def get(self, start: int, end: int) -> bytes:
        assert 0 <= start < end <= len(DATA), (start, end)
        with self.lock:
            for i in range(start, end):
                self.times[i] += 1
        return DATA[start:end]


spans = st.tuples(st.integers(0, len(DATA) - 1), st.integers(1, 300)).map(
    lambda s: (s[0], min(len(DATA), s[0] + s[1])))
zones = st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 1000), st.integers(1, 200))
                 .map(lambda z: (z[0], z[1], min(len(DATA), z[1] + z[2]))), max_size=5)


@settings(max_examples=300, deadline=None)
@given(zones=zones, reads=st.lists(spans, max_size=12), got=st.lists(spans, max_size=2))
def test_zone_bytes_are_got_once_and_every_read_is_the_source(
        zones: list[tuple[str, int, int]], reads: list[tuple[int, int]],
        got: list[tuple[int, int]]) -> None:
    source = Source()
    kept = KeptReads(source.get, zones, [(a, DATA[a:b]) for a, b in got])
    for a, b in reads:
        assert kept(a, b) == DATA[a:b]
    in_zone = {i for _, a, b in zones for i in range(a, b)}
    already = {i for a, b in got for i in range(a, b)}
    for i, times in enumerate(source.times):
        asked = sum(1 for a, b in reads if a <= i < b)
        if i in in_zone:
            assert times == (0 if i in already else min(asked, 1)), i
        else:
            assert times == asked, i


def test_released_zones_are_dropped_when_every_owner_released_them() -> None:
    source = Source()
    kept = KeptReads(source.get, [("a", 0, 100), ("b", 50, 150)])
    assert kept(0, 150) == DATA[:150]
    assert kept.held == 150
    kept.release("a")
    assert kept.held == 100  # 50-150: b's
    assert kept(0, 150) == DATA[:150]
    assert source.times[:50] == [2] * 50 and source.times[50:150] == [1] * 100
    kept.release("b")
    assert kept.held == 0


def test_past_its_cap_it_gets_bytes_again_instead_of_holding_them() -> None:
    source = Source()
    kept = KeptReads(source.get, [("a", 0, 100), ("b", 200, 300)], cap=120)
    assert kept(0, 300) == DATA[:300]
    assert kept.held == 100  # b's bytes did not fit
    assert kept(0, 300) == DATA[:300]
    assert source.times[:100] == [1] * 100 and source.times[200:300] == [2] * 100
    kept.release("a")
    assert kept(200, 300) == DATA[200:300]  # now they fit
    assert kept(200, 300) == DATA[200:300]
    assert source.times[200:300] == [3] * 100 and kept.held == 100


def test_concurrent_readers_of_a_zone_get_it_once() -> None:
    source = Source()
    kept = KeptReads(source.get, [("cut", 100, 900)])
    barrier = threading.Barrier(8)

    def read(start: int) -> None:
        barrier.wait()
        assert kept(start, start + 500) == DATA[start:start + 500]

    threads = [threading.Thread(target=read, args=(50 + 40 * i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(source.times[100:830]) == {1}  # (the reads end at 830 at most)


def test_a_range_scan_through_a_pinned_reader_gets_each_byte_once() -> None:
    """The scan's block reads, the byte after each block and its read-ahead: what the
    reader's buffer holds of a read is not got again."""
    data = b"id,note\r\n" + b"".join(b'%d,"a\r\nb, %d",c\r\n' % (i, i) for i in range(40_000))
    times = [0] * len(data)

    def fetch(start: int, end: int) -> bytes:
        for i in range(start, end):
            times[i] += 1
        return data[start:end]

    plan = plan_ranges("s3://b/k", len(data), 9, 100_000, 1, block=65_536)
    read = PinnedReader(cast(Any, None), PinnedSource("b", "k", "etag"), len(data),
                        readahead=300_000, fetch=fetch)
    scan = scan_range(read, plan, 0)
    assert scan.pieces[State.RECORD].rows == 40_000
    assert set(times[9:]) == {1}


@settings(max_examples=200, deadline=None)
@given(zones=zones, reads=st.lists(spans, max_size=8), released=st.sets(st.sampled_from("abc")))
def test_released_owners_bytes_are_got_again_and_the_rest_still_kept(
        zones: list[tuple[str, int, int]], reads: list[tuple[int, int]],
        released: set[str]) -> None:
    source = Source()
    kept = KeptReads(source.get, zones)
    for a, b in reads:
        assert kept(a, b) == DATA[a:b]
    for owner in released:
        kept.release(owner)
    before = list(source.times)
    for a, b in reads:
        assert kept(a, b) == DATA[a:b]
    still = {i for owner, a, b in zones if owner not in released for i in range(a, b)}
    for i, times in enumerate(source.times):
        asked = sum(1 for a, b in reads if a <= i < b)
        assert times - before[i] == (0 if i in still else asked), i
    assert kept.held == len({i for i in still if any(a <= i < b for a, b in reads)})
    for owner in "abc":
        kept.release(owner)
    assert kept.held == 0
