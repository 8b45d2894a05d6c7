"""Decompression and write failures become named errors naming the file and the offset."""

import bz2
import errno
import gzip
import os
import signal
import zlib
from pathlib import Path
from typing import Any

import pytest
from backports import zstd

from s3split import storage as storage_module
from s3split.cli.commands import error_line
from s3split.cli.local import progress_line
from s3split.cli.progress import RunProgress
from s3split.cli.text import one_line, shown
from s3split.errors import CorruptSource, DestinationUnwritable, InvalidOption
from s3split.sizes import RATE_FROM_BYTES, counted, format_rate
from s3split.split.manifest import SplitSettings
from s3split.split.splitter import split
from s3split.storage import Storage

DATA = b"id,note\n" + b"".join(b'%d,"row %d, with a comma"\n' % (i, i) for i in range(40_000))


def _no_manifest(dest: Path) -> bool:
    return not (dest / "manifest.json").exists()


def _split(source: Path, dest: Path) -> None:
    split(str(source), str(dest), SplitSettings(chunk_size=256 * 1024), Storage())


@pytest.mark.parametrize(("suffix", "compress"), [(".gz", gzip.compress), (".zst", zstd.compress)])
def test_truncated_source_names_file_and_offset(tmp_path: Path, suffix: str,
                                                compress: Any) -> None:
    packed = compress(DATA)
    source = tmp_path / f"in.csv{suffix}"
    source.write_bytes(packed[: len(packed) * 2 // 3])
    with pytest.raises(CorruptSource) as caught:
        _split(source, tmp_path / "out")
    message = str(caught.value)
    assert message.startswith(f"{source}: truncated ")
    assert "good decompressed bytes" in message
    assert _no_manifest(tmp_path / "out")


def test_gzip_offset_is_where_the_damage_is(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(DATA, compresslevel=1))
    middle = len(packed) // 2
    packed[middle:middle + 64] = bytes(64)
    source = tmp_path / "in.csv.gz"
    source.write_bytes(bytes(packed))
    with pytest.raises(CorruptSource) as caught:
        _split(source, tmp_path / "out")
    good = int(str(caught.value).rsplit("after ", 1)[1].split(" ")[0].replace(",", ""))
    # the reader decompresses in 64 KiB pieces: no earlier than the piece of the damaged spot
    # (zeros may still inflate for a while past it, so the error can come later)
    before_damage = len(zlib.decompressobj(31).decompress(bytes(packed[:middle])))
    assert before_damage - 64 * 1024 < good < len(DATA)
    assert "corrupt gzip data" in str(caught.value)
    assert _no_manifest(tmp_path / "out")


def test_plain_file_named_gz_is_not_gzip(tmp_path: Path) -> None:
    source = tmp_path / "in.csv.gz"
    source.write_bytes(DATA)
    with pytest.raises(CorruptSource, match=r"in\.csv\.gz: not gzip data .* after 0 good"):
        _split(source, tmp_path / "out")


def test_a_damaged_bz2_stream_after_a_good_one_fails_instead_of_ending_the_source(
        tmp_path: Path) -> None:
    """``bz2.BZ2File`` reads a multi-stream file (``pbzip2``'s) up to a stream that does not
    decompress and then ends quietly: the split would succeed without its records."""
    second = bytearray(bz2.compress(DATA[len(DATA) // 2:]))
    second[20] ^= 0xFF
    source = tmp_path / "in.csv.bz2"
    source.write_bytes(bz2.compress(DATA[:len(DATA) // 2]) + bytes(second))
    with pytest.raises(CorruptSource, match=r"in\.csv\.bz2: corrupt bz2 data .* good decompressed"):
        _split(source, tmp_path / "out")
    assert _no_manifest(tmp_path / "out")


@pytest.mark.parametrize(("packed", "problem"), [
    (DATA, "corrupt bz2 data"),
    (bz2.compress(DATA)[:-10], "truncated bz2 data"),
    (bz2.compress(DATA) + b"trailing", "corrupt bz2 data"),
])
def test_a_bz2_source_that_does_not_decompress_is_named(tmp_path: Path, packed: bytes,
                                                        problem: str) -> None:
    source = tmp_path / "in.csv.bz2"
    source.write_bytes(packed)
    with pytest.raises(CorruptSource, match=rf"in\.csv\.bz2: {problem}"):
        _split(source, tmp_path / "out")
    assert _no_manifest(tmp_path / "out")


def test_enospc_while_writing_a_chunk_names_the_chunk(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fills up after 300 KB: the file being written is named, nothing is left."""
    real_fdopen = os.fdopen
    budget = [300_000]

    class FullDisk:
        def __init__(self, f: Any) -> None:
            self.f = f

        def write(self, data: bytes) -> int:
            if len(data) > budget[0]:
                self.f.write(data[: budget[0]])
                self.f.flush()
                budget[0] = 0
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            budget[0] -= len(data)
            return int(self.f.write(data))

        def __enter__(self) -> "FullDisk":
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.f, name)

    monkeypatch.setattr(storage_module.os, "fdopen",
                        lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    source, dest = tmp_path / "in.csv", tmp_path / "out"
    source.write_bytes(DATA)
    with pytest.raises(DestinationUnwritable) as caught:
        _split(source, dest)
    message = str(caught.value)
    assert message.startswith(f"cannot write {dest}/part-00001.csv: No space left on device "
                              "(ENOSPC) after ")
    assert _no_manifest(dest)
    assert not [name for name in os.listdir(dest) if name.endswith(".tmp")]


def test_a_file_or_folder_in_the_way_of_a_write_is_named(tmp_path: Path) -> None:
    """A user's file where a folder goes, or a folder where a file goes: the write is
    refused naming it (not FileExistsError, not IsADirectoryError), and nothing is left."""
    target = tmp_path / "results" / "part-00000.jsonl"
    (tmp_path / "results").write_text("mine")
    expected = f"^cannot write {target}: {tmp_path / 'results'} is not a directory; "
    with pytest.raises(DestinationUnwritable, match=expected + "move it away"):
        Storage().write_json(str(target), {"a": 1})
    with pytest.raises(DestinationUnwritable, match=expected + "move it away"):
        Storage().put_json_if(str(target), {"a": 1}, None)
    assert (tmp_path / "results").read_text() == "mine"
    (tmp_path / "results").unlink()
    target.mkdir(parents=True)
    with pytest.raises(DestinationUnwritable,
                       match=f"^cannot write {target}: a directory has that name; move it"):
        Storage().write_json(str(target), {"a": 1})
    assert os.listdir(tmp_path / "results") == ["part-00000.jsonl"]
    assert os.listdir(target) == []


def test_dangling_symlink_destination_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dest").symlink_to(tmp_path / "gone")
    source = tmp_path / "in.csv"
    source.write_bytes(DATA[:100])
    with pytest.raises(InvalidOption, match="dest is a dangling symbolic link"):
        _split(source, tmp_path / "dest")
    assert not (tmp_path / "gone").exists()


def test_error_line_is_one_line() -> None:
    assert error_line(FileNotFoundError(2, "No such file or directory", "x.csv")) == \
        "x.csv: No such file or directory"
    assert error_line(ValueError("two\nlines  here")) == "two lines here"
    assert one_line("Traceback:\n  a\n  b") == "Traceback: a b"


def test_control_characters_are_shown_escaped_and_printable_text_as_it_is() -> None:
    assert shown("in\nname\x1b[31m\x7f\x9b.csv") == "in\\nname\\x1b[31m\\x7f\\x9b.csv"
    assert shown("Kraków, ünïcode — ok") == "Kraków, ünïcode — ok"
    assert one_line("a\x1b[2K\n  b\x07") == "a\\x1b[2K b\\x07"
    assert error_line(ValueError("header \x1b]0;title\x07")) == "header \\x1b]0;title\\x07"


def test_progress_line_never_shows_a_missing_total(tmp_path: Path) -> None:
    progress = RunProgress(str(tmp_path), Storage())
    progress.ok, progress.bytes = 3, 20_000_000
    assert progress_line(progress, 1.0, compressed=False).startswith("3 chunks · 0 failed")
    progress.total = 10
    line = progress_line(progress, 10.0, compressed=True)
    assert line.startswith("3/10 chunks") and "2.0 MB/s uncompressed" in line
    assert "None" not in line


def test_progress_line_counts_agree_and_shows_a_rate_only_when_it_means_something(
        tmp_path: Path) -> None:
    progress = RunProgress(str(tmp_path), Storage())
    progress.ok, progress.rows, progress.bytes, progress.total = 1, 1, 27, 1
    assert progress_line(progress, 2.0, compressed=False) == "1/1 chunk · 0 failed · 1 row"
    assert counted(1, "execution") == "1 execution" and counted(0, "row") == "0 rows"
    assert counted(12_345, "chunk") == "12,345 chunks"
    assert format_rate(27, 2.0) is None  # the engine's start-up, not a rate
    assert format_rate(RATE_FROM_BYTES - 1, 0.01) is None
    assert format_rate(50_000_000, 2.0) == "25.0 MB/s"


def test_a_stop_while_the_temporary_file_is_made_leaves_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C that lands right after the writer's temporary file exists, before the call
    that made it returns (here: sent from inside it), still has it removed, as a stop at
    any later moment does: nothing is left under any name."""
    opened = os.open

    def stopped_inside(path: Any, *args: Any, **kwargs: Any) -> int:
        fd = opened(path, *args, **kwargs)
        if str(path).endswith(".tmp"):
            os.kill(os.getpid(), signal.SIGINT)
        return fd

    monkeypatch.setattr(os, "open", stopped_inside)
    with pytest.raises(KeyboardInterrupt), \
            Storage().writer(str(tmp_path / "out" / "part-00000.csv")) as f:
        f.write(b"never")
    monkeypatch.undo()
    assert os.listdir(tmp_path / "out") == []
