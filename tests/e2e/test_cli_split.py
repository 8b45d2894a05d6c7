"""The installed ``s3split`` console script, run as a subprocess on local files."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.csvdata import BOM, make_csv
from tests.support.processes import AS_A_TERMINAL_STARTS_IT, signal_when
from tests.support.splits import check_rows, check_sizes, check_split, read_split

S3SPLIT = Path(sys.executable).parent / "s3split"
ROWS = [["id", "name", "note"],
        *([str(i), f"name {i}", "multi\nline, \"quoted\"" if i % 3 == 0 else "plain"]
          for i in range(10))]


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # nothing here may reach for AWS
    return subprocess.run([str(S3SPLIT), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


def write(tmp_path: Path, data: bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_console_script_is_installed() -> None:
    assert S3SPLIT.is_file() and os.access(S3SPLIT, os.X_OK)


def test_split_prints_a_summary(tmp_path: Path) -> None:
    data = make_csv(ROWS)
    dest = tmp_path / "out"
    done = cli("split", write(tmp_path, data), dest, "--chunk-rows", "4")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "read as: delimiter ',' (detected), encoding utf-8 (default)\n"
    line = done.stdout.strip()
    assert "\n" not in line
    match = re.fullmatch(r"3 chunks, 10 rows, \d+ bytes in \d+\.\d\d s -> (.+)", line)
    assert match, line
    assert match.group(1) == str(dest / "manifest.json")
    manifest, chunks = read_split(str(dest))
    check_rows(check_split(data, manifest, chunks), 4)


def test_split_json(tmp_path: Path) -> None:
    data = BOM + make_csv(ROWS, newline="\r\n")
    dest = tmp_path / "out"
    done = cli("split", write(tmp_path, data), dest, "--chunk-size", "60", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    manifest, chunks = read_split(str(dest))
    check_sizes(check_split(data, manifest, chunks), 60)
    assert summary["manifest_uri"] == str(dest / "manifest.json")
    assert summary["count"] == manifest["count"] == len(chunks) > 1
    assert summary["rows"] == 10
    assert summary["bom"] is True
    assert summary["settings"]["chunk_size"] == 60
    assert "chunks" not in summary
    assert isinstance(summary["seconds"], float | int)


def test_dialect_and_no_header_options(tmp_path: Path) -> None:
    rows = [["1", "a\tb", "it's"], ["2", "x", "y"], ["3", "line\nbreak", ""]]
    data = make_csv(rows, delimiter="\t", quotechar="'")
    dest = tmp_path / "out"
    done = cli("split", write(tmp_path, data), dest, "--chunk-rows", "2", "--no-header",
               "--delimiter", "tab", "--quotechar", "'", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["count"], summary["rows"], summary["header_bytes"]) == (2, 3, 0)
    assert summary["settings"]["delimiter"] == "\t"
    manifest, chunks = read_split(str(dest))
    check_split(data, manifest, chunks, header=False, delimiter="\t", quotechar="'")
    assert chunks[0].startswith(b"1\t")


def test_how_the_source_was_read_is_printed_and_recorded(tmp_path: Path) -> None:
    data = b"\xff\xfe" + "Report\r\nid\tname\r\n1\tJ\u00fcrgen\r\n".encode("utf-16-le")
    dest = tmp_path / "out"
    done = cli("split", write(tmp_path, data), dest, "--skip-lines", "1")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ("read as: delimiter tab (detected), encoding utf-16-le (byte order "
                           "mark), transcoded to UTF-8, 1 preamble line skipped\n")
    assert (dest / "part-00000.csv").read_bytes() == "id\tname\r\n1\tJ\u00fcrgen\r\n".encode()
    done = cli("split", write(tmp_path, "id;n\n1;Jos\u00e9\n".encode("cp1252")), dest,
               "--encoding", "cp1252", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["format"]["encoding"] == "cp1252"
    assert (dest / "part-00000.csv").read_bytes() == "id;n\n1;Jos\u00e9\n".encode()


def test_a_source_that_is_not_utf8_fails_in_one_line_naming_the_option(tmp_path: Path) -> None:
    source = write(tmp_path, b"id,n\n1,Jos\xe9\n")
    fails(cli("split", source, tmp_path / "out"),
          f"{source}: not UTF-8: byte 10 (line 2) is 0xE9, which UTF-8 does not allow there; "
          "pass --encoding with the source's encoding (cp1252 for most Windows and Excel "
          "files, latin-1, utf-16, ...)")
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize("data", [b"", b"id,name\n", b"id,name"], ids=["empty", "header",
                                                                      "header-no-newline"])
def test_nothing_to_split_is_success(tmp_path: Path, data: bytes) -> None:
    dest = tmp_path / "out"
    done = cli("split", write(tmp_path, data), dest)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("0 chunks, 0 rows, ")
    assert json.loads((dest / "manifest.json").read_text())["count"] == 0
    assert sorted(os.listdir(dest)) == ["manifest.json"]


# -- failures: exit 1 and one line on stderr ---------------------------------------------------


def fails(done: subprocess.CompletedProcess[str], message: str, code: int = 1) -> None:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert done.stdout == ""
    assert done.stderr == f"s3split: error: {message}\n"


def test_missing_source(tmp_path: Path) -> None:
    path = tmp_path / "no such.csv"
    fails(cli("split", path, tmp_path / "out"), f"source not found: {path}")
    assert not (tmp_path / "out").exists()


def test_directory_source(tmp_path: Path) -> None:
    fails(cli("split", tmp_path, tmp_path / "out"), f"source is not a regular file: {tmp_path}")


def test_unterminated_quote(tmp_path: Path) -> None:
    data = b'id,note\n1,"fine\nhere"\n2,"say ""hi""\nand never close\n3,x\n'
    at = data.index(b'"say')
    line = data.count(b"\n", 0, at) + 1
    assert (at, line) == (24, 4)
    path = write(tmp_path, data)
    dest = tmp_path / "out"
    fails(cli("split", path, dest, "--chunk-size", "1"),
          f"{path}: unterminated quoted field: the quote at byte {at} (line {line}) "
          "is never closed")
    assert not (dest / "manifest.json").exists()
    assert not [n for n in os.listdir(dest) if n.startswith(".")]  # no temporaries


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chunk-size", "lots"], "invalid size 'lots': expected a number with an optional "
                                   "unit such as 97, 500KB or 64MiB"),
        (["--chunk-size", "12XB"], "invalid size '12XB': expected a number with an optional "
                                   "unit such as 97, 500KB or 64MiB"),
        (["--chunk-size", "0"], "invalid size '0': must be at least 1 byte"),
        (["--chunk-rows", "0"], "invalid chunk rows 0: must be at least 1"),
        (["--delimiter", "ab"], "invalid delimiter 'ab': must be one ASCII character, "
                                "not CR or LF"),
        (["--quotechar", ","], "delimiter and quotechar must differ (both ',')"),
    ],
)
def test_invalid_options(tmp_path: Path, args: list[str], message: str) -> None:
    fails(cli("split", write(tmp_path, b"a\n1\n"), tmp_path / "out", *args), message)
    assert not (tmp_path / "out").exists()


def test_both_chunk_size_and_rows(tmp_path: Path) -> None:
    done = cli("split", write(tmp_path, b"a\n1\n"), tmp_path / "out", "--chunk-size", "10",
               "--chunk-rows", "2")
    fails(done, "give --chunk-size or --chunk-rows, not both")
    assert not (tmp_path / "out").exists()


def test_destination_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    fails(cli("split", write(tmp_path, b"a\n1\n"), tmp_path / "afile"),
          f"destination {tmp_path / 'afile'} is not a directory")
    fails(cli("split", write(tmp_path, b"a\n1\n"), tmp_path / "afile" / "sub"),
          f"destination {tmp_path / 'afile' / 'sub'} is not a directory")


# -- the destination: never touch what the split did not write; one split at a time -------------


def files_in(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


@pytest.mark.parametrize("name", ["part-00000.csv", "part-00007.csv"])
def test_a_source_that_is_a_part_of_dest_is_refused(tmp_path: Path, name: str) -> None:
    dest = tmp_path / "d"
    assert cli("split", write(tmp_path, make_csv(ROWS)), dest, "--chunk-rows", "1").returncode == 0
    source = dest / name
    before = files_in(dest)
    fails(cli("split", source, dest, "--chunk-rows", "3"),
          f"source {source} has a name the split writes in its destination {dest}: splitting "
          f"would overwrite or delete it; move the source out of {dest} or split into another "
          "destination")
    assert files_in(dest) == before


def test_a_source_elsewhere_in_dest_survives_a_resplit(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    data = make_csv(ROWS)
    source = write(dest, data, "data.csv")
    (dest / "part-00099.csv").write_bytes(b"the user's own\n")
    assert cli("split", source, dest, "--chunk-rows", "1").returncode == 0
    done = cli("split", source, dest, "--chunk-rows", "4")
    assert done.returncode == 0, done.stderr
    assert source.read_bytes() == data
    assert sorted(files_in(dest)) == ["data.csv", "manifest.json", "part-00000.csv",
                                      "part-00001.csv", "part-00002.csv", "part-00099.csv"]
    check_rows(check_split(data, *read_split(str(dest))), 4)


def test_a_split_symlink_in_dest_never_empties_the_directory_it_points_to(
        tmp_path: Path) -> None:
    """A ``DEST/_split`` that is a symbolic link is never followed: what it points to stays
    as it was, and a split that refuses it writes no manifest."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not the split's")
    (elsewhere / "part-00000.json").write_text("not the split's either")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "_split").symlink_to(elsewhere)
    done = cli("split", write(tmp_path, make_csv(ROWS)), dest, "--chunk-size", "100")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.txt", "part-00000.json"]
    if done.returncode != 0:  # refusing is fine, but then as a failed split: no manifest
        assert not (dest / "manifest.json").exists(), done.stderr


def test_a_split_into_a_held_destination_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    holder = {"lease": "l", "pid": os.getpid(), "host": socket.gethostname(), "since": "t0"}
    (dest / ".split.lock").write_text(json.dumps(holder))
    fails(cli("split", write(tmp_path, make_csv(ROWS)), dest),
          f"destination {dest} is in use by another split, process {os.getpid()} on "
          f"{socket.gethostname()} (since t0), which holds {dest / '.split.lock'}; wait for it "
          f"to end, or delete {dest / '.split.lock'} once that process is gone")
    assert files_in(dest) == {".split.lock": json.dumps(holder).encode()}


def test_a_lock_left_by_a_dead_split_is_taken_over(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    holder = {"lease": "l", "pid": dead_pid(), "host": socket.gethostname(), "since": "t0"}
    (dest / ".split.lock").write_text(json.dumps(holder))
    (dest / ".part-00004.csv.x1y2z3w4.tmp").write_bytes(b"half a chunk")
    done = cli("split", write(tmp_path, make_csv(ROWS)), dest, "--chunk-rows", "4")
    assert done.returncode == 0, done.stderr
    assert sorted(files_in(dest)) == ["manifest.json", "part-00000.csv", "part-00001.csv",
                                      "part-00002.csv"]


def test_two_split_processes_into_one_destination(tmp_path: Path) -> None:
    """The second split runs while the first holds DEST (stopped with SIGSTOP while it
    writes its chunks): it is refused, and the first one's manifest describes its chunks."""
    dest = tmp_path / "d"
    first = make_csv([["id", "v"], *([str(i), "x" * 20] for i in range(1500))])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen([str(S3SPLIT), "split", str(write(tmp_path, first, "first.csv")),
                             str(dest), "--chunk-rows", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (dest / ".split.lock").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "never held the lock"
            time.sleep(0.001)
        proc.send_signal(signal.SIGSTOP)
        second = cli("split", write(tmp_path, make_csv(ROWS), "second.csv"), dest,
                     "--chunk-rows", "2")
    finally:
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=120)
    assert second.returncode == 1
    assert second.stderr.startswith(f"s3split: error: destination {dest} is in use by another "
                                    f"split, process {proc.pid} on "), second.stderr
    assert proc.returncode == 0, err
    manifest, chunks = read_split(str(dest))
    check_rows(check_split(first, manifest, chunks), 1)
    assert sorted(files_in(dest)) == ["manifest.json",
                                      *(f"part-{i:05d}.csv" for i in range(1500))]


def test_a_split_stopped_by_sigterm_says_so_and_leaves_no_lock(tmp_path: Path) -> None:
    """As Ctrl-C: the lock released, one line, exit 143 (a part's temporary file may stay:
    the next split of the destination removes it)."""
    dest = tmp_path / "d"
    proc = subprocess.Popen([str(S3SPLIT), "split", str(write(tmp_path, make_csv(
        [["id", "v"], *([str(i), "x" * 20] for i in range(3000))]))), str(dest),
        "--chunk-rows", "1", "--jobs", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 30
        while not (dest / "part-00010.csv").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "never wrote chunks"
            time.sleep(0.001)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert err == "s3split: stopped by SIGTERM; the split wrote no manifest\n"
    assert not (dest / ".split.lock").exists() and not (dest / "manifest.json").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_range_split_stopped_while_it_copies_chunks_says_so_in_one_line(
        signum: int, tmp_path: Path) -> None:
    """Ctrl-C (or kill, or the terminal closing: the whole process group signalled, the
    worker processes with it) while chunks are being copied: one line, exit 128 + N, no
    worker's traceback, no manifest, and every part left is whole (the single pass's)."""
    block = "".join(f'{i},"a, ""b""\nc",{i * 7}\n' for i in range(1000)).encode()
    data = b"id,note,n\n" + block * (34 * 1024 * 1024 // len(block))
    source = write(tmp_path, data)
    whole = tmp_path / "whole"
    assert cli("split", source, whole, "--chunk-size", "256KiB", "--jobs", "1").returncode == 0
    dest = tmp_path / "d"
    process = subprocess.Popen(
        [*AS_A_TERMINAL_STARTS_IT, str(S3SPLIT), "split", str(source), str(dest),
         "--chunk-size", "256KiB", "--jobs", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _, stderr = signal_when(process, (dest / "part-00003.csv").exists, signum, every=0.001)
    stopped = "interrupted" if signum == signal.SIGINT else f"stopped by {signum.name}"
    assert (process.returncode, stderr) == (
        128 + signum, f"s3split: {stopped}; the split wrote no manifest\n")
    parts = sorted(dest.glob("part-*.csv"))
    assert parts and not (dest / "manifest.json").exists()
    assert all(p.read_bytes() == (whole / p.name).read_bytes() for p in parts)


# -- help -----------------------------------------------------------------------------------------


def test_split_help_mentions_the_options() -> None:
    done = cli("split", "--help")
    assert done.returncode == 0
    for option in ("SOURCE", "DEST", "--chunk-size", "--chunk-rows", "--no-header",
                   "--delimiter", "--quotechar", "--json", "64MiB"):
        assert option in done.stdout, option


def test_top_level_help_lists_split() -> None:
    done = cli("--help")
    assert done.returncode == 0
    assert re.search(r"^\s+split\s", done.stdout, re.MULTILINE), done.stdout


def test_split_jobs_2_equals_jobs_1(tmp_path: Path) -> None:
    """The range split (three ranges of a 36 MiB file, two worker processes) writes the same
    chunks and manifest as the single pass, and records how it wrote them."""
    rows = [f'{i},"note {i}, ""quoted""\r\nsecond line",{i * 7}\n' if i % 5 == 0 else
            f"{i},plain {i},{i * 7}\r\n" for i in range(1000)]
    block = "".join(rows).encode()
    data = b"id,note,n\r\n" + block * (36 * 1024 * 1024 // len(block) + 1)
    source = write(tmp_path, data)
    documents, parts = [], []
    for jobs in ("1", "2"):
        dest = tmp_path / f"jobs{jobs}"
        done = cli("split", source, dest, "--chunk-size", "1MiB", "--jobs", jobs)
        assert done.returncode == 0, done.stderr
        document = json.loads((dest / "manifest.json").read_text())
        for chunk in document["chunks"]:
            chunk["uri"] = Path(chunk["uri"]).name
        documents.append(document)
        parts.append([p.read_bytes() for p in sorted(dest.glob("part-*.csv"))])
    assembly = documents[1].pop("assembly")
    assert "assembly" not in documents[0]
    assert assembly == {"scan": "ranges", "ranges": 3, "jobs": 2,
                        "chunks": ["read_write"] * documents[0]["count"]}
    assert documents[1] == documents[0]
    assert parts[1] == parts[0] and len(parts[0]) == documents[0]["count"] > 30
    assert b"".join(p[len(b"id,note,n\r\n"):] for p in parts[1]) == data[len(b"id,note,n\r\n"):]
