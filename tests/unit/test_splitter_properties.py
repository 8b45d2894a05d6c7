"""Properties of split() over random valid CSV sources, chunk targets and block sizes."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from s3split.errors import UnterminatedQuote
from s3split.split.manifest import ResumeToken, SplitSettings
from s3split.split.splitter import BLOCK, split
from s3split.storage import Storage
from tests.support.csvdata import BOM, ref_open_quote
from tests.support.fuzz import (
    SETTINGS,
    Source,
    any_sources,
    sources,
    unterminated,
    write_source,
)
from tests.support.splits import check_rows, check_sizes, check_split, local_parts, read_split


@st.composite
def split_settings(draw: st.DrawFn, source: Source) -> SplitSettings:
    by_rows = draw(st.booleans())
    return SplitSettings(
        chunk_size=None if by_rows else draw(st.integers(1, 300)),
        chunk_rows=draw(st.integers(1, 150)) if by_rows else None,
        header=source.header,
        delimiter=source.delimiter,
        quotechar=source.quotechar,
    )


block_sizes = st.one_of(st.integers(1, 64), st.just(BLOCK))


def check(source: Source, settings_: SplitSettings, dest: str) -> None:
    manifest, chunks = read_split(dest)
    checked = check_split(source.data, manifest, chunks, header=source.header,
                          delimiter=source.delimiter, quotechar=source.quotechar)
    if settings_.chunk_size is not None:
        check_sizes(checked, settings_.chunk_size)
    else:
        assert settings_.chunk_rows is not None
        check_rows(checked, settings_.chunk_rows)
    names = local_parts(dest)
    assert names == ["manifest.json", *(f"part-{i:05d}.csv" for i in range(len(chunks)))]


@SETTINGS
@given(data=st.data(), source=any_sources, block_size=block_sizes)
def test_split_invariants(data: st.DataObject, source: Source, block_size: int) -> None:
    """The contract: the chunks' records (headers removed) are the records csv.reader reads
    from the whole source, in order, and the chunks rejoin to the source bytes."""
    settings_ = data.draw(split_settings(source))
    with tempfile.TemporaryDirectory() as tmp:
        dest = os.path.join(tmp, "out")
        if unterminated(source):
            with pytest.raises(UnterminatedQuote):
                split(write_source(tmp, source.data), dest, settings_, Storage(),
                      block_size=block_size)
            assert "manifest.json" not in local_parts(dest)
            return
        result = split(write_source(tmp, source.data), dest, settings_, Storage(),
                       block_size=block_size)
        assert result.done and result.token is None
        assert result.manifest_uri == os.path.join(dest, "manifest.json")
        check(source, settings_, dest)
        assert result.manifest is not None
        with open(result.manifest_uri, "rb") as f:
            assert json.loads(f.read()) == result.manifest.to_dict()


@st.composite
def many_records(draw: st.DrawFn) -> Source:
    """Hundreds of short records, so that targets of more than 64 rows are reached
    (the splitter counts such rows a span at a time instead of one by one)."""
    record = st.sampled_from(["1", "22", "", '"a\nb"', '"x,""y"""', '"\r\n",z', "q,r"])
    records = ["h", *draw(st.lists(record, min_size=60, max_size=400))]
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(records) + (newline if draw(st.booleans()) else "")
    return Source(text.encode(), ",", '"', True)


@settings(SETTINGS, max_examples=60)
@given(source=many_records(), chunk_rows=st.integers(60, 150),
       block_size=st.one_of(st.integers(8, 2048), st.just(BLOCK)))
def test_rows_mode_with_many_records(source: Source, chunk_rows: int, block_size: int) -> None:
    settings_ = SplitSettings(chunk_size=None, chunk_rows=chunk_rows)
    with tempfile.TemporaryDirectory() as tmp:
        dest = os.path.join(tmp, "out")
        split(write_source(tmp, source.data), dest, settings_, Storage(), block_size=block_size)
        check(source, settings_, dest)


def run_in_steps(path: str, dest: str, settings_: SplitSettings, block_size: int,
                 stop_after: Callable[[int], bool], max_calls: int) -> int:
    """Split, stopping whenever ``stop_after(chunks so far)``; resume until done.

    Returns the number of invocations. Each token goes through JSON, as it would
    between two Lambda invocations.
    """
    closed = 0

    def should_stop() -> bool:
        nonlocal closed
        closed += 1
        return stop_after(closed)

    token: ResumeToken | None = None
    for calls in range(1, max_calls + 1):
        result = split(path, dest, settings_, Storage(), resume=token, should_stop=should_stop,
                       block_size=block_size)
        if result.done:
            assert result.token is None
            return calls
        assert result.manifest is None and result.token is not None
        assert not os.path.exists(os.path.join(dest, "manifest.json")), "paused split looks done"
        token = ResumeToken.from_dict(json.loads(json.dumps(result.token.to_dict())))
    raise AssertionError(f"not done after {max_calls} invocations")


def one_pass(path: str, dest: str, settings_: SplitSettings, block_size: int,
             ) -> tuple[dict[str, Any], list[bytes], list[str]]:
    """Split in one pass; return the manifest, the chunks and the file list, and remove
    ``dest`` again so a second split there starts from nothing."""
    split(path, dest, settings_, Storage(), block_size=block_size)
    manifest, chunks = read_split(dest)
    names = local_parts(dest)
    shutil.rmtree(dest)
    return manifest, chunks, names


def assert_same(dest: str, expected: tuple[dict[str, Any], list[bytes], list[str]]) -> None:
    """``dest`` holds exactly the one-pass result: manifest, chunk bytes, and no other file
    (in particular no progress records)."""
    manifest, chunks = read_split(dest)
    assert (manifest, chunks, local_parts(dest)) == expected


@settings(SETTINGS, max_examples=120)
@given(data=st.data(), source=any_sources, block_size=block_sizes)
def test_resume_after_every_chunk(data: st.DataObject, source: Source, block_size: int) -> None:
    assume(not unterminated(source))
    settings_ = data.draw(split_settings(source))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_source(tmp, source.data)
        dest = os.path.join(tmp, "out")
        expected = one_pass(path, dest, settings_, block_size)
        count = expected[0]["count"]
        calls = run_in_steps(path, dest, settings_, block_size, lambda n: True, count + 2)
        assert calls in (count, count + 1)  # one per chunk, maybe one to find the end
        assert_same(dest, expected)
        check(source, settings_, dest)


@settings(SETTINGS, max_examples=120)
@given(data=st.data(), source=sources(), block_size=block_sizes)
def test_resume_after_a_random_chunk(data: st.DataObject, source: Source,
                                     block_size: int) -> None:
    settings_ = data.draw(split_settings(source))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_source(tmp, source.data)
        dest = os.path.join(tmp, "out")
        expected = one_pass(path, dest, settings_, block_size)
        count = expected[0]["count"]
        stop_at = data.draw(st.integers(1, max(count, 1)))
        calls = run_in_steps(path, dest, settings_, block_size, lambda n: n == stop_at, 3)
        # (the last chunk may close at the end of the source, where nobody is asked)
        assert calls == 2 if stop_at < count else calls in (1, 2)
        assert_same(dest, expected)


@settings(SETTINGS, max_examples=120)
@given(source=sources(), block_size=block_sizes, chunk_size=st.integers(1, 300),
       unterminated=st.lists(st.sampled_from(["a", "\n", "\r\n", "''", '""', ","]), max_size=6))
def test_unterminated_quote_is_located(source: Source, block_size: int, chunk_size: int,
                                       unterminated: list[str]) -> None:
    """A quoted field left open at the end: the error names the quote's offset and line."""
    q = source.quotechar
    tail = (q + "".join(unterminated)).encode()  # pairs of quotes keep the field open
    data = source.data
    if data and not data.endswith(b"\n"):
        data += b"\n"
    data += tail
    skip = len(BOM) if data.startswith(BOM) else 0  # the splitter reads past a BOM
    where = ref_open_quote(data[skip:], q.encode(), source.delimiter.encode())
    assert where is not None
    offset, line = where[0] + skip, where[1]
    settings_ = SplitSettings(chunk_size=chunk_size, header=source.header,
                              delimiter=source.delimiter, quotechar=q)
    with tempfile.TemporaryDirectory() as tmp:
        dest = os.path.join(tmp, "out")
        path = write_source(tmp, data)
        try:
            split(path, dest, settings_, Storage(), block_size=block_size)
        except UnterminatedQuote as exc:
            message = str(exc)
        else:
            raise AssertionError("no UnterminatedQuote")
        assert message == (f"{path}: unterminated quoted field: the quote at byte {offset} "
                           f"(line {line}) is never closed")
        names = local_parts(dest)
        assert "manifest.json" not in names
        assert not [n for n in names if n.endswith(".tmp")]

