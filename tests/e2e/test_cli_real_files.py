"""``s3split run`` on the files people receive from Excel, databases and report generators:
each is read right, or refused at split time in one line that says what to pass."""

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import realfiles
from tests.support.cli import run_cli
from tests.support.pipeline import local_results


def run_ok(tmp_path: Path, name: str, *options: str) -> tuple[str, Path]:
    done = run_cli("run", name, "--out", "out", "--chunk-size", "2KiB", *options, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout, tmp_path / "out"


def read_as(out: Path) -> dict[str, Any]:
    """How the split read the source, as its manifest records it."""
    document: dict[str, Any] = json.loads((out / "chunks" / "manifest.json").read_text())
    return document["format"]


def refused(tmp_path: Path, name: str, *options: str) -> str:
    done = run_cli("run", name, "--out", "out", *options, cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("s3split: error: "), done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "chunks" / "manifest.json").exists()
    return lines[0]


def test_tab_separated_without_delimiter_is_read_by_its_tabs(tmp_path: Path) -> None:
    rows = realfiles.tab_separated(tmp_path / "data.tsv")
    stdout, out = run_ok(tmp_path, "data.tsv")
    assert local_results(out) == realfiles.as_dicts(rows)
    assert (read_as(out)["delimiter"], read_as(out)["delimiter_from"]) == ("\t", "detected")
    assert "read as" in stdout


def test_excel_sep_line_sets_the_delimiter_and_is_not_the_header(tmp_path: Path) -> None:
    rows = realfiles.excel_sep_line(tmp_path / "excel.csv")
    _, out = run_ok(tmp_path, "excel.csv")
    assert local_results(out) == realfiles.as_dicts(rows)  # 1,07 stays one field
    assert read_as(out)["sep_line"] and read_as(out)["delimiter_from"] == "sep line"
    line = refused(tmp_path, "excel.csv", "--delimiter", ",")
    assert "sep=; line sets the delimiter ';'" in line and "drop --delimiter" in line


def test_utf16_le_with_bom_is_transcoded_and_counted_right(tmp_path: Path) -> None:
    rows = realfiles.utf16_le(tmp_path / "unicode.txt")
    stdout, out = run_ok(tmp_path, "unicode.txt")
    assert local_results(out) == realfiles.as_dicts(rows)  # 500 records, Jürgen intact
    assert "500 rows in source: 500 ok" in " ".join(stdout.split())
    assert read_as(out)["encoding"] == "utf-16-le"
    assert read_as(out)["offsets"] == "UTF-8 bytes of the transcoded source"
    for chunk in (out / "chunks").glob("part-*.csv"):
        chunk.read_bytes().decode("utf-8")  # every chunk is UTF-8


def test_windows_1252_fails_at_split_time_naming_byte_line_and_option(tmp_path: Path) -> None:
    rows = realfiles.windows_1252(tmp_path / "win.csv")
    line = refused(tmp_path, "win.csv")
    assert "byte 26 (line 2) is 0xE9" in line and "--encoding" in line and "cp1252" in line
    assert not (tmp_path / "out" / "status").exists()  # no chunk ran
    _, out = run_ok(tmp_path, "win.csv", "--encoding", "cp1252")
    assert local_results(out) == realfiles.as_dicts(rows)  # José, not Jos\ufffd


def test_preamble_lines_are_refused_with_the_count_then_skipped(tmp_path: Path) -> None:
    rows = realfiles.with_preamble(tmp_path / "report.csv")
    line = refused(tmp_path, "report.csv")
    assert "the first 3 lines look like a preamble" in line and "--skip-lines 3" in line
    _, out = run_ok(tmp_path, "report.csv", "--skip-lines", "3")
    assert local_results(out) == realfiles.as_dicts(rows)
    assert read_as(out)["skip_lines"] == 3
    manifest = json.loads((out / "chunks" / "manifest.json").read_text())
    assert manifest["chunks"][0]["source_line"] == 5  # physical lines: 3 skipped, the header


@pytest.mark.parametrize(("options", "expected"), [
    (("--encoding", "no-such-codec"), "unknown encoding 'no-such-codec'"),
    (("--encoding", "base64"), "unknown encoding 'base64'"),
])
def test_bad_encoding_options_are_refused_before_anything_runs(
        tmp_path: Path, options: tuple[str, ...], expected: str) -> None:
    realfiles.tab_separated(tmp_path / "data.csv", 3)
    assert expected in refused(tmp_path, "data.csv", *options)
