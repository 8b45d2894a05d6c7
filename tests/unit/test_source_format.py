"""split() on sources in other encodings, with other delimiters, Excel's ``sep=`` line and
preambles: read right (chunks UTF-8, rows counted, how recorded in the manifest) or refused
at split time in one line naming what to pass."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import random
import re
from pathlib import Path
from typing import Any

import pytest
from backports import zstd

from s3split.errors import (
    DelimiterUnclear,
    HeaderTooLong,
    InvalidOption,
    MalformedCsv,
    SourceNotUtf8,
    SourceUndecodable,
    UnterminatedQuote,
)
from s3split.split import splitter
from s3split.split.manifest import SplitSettings
from s3split.split.splitter import split
from s3split.storage import Storage
from tests.support import realfiles
from tests.support.aws import mocked_s3
from tests.support.splits import read_split

DETECT = SplitSettings(chunk_size=None, chunk_rows=7, delimiter=None)


def split_bytes(tmp_path: Path, data: bytes, settings: SplitSettings = DETECT,
                **kwargs: Any) -> tuple[dict[str, Any], list[bytes]]:
    source, dest = tmp_path / "source.csv", tmp_path / "out"
    source.write_bytes(data)
    assert split(str(source), str(dest), settings, Storage(), **kwargs).done
    return read_split(str(dest))


def records_of(manifest: dict[str, Any], chunks: list[bytes]) -> list[list[str]]:
    """Every chunk is UTF-8 starting with the header; its records, as the manifest counts."""
    delimiter = manifest["format"]["delimiter"]
    found: list[list[str]] = []
    for entry, chunk in zip(manifest["chunks"], chunks, strict=True):
        rows = list(csv.reader(io.StringIO(chunk.decode("utf-8"), newline=""),
                               delimiter=delimiter))
        assert rows[0] == list(realfiles.HEADER) and len(rows) - 1 == entry["rows"]
        found += rows[1:]
    return found


# -- encodings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("bom", "encoding"), [
    (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
])
@pytest.mark.parametrize("block_size", [3, 1 << 20])
def test_a_utf16_or_utf32_bom_is_transcoded_and_rows_counted_right(
        tmp_path: Path, bom: bytes, encoding: str, block_size: int) -> None:
    rows = realfiles.utf16_le(tmp_path / "x", 60, bom=bom, encoding=encoding)
    manifest, chunks = split_bytes(tmp_path, (tmp_path / "x").read_bytes(),
                                   block_size=block_size)
    assert manifest["rows"] == 60 and records_of(manifest, chunks) == [list(r) for r in rows[1:]]
    assert manifest["format"] | {"data_start": 0} == {
        "delimiter": "\t", "delimiter_from": "detected", "encoding": encoding,
        "encoding_from": "byte order mark", "offsets": "UTF-8 bytes of the transcoded source",
        "skip_lines": 0, "sep_line": False, "data_start": 0}
    assert manifest["bom"] and manifest["header"] == "id\tname\tcity\tamount\r\n"
    starts = [c["source_offset"] for c in manifest["chunks"]]  # UTF-8 offsets, contiguous
    assert starts[0] == manifest["format"]["data_start"] == len(manifest["header"])


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-16-le", "koi8-r"])
def test_encoding_option_transcodes_any_codec(tmp_path: Path, encoding: str) -> None:
    rows = [realfiles.HEADER] + [(str(i), "Jos\u00e9" if encoding != "koi8-r" else "Иван",
                                  "Paris", "1.5") for i in range(30)]
    data = realfiles.text(rows, ",", "\r\n").encode(encoding)
    manifest, chunks = split_bytes(tmp_path, data, SplitSettings(
        chunk_size=50, delimiter=None, encoding=encoding))
    assert records_of(manifest, chunks) == [list(r) for r in rows[1:]]
    assert manifest["format"]["encoding"] == codecs.lookup(encoding).name
    assert manifest["format"]["encoding_from"] == "option"
    assert manifest["settings"]["encoding"] == encoding


def test_invalid_utf8_fails_at_split_time_naming_byte_line_and_option(tmp_path: Path) -> None:
    realfiles.windows_1252(tmp_path / "win.csv", 5)
    with pytest.raises(SourceNotUtf8) as info:
        split(str(tmp_path / "win.csv"), str(tmp_path / "out"), DETECT, Storage())
    assert str(info.value) == (
        f"{tmp_path / 'win.csv'}: not UTF-8: byte 26 (line 2) is 0xE9, which UTF-8 does not "
        "allow there; pass --encoding with the source's encoding (cp1252 for most Windows and "
        "Excel files, latin-1, utf-16, ...)")
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize(("name", "packed", "suffix"), [
    ("in.csv", gzip.compress(b"id,x\n1,2\n"), ".gz"),
    ("in.csv.GZ", gzip.compress(b"id,x\n1,2\n"), ".gz"),
    ("in.csv", zstd.compress(b"id,x\n1,2\n"), ".zst"),
], ids=["gzip", "gzip-upper-case-name", "zstd"])
@pytest.mark.parametrize("jobs", [1, 2])
def test_compressed_data_under_a_plain_name_is_told_to_take_its_name(
        tmp_path: Path, name: str, packed: bytes, suffix: str, jobs: int) -> None:
    """Not the advice to pass an ``--encoding`` (``latin-1`` would split the compressed bytes
    as text): the suffix that has it decompressed."""
    (tmp_path / name).write_bytes(packed)
    with pytest.raises(SourceNotUtf8, match=rf"{re.escape(name)}: not UTF-8: byte 1 \(line 1\) "
                       rf"is 0x[0-9A-F]{{2}}: it starts as .*-compressed data does; give it a "
                       rf"name ending in {re.escape(suffix)}"):
        split(str(tmp_path / name), str(tmp_path / "out"), SplitSettings(chunk_size=10),
              Storage(), jobs=jobs, cuts=[4] if jobs > 1 else None)
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize(("data", "offset", "line"), [
    (b"a,b\n1,\xc3\xa9\n2,\xc3", 11, 3),  # a character the end cuts short
    (b"a,b\n1,x\n\xed\xa0\x80,2\n", 8, 3),  # a surrogate
    (b"a,b\n1,\xe0\x80\xaf\n", 6, 2),  # an overlong form
    (b"a,\xff\n1,2\n", 2, 1),  # in the header
    (b"a,b\r\n1,\"q\r\n\xc3(\"\n", 11, 3),  # inside a quoted field, after CRLF
])
@pytest.mark.parametrize("block_size", [1, 2, 5, 1 << 20])
def test_invalid_utf8_is_found_wherever_blocks_cut(tmp_path: Path, data: bytes, offset: int,
                                                   line: int, block_size: int) -> None:
    with pytest.raises(SourceNotUtf8, match=f"byte {offset} \\(line {line}\\)"):
        split_bytes(tmp_path, data, SplitSettings(chunk_size=3), block_size=block_size)


def test_a_character_cut_short_where_a_block_ends_on_a_word_is_found(tmp_path: Path) -> None:
    # The first block's last lead waits for the second, whose last lead waits too: the bytes
    # checked with the second end on a 64-byte word, right after the cut-short E2 82.
    block = splitter.BLOCK
    wide = "\u00e9".encode() * (block // 2 - 2)  # (dense: every byte is checked)
    first = b"h\n" + wide + b"a\xc3"
    second = b"\xa9" + wide + b"\xe2\x82\xc3"
    with pytest.raises(SourceNotUtf8, match=f"byte {2 * block - 3} \\(line 2\\) is 0xE2"):
        split_bytes(tmp_path, first + second + b"\xa9\n", SplitSettings(chunk_size=3))


@pytest.mark.parametrize(("data", "error"), [
    # A --strict error just after the header, behind a byte UTF-8 does not allow: the header's
    # scan must not see past the header's end (it would, in a block holding both).
    (b'id,v\n1\xff,"b"x\n1,2\n', "not UTF-8: byte 6 (line 2) is 0xFF"),
    (b'id,v\n1,"b"x\xff\n1,2\n', "text after a closing quote at byte 10 (line 2)"),
    # In the header itself: the first of the two in the source.
    (b'a\xff,"b"x\n1,2\n', "not UTF-8: byte 1 (line 1) is 0xFF"),
    (b'a,"b"x\xff\n1,2\n', "text after a closing quote at byte 5 (line 1)"),
    # A quoted header never closed: a byte UTF-8 does not allow comes first, as in the data.
    (b'a\xff,"b\n', "not UTF-8: byte 1 (line 1) is 0xFF"),
    (b'a,"b\xe2\x82', "unterminated quoted field: the quote at byte 2 (line 1)"),
])
@pytest.mark.parametrize("block_size", [1, 3, 1 << 20])
@pytest.mark.parametrize("cuts", [None, [9]], ids=["single pass", "ranges"])
def test_the_first_error_in_or_after_the_header_is_raised_whatever_the_blocks(
        tmp_path: Path, data: bytes, error: str, block_size: int, cuts: list[int] | None) -> None:
    with pytest.raises((SourceNotUtf8, MalformedCsv, UnterminatedQuote),
                       match=re.escape(f"source.csv: {error}")):
        split_bytes(tmp_path, data, SplitSettings(chunk_size=5, strict=True),
                    block_size=block_size, cuts=cuts)


@pytest.mark.parametrize("cuts", [None, [9]], ids=["single pass", "ranges"])
def test_a_strict_error_in_a_header_longer_than_a_span_names_its_line(
        tmp_path: Path, cuts: list[int] | None) -> None:
    span = splitter.SPAN
    data = b'"' + b"\r\n" * span + b'"x,\xff\n1,2\n'  # text after the quote at 2 * span + 2
    with pytest.raises(MalformedCsv, match=re.escape(
            f"source.csv: text after a closing quote at byte {2 * span + 2} (line {span + 1})")):
        split_bytes(tmp_path, data, SplitSettings(chunk_size=5, strict=True), cuts=cuts)


def test_valid_utf8_of_every_width_passes_cut_anywhere(tmp_path: Path) -> None:
    rng = random.Random(7)
    words = ["a", "\u00e9", "\u6771\u4eac", "\U0001f600", "\u0800", "\ud7ff", "\U0010ffff"]
    rows = [["k", "v"]] + [[str(i), "".join(rng.choices(words, k=5))] for i in range(300)]
    data = "".join(",".join(r) + "\n" for r in rows).encode()
    for block_size in (1, 3, 7, 64):
        _, chunks = split_bytes(tmp_path, data, SplitSettings(chunk_size=40),
                                       block_size=block_size)
        assert b"".join(c[len(b"k,v\n"):] for c in chunks) == data[len(b"k,v\n"):]


def test_undecodable_bytes_in_the_named_encoding_say_where(tmp_path: Path) -> None:
    data = "id,name\n1,Jos\u00e9\n".encode("cp1252") + b"2,\x81\n"  # 0x81: not in cp1252
    with pytest.raises(SourceUndecodable) as info:
        split_bytes(tmp_path, data, SplitSettings(chunk_size=10, encoding="cp1252"))
    assert "not cp1252: 0x81 at source byte 17 (line 3) does not decode" in str(info.value)
    assert "--encoding" in str(info.value)


@pytest.mark.parametrize(("data", "encoding", "expected"), [
    (b"\xff\xfea\x00", "cp1252", "byte order mark of utf-16-le, but --encoding cp1252"),
    (b"\xef\xbb\xbfa,b\n", "latin-1", "byte order mark of utf-8, but --encoding latin-1"),
    (b"a\x00,\x00", "utf-16", "--encoding utf-16 needs a byte order mark"),
    (b"a,b\n", "no-such", "unknown encoding 'no-such'"),
    (b"a,b\n", "rot13", "unknown encoding 'rot13'"),
])
def test_encodings_that_cannot_be_right_are_refused(tmp_path: Path, data: bytes, encoding: str,
                                                    expected: str) -> None:
    with pytest.raises(InvalidOption, match=expected):
        split_bytes(tmp_path, data, SplitSettings(chunk_size=10, encoding=encoding))


def test_a_transcoded_source_takes_the_single_pass_and_resumes(tmp_path: Path) -> None:
    realfiles.utf16_le(tmp_path / "u.csv", 400)
    source, whole, parts = str(tmp_path / "u.csv"), str(tmp_path / "whole"), str(tmp_path / "p")
    done = split(source, whole, SplitSettings(chunk_size=500, delimiter=None), Storage(),
                 cuts=[10, 5000, 9000], block_size=1000)
    assert done.manifest is not None and done.manifest.assembly is None  # no range split
    calls = iter(range(1000))
    result = split(source, parts, SplitSettings(chunk_size=500, delimiter=None), Storage(),
                   should_stop=lambda: next(calls) % 4 == 3, block_size=1000)
    while result.token is not None:
        result = split(source, parts, SplitSettings(chunk_size=500, delimiter=None), Storage(),
                       resume=result.token, block_size=1000)
    one, resumed = read_split(whole), read_split(parts)
    assert resumed[1] == one[1] and resumed[0]["rows"] == 400
    assert [c["source_offset"] for c in resumed[0]["chunks"]] == \
        [c["source_offset"] for c in one[0]["chunks"]]



@pytest.mark.parametrize(("head", "ranges"), [(codecs.BOM_UTF16_LE, False), (b"id,", True)])
def test_whether_an_s3_source_may_split_in_ranges_reads_its_first_bytes_only(
        monkeypatch: pytest.MonkeyPatch, head: bytes, ranges: bool) -> None:
    """The byte order mark is looked for with one ranged GET of 4 bytes of the pinned version,
    not a stream that would fetch megabytes of a big source to see them."""
    with mocked_s3(monkeypatch, "src-bucket") as s3:
        s3.put_object(Bucket="src-bucket", Key="big.csv", Body=head + b"v\n1\n" * 200_000)
        asked: list[str] = []
        s3.meta.events.register("before-send.s3.GetObject",
                                lambda request, **_: asked.append(request.headers["Range"]))
        storage = Storage(s3)
        uri = "s3://src-bucket/big.csv"
        applies = splitter.range_split_applies(uri, SplitSettings(chunk_size=64),
                                               storage.stat(uri), storage)
    assert applies is ranges
    assert [r.decode() if isinstance(r, bytes) else r for r in asked] == ["bytes=0-3"]

# -- delimiters ---------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_detected_and_recorded(tmp_path: Path, delimiter: str) -> None:
    rows = [realfiles.HEADER] + [(str(i), "a,b" if delimiter != "," else "x", "c|d;e"
                                  if delimiter == "\t" else "y", "1") for i in range(20)]
    data = "".join(delimiter.join(r) + "\n" for r in rows).encode()
    manifest, chunks = split_bytes(tmp_path, data)
    assert (manifest["format"]["delimiter"], manifest["format"]["delimiter_from"]) == (
        delimiter, "detected")
    assert records_of(manifest, chunks) == [list(r) for r in rows[1:]]
    assert manifest["settings"]["delimiter"] is None


def test_two_plausible_delimiters_are_refused_naming_both(tmp_path: Path) -> None:
    with pytest.raises(DelimiterUnclear) as info:
        split_bytes(tmp_path, b"a,b;c\n1,2;3\n4,5;6\n")
    assert "both ',' (2 fields) and ';' (2 fields)" in str(info.value)
    assert "pass --delimiter ',' or --delimiter ';'" in str(info.value)


def test_an_explicit_delimiter_always_wins(tmp_path: Path) -> None:
    data = b"a,b;c\n1,2;3\n"
    manifest, _ = split_bytes(tmp_path, data, SplitSettings(chunk_size=5, delimiter=";"))
    assert (manifest["format"]["delimiter"], manifest["format"]["delimiter_from"]) == (
        ";", "option")


def test_a_one_field_header_holding_a_tab_never_runs_as_one_column(tmp_path: Path) -> None:
    manifest, chunks = split_bytes(tmp_path, b"id\tname\n1\n2\tb\tc\n3\tx\n")
    assert manifest["format"]["delimiter"] == "\t"  # ragged records: rejected as such later
    assert chunks[0].startswith(b"id\tname\n") and manifest["rows"] == 3


def test_ragged_records_do_not_hide_the_headers_delimiter(tmp_path: Path) -> None:
    manifest, _ = split_bytes(tmp_path, b"id,name\n1,a\n2\n3,b,c\n4,d\n")
    assert manifest["format"]["delimiter"] == ","


def test_a_header_splitting_two_ways_is_decided_by_its_records(tmp_path: Path) -> None:
    manifest, _ = split_bytes(tmp_path, b"id,price;eur\n1,5\n2,7\n")
    assert manifest["format"]["delimiter"] == ","
    with pytest.raises(DelimiterUnclear) as info:
        split_bytes(tmp_path, b"a,b;c\n1\n2\n")
    assert "the header splits by ',' (2 fields) and by ';' (2 fields), and the first records " \
           "follow neither; pass --delimiter ',' or --delimiter ';'" in str(info.value)


def test_a_header_without_any_candidate_is_one_column(tmp_path: Path) -> None:
    manifest, _ = split_bytes(tmp_path, b"name\nAda\nGrace\n")
    assert manifest["format"]["delimiter_from"] == "default: one column"
    assert manifest["rows"] == 2


# -- Excel's sep= line and preambles ------------------------------------------------------------


@pytest.mark.parametrize("line", [b"sep=;\r\n", b"sep=;\n", b'"sep=;"\n', b"SEP=;\r\n"])
def test_a_sep_line_sets_the_delimiter_and_is_not_the_header(tmp_path: Path,
                                                             line: bytes) -> None:
    rows = [realfiles.HEADER] + [(str(i), "a", "b", "1,5") for i in range(20)]
    data = line + realfiles.text(rows, ";").encode()
    for block_size in (1, 4, 1 << 20):
        manifest, chunks = split_bytes(tmp_path, data, block_size=block_size)
        assert manifest["format"]["sep_line"] and manifest["format"]["delimiter"] == ";"
        assert records_of(manifest, chunks) == [list(r) for r in rows[1:]]
        assert manifest["chunks"][0]["source_line"] == 3
        assert manifest["format"]["data_start"] == len(line) + len("id;name;city;amount\n")


def test_a_delimiter_contradicting_the_sep_line_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidOption) as info:
        split_bytes(tmp_path, b"sep=;\na;b\n1;2\n", SplitSettings(chunk_size=5, delimiter=","))
    assert "its sep=; line sets the delimiter ';', but --delimiter ',' was given" in \
        str(info.value)
    manifest, _ = split_bytes(tmp_path, b"sep=;\na;b\n1;2\n",
                              SplitSettings(chunk_size=5, delimiter=";"))
    assert manifest["rows"] == 1


def test_skip_lines_drops_the_preamble_and_keeps_line_numbers(tmp_path: Path) -> None:
    rows = realfiles.records(20)
    data = (b"Title\r\nnote, with a comma\r\"quoted \"\" line\n"
            + realfiles.text(rows).encode())
    for block_size in (1, 3, 1 << 20):
        manifest, chunks = split_bytes(tmp_path, data, SplitSettings(
            chunk_size=None, chunk_rows=7, delimiter=None, skip_lines=3), block_size=block_size)
        assert records_of(manifest, chunks) == [list(r) for r in rows[1:]]
        assert manifest["rows"] == 20 and manifest["format"]["skip_lines"] == 3
        assert [c["source_line"] for c in manifest["chunks"]] == [5, 12, 19]


def test_skipping_more_lines_than_the_source_has_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidOption, match=r"--skip-lines 5 drops more lines than it has "
                                            r"\(2\); pass at most 2"):
        split_bytes(tmp_path, b"a\nb\n", SplitSettings(chunk_size=5, skip_lines=5))


def test_a_preamble_is_refused_with_the_lines_to_skip(tmp_path: Path) -> None:
    realfiles.with_preamble(tmp_path / "p.csv", 10)
    with pytest.raises(DelimiterUnclear) as info:
        split_bytes(tmp_path, (tmp_path / "p.csv").read_bytes())
    assert "the first 3 lines look like a preamble: from line 4 on the records have 4 " \
           "fields by ','; pass --skip-lines 3" in str(info.value)


def test_a_preamble_longer_than_the_header_limit_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(splitter, "HEADER_LIMIT", 100)
    with pytest.raises(HeaderTooLong, match="the 2 lines to skip take more than"):
        split_bytes(tmp_path, b"x" * 300 + b"\nid,v\n1,2\n",
                    SplitSettings(chunk_size=5, skip_lines=2), block_size=16)
