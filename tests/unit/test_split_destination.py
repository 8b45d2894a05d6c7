"""A split touches only what a split wrote in its destination (local files): the source is
never overwritten or deleted, leftovers come from the previous manifest's list, a killed
split's temporaries go, and one split holds a destination at a time."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from s3split.errors import SourceInDestination, SplitInProgress, UnterminatedQuote
from s3split.split import destination, splitter
from s3split.split.destination_lock import acquire, holding, lock_uri, release
from s3split.split.manifest import SplitSettings
from s3split.split.splitter import split
from s3split.storage import Storage
from tests.support.splits import check_split, local_parts, read_split

pytestmark = pytest.mark.timeout(60)

ROWS = SplitSettings(chunk_size=None, chunk_rows=2)


def csv(rows: int) -> bytes:
    return b"id,v\n" + b"".join(b"%d,x\n" % i for i in range(rows))


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (symlinks as their target path) and its bytes."""
    files: dict[str, bytes] = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = Path(root, name)
            rel = str(path.relative_to(directory))
            files[rel] = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
    return files


def split_into(dest: Path, data: bytes, settings: SplitSettings = ROWS,
               source: Path | None = None) -> dict[str, object]:
    """Split ``data`` (written to ``source``, default beside ``dest``) and check the result."""
    source = source or dest.parent / "input.csv"
    source.write_bytes(data)
    split(str(source), str(dest), settings, Storage())
    manifest, chunks = read_split(str(dest))
    check_split(data, manifest, chunks)
    return manifest


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


# -- the source is never the split's own -----------------------------------------------------------


@pytest.mark.parametrize("name", [
    "part-00000.csv", "part-00007.csv", "part-123456.csv", "manifest.json", ".split.lock",
    ".leftovers.json", ".part-00001.csv.k2j4h5g6.tmp", "_split/segment-00000.json"])
def test_a_source_named_like_the_splits_own_file_is_refused_and_untouched(
        tmp_path: Path, name: str) -> None:
    dest = tmp_path / "d"
    split_into(dest, csv(8))  # parts 0-3 and a manifest
    source = dest / name
    source.parent.mkdir(exist_ok=True)
    source.write_bytes(csv(20))
    before = snapshot(dest)
    with pytest.raises(SourceInDestination) as refused:
        split(str(source), str(dest), ROWS, Storage())
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"source {source} has a name the split writes in its "
                              f"destination {dest}: ")
    assert snapshot(dest) == before


def test_a_symlink_to_a_part_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    split_into(dest, csv(4))
    link = tmp_path / "link.csv"
    link.symlink_to(dest / "part-00001.csv")
    before = snapshot(dest)
    with pytest.raises(SourceInDestination, match=f"resolved: {dest / 'part-00001.csv'}"):
        split(str(link), str(dest), ROWS, Storage())
    assert snapshot(dest) == before


def test_a_symlink_named_like_a_part_is_refused(tmp_path: Path) -> None:
    """Writing part-00000 would replace the link the user named as the source."""
    dest = tmp_path / "d"
    dest.mkdir()
    (tmp_path / "real.csv").write_bytes(csv(4))
    (dest / "part-00000.csv").symlink_to(tmp_path / "real.csv")
    with pytest.raises(SourceInDestination):
        split(str(dest / "part-00000.csv"), str(dest), ROWS, Storage())
    assert (dest / "part-00000.csv").is_symlink()


def test_a_destination_reached_through_a_symlink_is_the_same_destination(tmp_path: Path) -> None:
    real = tmp_path / "real"
    split_into(real, csv(4))
    (tmp_path / "alias").symlink_to(real)
    before = snapshot(real)
    with pytest.raises(SourceInDestination):
        split(str(real / "part-00000.csv"), str(tmp_path / "alias"), ROWS, Storage())
    with pytest.raises(SourceInDestination):
        split(str(tmp_path / "alias" / "part-00000.csv"), str(real), ROWS, Storage())
    assert snapshot(real) == before


def test_a_source_elsewhere_in_dest_survives_splits_with_fewer_chunks(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    source = dest / "data.csv"
    data = csv(8)
    first = split_into(dest, data, source=source)
    assert first["count"] == 4
    second = split_into(dest, data, SplitSettings(chunk_size=None, chunk_rows=5), source=source)
    assert second["count"] == 2
    assert source.read_bytes() == data
    assert local_parts(dest) == ["data.csv", "manifest.json", "part-00000.csv", "part-00001.csv"]


# -- leftovers are the previous manifest's parts, not name matches ---------------------------------


def test_a_users_part_named_file_not_in_the_manifest_is_kept(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "part-00099.csv").write_bytes(b"mine\n")
    split_into(dest, csv(8))
    split_into(dest, csv(2))
    assert local_parts(dest) == ["manifest.json", "part-00000.csv", "part-00099.csv"]
    assert (dest / "part-00099.csv").read_bytes() == b"mine\n"


def test_leftovers_of_a_failed_split_are_removed_by_the_next_one(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    split_into(dest, csv(8))  # parts 0-3
    (tmp_path / "bad.csv").write_bytes(b'id,v\n1,x\n2,"open\n')
    with pytest.raises(UnterminatedQuote):
        split(str(tmp_path / "bad.csv"), str(dest), ROWS, Storage())
    split_into(dest, csv(2))
    assert local_parts(dest) == ["manifest.json", "part-00000.csv"]


def test_leftovers_of_a_stopped_split_that_a_fresh_one_replaces_are_removed(
        tmp_path: Path) -> None:
    dest = tmp_path / "d"
    source = tmp_path / "input.csv"
    source.write_bytes(csv(8))
    calls = 0

    def stop_after_three() -> bool:
        nonlocal calls
        calls += 1
        return calls == 3

    stopped = split(str(source), str(dest), ROWS, Storage(), should_stop=stop_after_three)
    assert stopped.token is not None  # parts 0-2 are listed only in _split's progress
    split_into(dest, csv(2))
    assert local_parts(dest) == ["manifest.json", "part-00000.csv"]


def test_a_manifest_naming_files_outside_its_parts_deletes_none_of_them(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    split_into(dest, csv(2))  # one part
    (dest / "data.csv").write_bytes(b"keep\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "part-00004.csv").write_bytes(b"keep\n")
    (dest / "part-00005.csv").write_bytes(b"keep\n")
    manifest = json.loads((dest / "manifest.json").read_bytes())
    manifest["chunks"] += [
        {"index": 3, "uri": str(dest / "data.csv")},
        {"index": 4, "uri": str(tmp_path / "outside" / "part-00004.csv")},
        {"index": 5, "uri": str(dest / "part-00006.csv")},
        {"index": True, "uri": str(dest / "part-00001.csv")},
        "part-00007.csv",
    ]
    (dest / "manifest.json").write_text(json.dumps(manifest))
    split_into(dest, csv(2))
    assert (dest / "data.csv").read_bytes() == b"keep\n"
    assert (dest / "part-00005.csv").read_bytes() == b"keep\n"
    assert (tmp_path / "outside" / "part-00004.csv").read_bytes() == b"keep\n"


def test_an_unreadable_previous_manifest_lists_nothing_to_delete(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    split_into(dest, csv(8))
    (dest / "manifest.json").write_bytes(b"\xff not json")
    split_into(dest, csv(2))
    assert local_parts(dest) == ["manifest.json", *(f"part-{i:05d}.csv" for i in range(4))]


# -- temporaries of a killed split -----------------------------------------------------------------


OURS = [".part-00003.csv.abc123_z.tmp", ".manifest.json.zz9x8y7w.tmp", "..split.lock.q1w2e3r4.tmp",
        "..leftovers.json.a1b2c3d4.tmp", "_split/.segment-00002.json.m3n4b5v6.tmp"]
NOT_OURS = [".data.csv.abc123_z.tmp", ".part-00003.csv.tmp", "part-00003.csv.abc123_z.tmp",
            ".part-x.csv.abc123_z.tmp"]


@pytest.mark.parametrize("resumed", [False, True])
def test_the_next_split_removes_a_killed_splits_temporaries_only(tmp_path: Path,
                                                                 resumed: bool) -> None:
    dest = tmp_path / "d"
    source = tmp_path / "input.csv"
    source.write_bytes(csv(4))
    stopped = split(str(source), str(dest), ROWS, Storage(), should_stop=lambda: True)
    for name in OURS + NOT_OURS:
        (dest / name).write_bytes(b"x")
    split(str(source), str(dest), ROWS, Storage(), resume=stopped.token if resumed else None)
    left = local_parts(dest)
    assert not set(OURS) & set(left)
    assert set(NOT_OURS) <= set(left)
    assert (dest / NOT_OURS[0]).read_bytes() == b"x"


# -- one split per destination ---------------------------------------------------------------------


def test_two_concurrent_splits_into_one_destination_one_is_refused(tmp_path: Path) -> None:
    """The first holds DEST while it splits; the second, with other settings, is refused
    and touches nothing, so the manifest describes the chunk files beside it."""
    dest = tmp_path / "d"
    first_data, second_data = csv(40), csv(7)
    (tmp_path / "first.csv").write_bytes(first_data)
    (tmp_path / "second.csv").write_bytes(second_data)
    inside, go_on = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        def progress(_: int) -> None:
            inside.set()
            assert go_on.wait(30)

        try:
            with holding(str(dest), Storage()):
                split(str(tmp_path / "first.csv"), str(dest), SplitSettings(chunk_size=None,
                      chunk_rows=3), Storage(), on_progress=progress, block_size=16)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert inside.wait(30)
        with pytest.raises(SplitInProgress) as refused, holding(str(dest), Storage()):
            split(str(tmp_path / "second.csv"), str(dest), ROWS, Storage())
    finally:
        go_on.set()
        thread.join(30)
    assert not errors
    message = str(refused.value)
    assert f"destination {dest} is in use by another split, process {os.getpid()} on " \
           f"{socket.gethostname()}" in message and lock_uri(str(dest)) in message
    manifest, chunks = read_split(str(dest))
    check_split(first_data, manifest, chunks)
    assert local_parts(dest) == ["manifest.json", *(f"part-{i:05d}.csv" for i in range(14))]


def test_a_lock_whose_process_is_gone_is_taken_over(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    stale = {"lease": "old", "pid": dead_pid(), "host": socket.gethostname(), "since": "then"}
    (dest / ".split.lock").write_text(json.dumps(stale))
    with holding(str(dest), Storage()) as holder:
        assert json.loads((dest / ".split.lock").read_bytes())["lease"] == holder.lease
        split_into(dest, csv(4))
    assert not (dest / ".split.lock").exists()


def test_a_lock_held_on_another_host_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    other = {"lease": "x", "pid": dead_pid(), "host": "elsewhere", "since": "2026-01-01T00:00:00"}
    (dest / ".split.lock").write_text(json.dumps(other))
    with pytest.raises(SplitInProgress, match=f"process {other['pid']} on elsewhere "
                                              r"\(since 2026-01-01T00:00:00\)"):
        acquire(str(dest), Storage())
    assert json.loads((dest / ".split.lock").read_bytes()) == other


@pytest.mark.parametrize("content", [b"not json", b"[]", b'{"lease": "x", "pid": "1"}'])
def test_an_unreadable_lock_is_refused_and_kept(tmp_path: Path, content: bytes) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / ".split.lock").write_bytes(content)
    with pytest.raises(SplitInProgress, match="is not a split lock this version can read"):
        acquire(str(dest), Storage())
    assert (dest / ".split.lock").read_bytes() == content


def test_the_lock_is_released_when_the_split_fails(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    (tmp_path / "bad.csv").write_bytes(b'id\n"open\n')
    with pytest.raises(UnterminatedQuote), holding(str(dest), Storage()):
        split(str(tmp_path / "bad.csv"), str(dest), ROWS, Storage())
    assert not (dest / ".split.lock").exists()


def test_release_leaves_a_successors_lock(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    mine = acquire(str(dest), Storage())
    successor = {"lease": "next", "pid": os.getpid(), "host": "h", "since": "now"}
    (dest / ".split.lock").write_text(json.dumps(successor))
    release(str(dest), mine, Storage())
    assert json.loads((dest / ".split.lock").read_bytes()) == successor


def test_the_guard_and_the_splitter_agree_on_the_progress_folder() -> None:
    assert destination.PROGRESS_DIR == splitter.PROGRESS_DIR
