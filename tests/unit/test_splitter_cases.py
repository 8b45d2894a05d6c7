"""split() on explicit local cases: edge-case sources, re-splitting, failures and errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from s3split.errors import (
    HeaderTooLong,
    InvalidOption,
    SourceChanged,
    SourceNotFound,
    SourceUnreadable,
    UnterminatedQuote,
)
from s3split.split import splitter
from s3split.split.manifest import SplitSettings
from s3split.split.splitter import split
from s3split.storage import Storage
from tests.support.csvdata import BOM, make_csv
from tests.support.splits import check_rows, check_sizes, check_split, local_parts, read_split

ROWS = SplitSettings(chunk_size=None, chunk_rows=2)


def source_file(tmp_path: Path, data: bytes, name: str = "source.csv") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def run(tmp_path: Path, data: bytes, settings: SplitSettings = ROWS, dest: str = "out",
        **kwargs: Any) -> tuple[dict[str, Any], list[bytes]]:
    """Split ``data`` into tmp_path/dest, check the general invariants, return the result."""
    out = str(tmp_path / dest)
    result = split(source_file(tmp_path, data), out, settings, Storage(), **kwargs)
    assert result.done
    manifest, chunks = read_split(out)
    check_split(data, manifest, chunks, header=settings.header, delimiter=settings.delimiter,
                quotechar=settings.quotechar)
    return manifest, chunks


# -- sources at the edges ---------------------------------------------------------------------


@pytest.mark.parametrize("header", [True, False])
def test_empty_file(tmp_path: Path, header: bool) -> None:
    manifest, chunks = run(tmp_path, b"", SplitSettings(chunk_size=10, header=header))
    assert chunks == []
    assert (manifest["count"], manifest["rows"], manifest["bytes"]) == (0, 0, 0)
    assert (manifest["header"], manifest["header_bytes"], manifest["bom"]) == ("", 0, False)
    assert manifest["source"]["size"] == 0
    assert local_parts(tmp_path / "out") == ["manifest.json"]


@pytest.mark.parametrize("data", [b"id,name\n", b"id,name\r\n", b"id,name"])
def test_header_only(tmp_path: Path, data: bytes) -> None:
    manifest, chunks = run(tmp_path, data)
    assert chunks == []
    assert (manifest["count"], manifest["rows"]) == (0, 0)
    assert manifest["header"] == data.decode()
    assert manifest["header_bytes"] == len(data)
    assert local_parts(tmp_path / "out") == ["manifest.json"]


@pytest.mark.parametrize("block_size", [1, 2, 3, 4, splitter.BLOCK])
def test_bom_is_recorded_not_repeated(tmp_path: Path, block_size: int) -> None:
    data = BOM + b"id,name\n1,a\n2,b\n3,c\n"
    manifest, chunks = run(tmp_path, data, block_size=block_size)
    assert manifest["bom"] is True
    assert manifest["header"] == "id,name\n"
    assert chunks == [b"id,name\n1,a\n2,b\n", b"id,name\n3,c\n"]
    assert manifest["chunks"][0]["source_offset"] == len(BOM) + len(b"id,name\n")
    assert [c["source_line"] for c in manifest["chunks"]] == [2, 4]


def test_bom_only(tmp_path: Path) -> None:
    manifest, chunks = run(tmp_path, BOM)
    assert chunks == []
    assert (manifest["bom"], manifest["header"], manifest["count"]) == (True, "", 0)


def test_bom_without_header(tmp_path: Path) -> None:
    settings = SplitSettings(chunk_size=None, chunk_rows=1, header=False)
    manifest, chunks = run(tmp_path, BOM + b"1,a\n2,b", settings)
    assert chunks == [b"1,a\n", b"2,b"]
    assert manifest["bom"] is True and manifest["header_bytes"] == 0


def test_no_trailing_newline(tmp_path: Path) -> None:
    manifest, chunks = run(tmp_path, b"id\n1\n2\n3")
    assert chunks == [b"id\n1\n2\n", b"id\n3"]
    assert [c["rows"] for c in manifest["chunks"]] == [2, 1]
    assert manifest["rows"] == 3


def test_no_trailing_newline_in_size_mode(tmp_path: Path) -> None:
    manifest, chunks = run(tmp_path, b'id\n"a\nb",1\n2', SplitSettings(chunk_size=1000))
    assert chunks == [b'id\n"a\nb",1\n2']
    assert manifest["rows"] == 2


def test_record_bigger_than_chunk_is_its_own_chunk(tmp_path: Path) -> None:
    """The first record ends right at the first target (10 bytes after the header); the big
    record spans several targets and is a chunk of its own; the last two share one."""
    big = b'"' + b"x," * 60 + b'\n""quoted""",' + b"y" * 50 + b"\n"
    data = b"h\n" + b"123456789\n" + big + b"a\n" + b"b\n"
    settings = SplitSettings(chunk_size=10)
    manifest, chunks = run(tmp_path, data, settings, block_size=16)
    assert chunks == [b"h\n123456789\n", b"h\n" + big, b"h\na\nb\n"]
    assert [c["rows"] for c in manifest["chunks"]] == [1, 1, 2]
    assert [c["source_line"] for c in manifest["chunks"]] == [2, 3, 5]


def test_chunk_closes_at_first_record_end_at_or_after_target(tmp_path: Path) -> None:
    data = b"h\n" + b"".join(b"%d\n" % i for i in range(10, 40))  # 3-byte records
    for size in (1, 2, 5, 6, 7, 8, 9, 50, 10_000):
        manifest, chunks = run(tmp_path, data, SplitSettings(chunk_size=size), dest=f"o{size}")
        expected_records = -(-size // 3)  # ceil(size / 3): the header does not count
        assert manifest["chunks"][0]["rows"] == min(expected_records, 30), size
        check_sizes(check_split(data, manifest, chunks), size)


def test_rows_mode_span_boundaries(tmp_path: Path) -> None:
    """Targets above 64 rows are counted a span (an eighth of a block) at a time: choose
    block sizes whose first span ends just before, at and just after the target's record end."""
    records = [(b"1\n", b"22\n", b'"a\nb"\n', b"\n", b"q,r\r\n")[i * 7 % 5] for i in range(400)]
    data = b"h\n" + b"".join(records)
    path = source_file(tmp_path, data)
    for chunk_rows in (65, 70, 101):
        settings = SplitSettings(chunk_size=None, chunk_rows=chunk_rows)
        target = sum(map(len, records[:chunk_rows]))
        for span in range(target - 2, target + 3):
            out = str(tmp_path / "out")
            split(path, out, settings, Storage(), block_size=8 * span)
            checked = check_split(data, *read_split(out), parse_csv=False)
            check_rows(checked, chunk_rows)


def test_no_header(tmp_path: Path) -> None:
    settings = SplitSettings(chunk_size=None, chunk_rows=2, header=False)
    manifest, chunks = run(tmp_path, b"1,a\n2,b\n3,c\n", settings)
    assert chunks == [b"1,a\n2,b\n", b"3,c\n"]
    assert (manifest["header"], manifest["header_bytes"], manifest["rows"]) == ("", 0, 3)
    assert manifest["chunks"][0]["source_offset"] == 0
    assert manifest["chunks"][0]["source_line"] == 1
    assert manifest["settings"]["header"] is False


def test_one_column(tmp_path: Path) -> None:
    data = make_csv([["v"], ["1"], ["multi\nline"], [""], ["x"]], quote_all=True)
    manifest, chunks = run(tmp_path, data)
    assert chunks == [b'"v"\n"1"\n"multi\nline"\n', b'"v"\n""\n"x"\n']
    assert manifest["rows"] == 4


def test_blank_lines_are_records(tmp_path: Path) -> None:
    manifest, chunks = run(tmp_path, b"h\n\n1\n\n\n2\n")
    assert chunks == [b"h\n\n1\n", b"h\n\n\n", b"h\n2\n"]
    assert [c["rows"] for c in manifest["chunks"]] == [2, 2, 1]


def test_crlf_and_quoted_newlines(tmp_path: Path) -> None:
    rows = [["id", "note"], ["1", "a\r\nb"], ["2", 'say "hi", bye'], ["3", "\r"], ["4", ""]]
    data = make_csv(rows, newline="\r\n")
    manifest, chunks = run(tmp_path, data, SplitSettings(chunk_size=None, chunk_rows=3))
    assert chunks[1] == b'id,note\r\n4,\r\n'
    assert [c["rows"] for c in manifest["chunks"]] == [3, 1]
    # Lines as csv.reader counts them: the quoted bare CR of record 3 ends a line too.
    assert [c["source_line"] for c in manifest["chunks"]] == [2, 7]


def test_other_dialect(tmp_path: Path) -> None:
    rows = [["a", "b"], ["x;y", "it's"], ["\n", '"']]
    data = make_csv(rows, delimiter=";", quotechar="'")
    settings = SplitSettings(chunk_size=None, chunk_rows=1, delimiter=";", quotechar="'")
    _, chunks = run(tmp_path, data, settings)
    assert chunks == [b"a;b\n'x;y';'it''s'\n", b"a;b\n'\n';\"\n"]


def test_sizes_and_rows_checks_on_a_sample(tmp_path: Path) -> None:
    data = make_csv([["id", "t"], *([str(i), "x" * (i % 7)] for i in range(200))])
    for i, (settings, block) in enumerate([(SplitSettings(chunk_size=100), 7),
                                          (SplitSettings(chunk_size=None, chunk_rows=70), 5)]):
        out = str(tmp_path / f"o{i}")
        split(source_file(tmp_path, data), out, settings, Storage(), block_size=block)
        checked = check_split(data, *read_split(out))
        if settings.chunk_size:
            check_sizes(checked, settings.chunk_size)
        else:
            check_rows(checked, 70)


def test_manifest_describes_source_and_settings(tmp_path: Path) -> None:
    data = b"id\n1\n"
    manifest, _ = run(tmp_path, data)
    assert manifest["version"] == 1
    path = str(tmp_path / "source.csv")
    assert manifest["source"] == {"uri": path, "size": len(data),
                                  "etag": Storage().stat(path).etag, "version_id": None}
    assert manifest["settings"] == {"chunk_size": None, "chunk_rows": 2, "header": True,
                                    "delimiter": ",", "quotechar": '"', "strict": False,
                                    "encoding": None, "skip_lines": 0}


# -- re-splitting and failures ---------------------------------------------------------------------


def test_resplit_removes_stale_parts(tmp_path: Path) -> None:
    data = b"h\n" + b"".join(b"%d\n" % i for i in range(7))
    first, _ = run(tmp_path, data, SplitSettings(chunk_size=None, chunk_rows=1))
    assert first["count"] == 7
    second, _ = run(tmp_path, data, SplitSettings(chunk_size=None, chunk_rows=3))
    assert second["count"] == 3
    assert local_parts(tmp_path / "out") == [
        "manifest.json", "part-00000.csv", "part-00001.csv", "part-00002.csv"]
    third, _ = run(tmp_path, b"h\n", SplitSettings(chunk_size=5))
    assert third["count"] == 0
    assert local_parts(tmp_path / "out") == ["manifest.json"]


def test_unterminated_quote_leaves_no_manifest_and_no_temporaries(tmp_path: Path) -> None:
    good = b"h\n" + b"1\n" * 6
    run(tmp_path, good)  # a complete earlier split in the same dest
    assert "manifest.json" in local_parts(tmp_path / "out")
    bad = b"h\n1\n2\n3\n4\n5\n\"6\n7\n"
    with pytest.raises(UnterminatedQuote):
        split(source_file(tmp_path, bad), str(tmp_path / "out"), ROWS, Storage(), block_size=4)
    names = local_parts(tmp_path / "out")
    assert "manifest.json" not in names
    assert not [n for n in names if n.endswith(".tmp")]
    # the one hidden file is the note of the earlier split's parts, for the next split
    assert [n for n in names if n.startswith(".")] == [".leftovers.json"]
    assert json.loads((tmp_path / "out" / ".leftovers.json").read_bytes()) == {
        "parts": ["part-00000.csv", "part-00001.csv", "part-00002.csv"]}


def test_failed_split_keeps_only_complete_chunks(tmp_path: Path) -> None:
    bad = b"h\n1\n2\n3\n4\n5\n\"6\n7\n"
    dest = tmp_path / "fresh"
    with pytest.raises(UnterminatedQuote):
        split(source_file(tmp_path, bad), str(dest), ROWS, Storage(), block_size=4)
    # part-00002 was being written when the error came: it does not exist at all
    assert local_parts(dest) == ["part-00000.csv", "part-00001.csv"]
    assert (dest / "part-00001.csv").read_bytes() == b"h\n3\n4\n"


@pytest.mark.parametrize("data", [b"h\n1\n2\n3\n", b"\xef\xbb\xbfh\r\n1\r\n", b"h\n"])
def test_progress_adds_up_to_the_source_size(tmp_path: Path, data: bytes) -> None:
    reported: list[int] = []
    split(source_file(tmp_path, data), str(tmp_path / "out"), SplitSettings(chunk_size=4),
          Storage(), on_progress=reported.append, block_size=3)
    assert sum(reported) == len(data)


def test_error_while_writing_aborts_the_chunk(tmp_path: Path) -> None:
    data = b"h\n" + b"".join(b"%d\n" % i for i in range(100))
    calls = 0

    def on_progress(n: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 20:
            raise RuntimeError("boom")

    dest = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        split(source_file(tmp_path, data), str(dest), SplitSettings(chunk_size=50), Storage(),
              on_progress=on_progress, block_size=8)
    names = local_parts(dest)
    assert names, "some chunks were complete before the error"
    assert names == [f"part-{i:05d}.csv" for i in range(len(names))]
    for i, name in enumerate(names):
        chunk = (dest / name).read_bytes()
        assert chunk.startswith(b"h\n") and chunk.endswith(b"\n") and len(chunk) >= 50, i


# -- errors -------------------------------------------------------------------------------------


def test_missing_source(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.csv")
    with pytest.raises(SourceNotFound) as info:
        split(path, str(tmp_path / "out"), ROWS, Storage())
    assert str(info.value) == f"source not found: {path}"
    assert not (tmp_path / "out").exists()


def test_directory_source(tmp_path: Path) -> None:
    with pytest.raises(SourceUnreadable) as info:
        split(str(tmp_path), str(tmp_path / "out"), ROWS, Storage())
    assert str(info.value) == f"source is not a regular file: {tmp_path}"


def _quote_at(data: bytes, marker: bytes) -> tuple[int, int]:
    """Byte offset and 1-based line of the quote that starts ``marker`` in ``data``."""
    at = data.index(marker)
    return at, data.count(b"\n", 0, at) + 1


UNTERMINATED = [
    (b'id,name\n1,ok\n2,"never\nclosed\n', b'"never', True),
    (b'id,name\n1,"ok"\n2,"x""y\n""z\n', b'"x""y', True),  # escaped quotes inside
    (b'id,name\n1,"a\nb"\n2,"""starts with a quote\n', b'"""starts', True),
    (BOM + b'id,name\r\n1,"a"\r\n"open,\r\n\r\n', b'"open', True),
    (b'"id\nname\n', b'"id', True),  # in the header
    (BOM + b'a,"b""c\n', b'"b""c', True),  # in the header, after a BOM
    (b'1,"x"\n"2', b'"2', False),  # no header
]


@pytest.mark.parametrize(("data", "marker", "header"), UNTERMINATED)
@pytest.mark.parametrize("block_size", [1, 2, 3, 5, splitter.BLOCK])
def test_unterminated_quote(tmp_path: Path, data: bytes, marker: bytes, header: bool,
                            block_size: int) -> None:
    path = source_file(tmp_path, data)
    offset, line = _quote_at(data, marker)
    for settings in (SplitSettings(chunk_size=4, header=header),
                     SplitSettings(chunk_size=None, chunk_rows=1, header=header)):
        with pytest.raises(UnterminatedQuote) as info:
            split(path, str(tmp_path / "out"), settings, Storage(), block_size=block_size)
        assert str(info.value) == (f"{path}: unterminated quoted field: the quote at byte "
                                   f"{offset} (line {line}) is never closed")
        assert "manifest.json" not in local_parts(tmp_path / "out")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (SplitSettings(delimiter=""), "invalid delimiter ''"),
        (SplitSettings(delimiter="ab"), "invalid delimiter 'ab'"),
        (SplitSettings(delimiter="\n"), "invalid delimiter '\\n'"),
        (SplitSettings(quotechar="\r"), "invalid quotechar '\\r'"),
        (SplitSettings(quotechar="\u2019"), "invalid quotechar '\u2019'"),
        (SplitSettings(delimiter="|", quotechar="|"), "delimiter and quotechar must differ"),
        (SplitSettings(chunk_size=None, chunk_rows=0), "invalid chunk rows 0: must be at least 1"),
        (SplitSettings(chunk_size=None, chunk_rows=-2), "invalid chunk rows -2"),
        (SplitSettings(chunk_size=0), "invalid chunk size 0: must be at least 1"),
        (SplitSettings(chunk_size=5, chunk_rows=5), "give exactly one of chunk size and chunk"),
        (SplitSettings(chunk_size=None), "give exactly one of chunk size and chunk rows"),
    ],
)
def test_invalid_settings(tmp_path: Path, settings: SplitSettings, message: str) -> None:
    with pytest.raises(InvalidOption) as info:
        split(source_file(tmp_path, b"a\n1\n"), str(tmp_path / "out"), settings, Storage())
    assert str(info.value).startswith(message)
    assert not (tmp_path / "out").exists()


def test_header_too_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(splitter, "HEADER_LIMIT", 10)
    path = source_file(tmp_path, b"h" * 40 + b"\n1\n")
    with pytest.raises(HeaderTooLong, match="no end of the header record in the first"):
        split(path, str(tmp_path / "out"), ROWS, Storage(), block_size=4)


def test_resume_after_the_source_changed(tmp_path: Path) -> None:
    path = source_file(tmp_path, b"h\n1\n2\n3\n")
    out = str(tmp_path / "out")
    stopped = split(path, out, SplitSettings(chunk_size=None, chunk_rows=1), Storage(),
                    should_stop=lambda: True)
    assert stopped.token is not None and not stopped.done
    assert stopped.token.offset == 4 and stopped.token.next_index == 1
    source_file(tmp_path, b"h\n1\n2\n3\n4\n")
    with pytest.raises(SourceChanged, match=f"^{path} changed since the split started"):
        split(path, out, SplitSettings(chunk_size=None, chunk_rows=1), Storage(),
              resume=stopped.token)
    assert "manifest.json" not in local_parts(out)


def test_stopped_split_is_not_complete_until_resumed(tmp_path: Path) -> None:
    path = source_file(tmp_path, b"h\n1\n2\n3\n")
    out = tmp_path / "out"
    settings = SplitSettings(chunk_size=None, chunk_rows=2)
    stopped = split(path, str(out), settings, Storage(), should_stop=lambda: True)
    assert stopped.manifest is None and stopped.token is not None
    assert local_parts(out) == ["_split/segment-00000.json", "part-00000.csv"]
    done = split(path, str(out), settings, Storage(), resume=stopped.token)
    assert done.manifest is not None and done.manifest.count == 2
    assert local_parts(out) == ["manifest.json", "part-00000.csv", "part-00001.csv"]
    assert not (out / "_split").exists()


@pytest.mark.parametrize("settings", [SplitSettings(chunk_size=1),
                                      SplitSettings(chunk_size=None, chunk_rows=1)])
def test_a_header_ending_in_a_bare_cr_never_starts_a_chunk_with_lf(tmp_path: Path,
                                                                    settings: SplitSettings,
                                                                    ) -> None:
    """csv.reader would read the header's CR and a chunk's first LF as one line end (losing
    the empty record): the chunk carries that LF record instead (found by hypothesis)."""
    manifest, chunks = run(tmp_path, b"\ra\n\n", settings)
    assert chunks == [b"\ra\n\n"]
    assert manifest["rows"] == 2
    check_split(b"\ra\n\n", manifest, chunks)
