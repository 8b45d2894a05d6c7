"""plan_parts: the multipart layout of a chunk obeys S3's part rules for any size S3 allows;
which splits are assembled server-side."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3split.errors import InvalidOption
from s3split.split.manifest import SplitSettings
from s3split.split.range_steps import server_side_applies
from s3split.split.s3_assembly import (
    COPY,
    MAX_OBJECT,
    MAX_PART,
    MAX_PARTS,
    MIN_PART,
    UPLOAD,
    PartPlan,
    plan_parts,
)

MiB = 1024 * 1024


def check(plan: PartPlan, header_len: int, start: int, end: int) -> None:
    """The parts cover the chunk once, in order, and S3 would accept them."""
    assert plan.start == start and plan.end == end
    if plan.method == UPLOAD:
        assert plan.copies == () and plan.first_end == end
        assert header_len + end - start <= MIN_PART
        return
    assert plan.method == COPY and plan.copies
    first = header_len + plan.first_end - plan.start
    sizes = [first] + [b - a for a, b in plan.copies]
    assert all(MIN_PART <= size <= MAX_PART for size in sizes[:-1]), sizes[:3]
    assert 0 < sizes[-1] <= MAX_PART
    assert len(sizes) <= MAX_PARTS
    assert first == max(MIN_PART, header_len)  # no more bytes through us than S3 needs
    starts = [a for a, _ in plan.copies]
    ends = [b for _, b in plan.copies]
    assert starts == [plan.first_end, *ends[:-1]] and ends[-1] == end  # contiguous, in order


@given(header_len=st.integers(0, 64 * MiB), start=st.integers(0, 10**12),
       length=st.one_of(st.integers(1, 40 * MiB), st.integers(1, MAX_OBJECT - 64 * MiB)),
       part_size=st.integers(MIN_PART, MAX_PART))
def test_any_chunk_gets_parts_s3_accepts(header_len: int, start: int, length: int,
                                         part_size: int) -> None:
    plan = plan_parts(header_len, start, start + length, part_size)
    check(plan, header_len, start, start + length)


def test_the_largest_object_stays_within_10000_parts() -> None:
    plan = plan_parts(100, 0, MAX_OBJECT - 100, MIN_PART)
    check(plan, 100, 0, MAX_OBJECT - 100)
    assert plan.parts == MAX_PARTS


def test_one_put_up_to_5_mib_and_a_copy_from_one_byte_more() -> None:
    assert plan_parts(10, 0, MIN_PART - 10).method == UPLOAD
    plan = plan_parts(10, 0, MIN_PART - 9)
    assert plan.method == COPY and plan.copies == ((MIN_PART - 10, MIN_PART - 9),)


def test_64_mib_chunk_sends_5_mib() -> None:
    plan = plan_parts(100, 1000, 1000 + 64 * MiB)
    assert plan.first_end - plan.start + 100 == MIN_PART
    assert plan.copies == ((1000 + MIN_PART - 100, 1000 + 64 * MiB),)


@pytest.mark.parametrize(("args", "match"), [
    ((0, 5, 5, MIN_PART), "range 5-5"),
    ((0, 6, 5, MIN_PART), "range 6-5"),
    ((0, -1, 5, MIN_PART), "range -1-5"),
    ((0, 0, 5, MIN_PART - 1), "part size"),
    ((0, 0, 5, MAX_PART + 1), "part size"),
    ((0, 0, MAX_OBJECT + 1, MIN_PART), "5 TiB"),
    ((MAX_PART + 1, 0, 5, MIN_PART), "header"),
])
def test_refuses_what_s3_cannot_hold(args: tuple[int, int, int, int], match: str) -> None:
    with pytest.raises(InvalidOption, match=match):
        plan_parts(*args)


@pytest.mark.parametrize(("source", "dest", "settings", "applies"), [
    ("s3://b/in.csv", "s3://b/out", SplitSettings(chunk_size=64 * MiB), True),
    ("s3://b/in.csv", "s3://b/out", SplitSettings(chunk_size=16 * MiB), True),
    ("s3://b/in.csv", "s3://b/out", SplitSettings(chunk_size=16 * MiB - 1), False),
    ("s3://b/in.csv", "s3://b/out", SplitSettings(chunk_size=None, chunk_rows=1000), False),
    ("s3://b/in.csv.gz", "s3://b/out", SplitSettings(chunk_size=64 * MiB), False),
    ("in.csv", "s3://b/out", SplitSettings(chunk_size=64 * MiB), False),
    ("s3://b/in.csv", "out", SplitSettings(chunk_size=64 * MiB), False),
])
def test_an_s3_to_s3_split_is_assembled_server_side_when_chunks_outweigh_their_first_part(
        source: str, dest: str, settings: SplitSettings, applies: bool) -> None:
    assert server_side_applies(source, dest, settings) is applies
