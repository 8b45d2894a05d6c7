"""Attacks on the range split: ``split(..., cuts=[...])`` against the single pass on inputs
chosen to break it (seeded random sources over a hostile alphabet, a file rewritten during
the split, a destination holding an earlier split). Each compares the two outcomes."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from typing import Any

import pytest

from s3split.errors import SourceChanged
from s3split.split.manifest import SplitSettings
from s3split.split.splitter import split
from s3split.storage import Storage
from tests.support.fuzz import write_source
from tests.support.splits import local_parts, read_split
from tests.unit.test_range_split import Outcome, outcome

BOM = b"\xef\xbb\xbf"
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
@pytest.mark.parametrize("how", ["same size", "grown", "renamed over"])
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
            with open(path, "r+b") as f:
                f.write(other)
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
