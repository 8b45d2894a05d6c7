"""A source that changes is detected, never mixed; a run's split is reused only whole.

Local files cannot be pinned to a version: a rewrite during the split is found from the bytes
read and the file's identity (inode, mtime, ctime, size) at the end. Plan refuses to resume a
run whose source changed before it touches anything; a fresh run clears the earlier run's
outcomes; a split whose chunks are gone (the lifecycle rule expires them) is split again.
"""

import gzip
import os
from pathlib import Path
from typing import Any

import pytest

from s3split import storage as storage_module
from s3split.deployment import Deployment
from s3split.errors import SourceChanged
from s3split.holders import Holder
from s3split.pipeline.run_lock import release
from s3split.pipeline.spec import RunSpec
from s3split.pipeline.steps import plan, reusable_manifest, split_step
from s3split.split.manifest import SplitSettings
from s3split.split.splitter import split
from s3split.storage import Storage

HEADER = b"id,note\n"


def rows(count: int, tag: str = "r") -> bytes:
    return HEADER + b"".join(b'%d,"%s %d, with a comma"\n' % (i, tag.encode(), i)
                             for i in range(count))


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` and its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


# -- a local source rewritten during the split ---------------------------------------------------


def append(path: Path) -> None:
    with path.open("ab") as f:
        f.write(b"999,appended\n")


def rewrite_shorter(path: Path) -> None:
    path.write_bytes(rows(50, "new"))


def replace_keeping_size_and_mtime(path: Path) -> None:
    """Another file renamed over the source, with the same size and mtime: only the inode
    tells (rsync and ``cp -p`` keep mtimes)."""
    st = path.stat()
    other = path.with_name("other.csv")
    other.write_bytes(path.read_bytes().replace(b"with", b"WITH"))
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, path)


def rewrite_in_place_keeping_size_and_mtime(path: Path) -> None:
    """The same file rewritten, its mtime set back (``touch -r``, ``rsync --inplace`` with
    times): inode, size and mtime as before; only the change time tells."""
    st = path.stat()
    with path.open("r+b") as f:
        f.write(path.read_bytes().replace(b"with", b"WITH"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("change", [append, rewrite_shorter, replace_keeping_size_and_mtime,
                                    rewrite_in_place_keeping_size_and_mtime])
def test_a_local_source_rewritten_mid_split_fails_and_leaves_no_manifest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    monkeypatch.setattr(storage_module, "READ_BUFFER", 4096)  # reads interleave with the split
    source = tmp_path / "in.csv"
    source.write_bytes(rows(2000))
    changed: list[int] = []

    def on_progress(_: int) -> None:
        if not changed:
            changed.append(1)
            change(source)

    with pytest.raises(SourceChanged, match=f"^{source} changed during the split"):
        split(str(source), str(tmp_path / "out"), SplitSettings(chunk_size=4000), Storage(),
              on_progress=on_progress, block_size=4096)
    assert changed and not (tmp_path / "out" / "manifest.json").exists()


def test_a_compressed_local_source_replaced_mid_split_fails(tmp_path: Path) -> None:
    source = tmp_path / "in.csv.gz"
    source.write_bytes(gzip.compress(rows(2000)))
    replacement = tmp_path / "new.csv.gz"
    replacement.write_bytes(gzip.compress(rows(10, "new")))

    def on_progress(_: int) -> None:
        if replacement.exists():
            os.replace(replacement, source)

    with pytest.raises(SourceChanged, match=r"in\.csv\.gz changed during the split"):
        split(str(source), str(tmp_path / "out"), SplitSettings(chunk_size=4000), Storage(),
              on_progress=on_progress, block_size=4096)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_source_replaced_between_invocations_with_its_size_and_mtime_is_not_resumed(
        tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(rows(300))
    settings, dest = SplitSettings(chunk_size=2000), str(tmp_path / "out")
    stopped = split(str(source), dest, settings, Storage(), should_stop=lambda: True)
    assert stopped.token is not None
    replace_keeping_size_and_mtime(source)
    with pytest.raises(SourceChanged, match=f"^{source} changed since the split started"):
        split(str(source), dest, settings, Storage(), resume=stopped.token)
    assert not (tmp_path / "out" / "manifest.json").exists()


# -- resume and reuse of a run's split ------------------------------------------------------------


@pytest.fixture
def place(tmp_path: Path) -> tuple[Deployment, Path, Path]:
    source = tmp_path / "orders.csv"
    source.write_bytes(rows(300))
    deployment = Deployment(work_location=str(tmp_path / "work"), allow_local=True,
                            engine_pid=os.getpid())
    return deployment, source, tmp_path / "work" / "orders.csv"


def alive(holder: Holder) -> bool:
    return holder.pid == os.getpid()


def start(deployment: Deployment, event: dict[str, Any], execution: str) -> RunSpec:
    """Plan and split a run as the state machine does; returns its spec."""
    planned = plan(event, execution, deployment, Storage(), alive)
    spec = RunSpec.from_dict(planned["run"])
    assert split_step(spec, None, deployment, Storage(), lambda: False)["done"]
    return spec


def finish(spec: RunSpec, execution: str) -> None:
    """What workers and Summarize leave behind: results, rejects, statuses, a report."""
    layout = spec.layout
    for uri in (layout.result(0, "jsonl"), layout.rejects(0)):
        Path(uri).parent.mkdir(exist_ok=True)
        Path(uri).write_text('{"id": "0"}\n')
    Storage().write_json(layout.status(0), {"state": "ok", "output": layout.result(0, "jsonl"),
                                            "rejects_uri": layout.rejects(0)})
    Path(layout.report).write_text('{"succeeded": true}')
    release(spec.location, execution, Storage())


def test_a_resume_of_a_changed_source_is_refused_and_touches_nothing(
        place: tuple[Deployment, Path, Path]) -> None:
    deployment, source, location = place
    spec = start(deployment, {"source": str(source), "chunk_size": 2000}, "exec-1")
    finish(spec, "exec-1")
    before = files(location)
    source.write_bytes(rows(100))  # the source shrank
    with pytest.raises(SourceChanged) as info:
        plan({"resume": str(location)}, "exec-2", deployment, Storage(), alive)
    message = str(info.value)
    assert message.startswith(f"{source} changed since run {location} was split")
    assert f"start a new run of the source instead (s3split run {source} --out {location}" in \
        message
    assert files(location) == before  # no lock taken, no report deleted, no result touched


def test_a_resume_of_an_unchanged_source_is_planned(place: tuple[Deployment, Path, Path]) -> None:
    deployment, source, location = place
    finish(start(deployment, {"source": str(source), "chunk_size": 2000}, "exec-1"), "exec-1")
    resumed = plan({"resume": str(location)}, "exec-2", deployment, Storage(), alive)
    assert resumed["mode"] == "resume" and resumed["lease"] == "exec-2"


def test_a_fresh_run_leaves_nothing_of_the_earlier_run(
        place: tuple[Deployment, Path, Path]) -> None:
    deployment, source, location = place
    finish(start(deployment, {"source": str(source), "chunk_size": 2000}, "exec-1"), "exec-1")
    source.write_bytes(rows(100))
    spec = start(deployment, {"source": str(source), "chunk_size": 2000}, "exec-2")
    left = files(location)
    assert not [name for name in left
                if name.startswith(("results/", "rejects/", "status/", "report"))]
    manifest = Storage().read_json(spec.layout.manifest)
    assert manifest["rows"] == 100 and manifest["source"]["etag"] == Storage().stat(
        str(source)).etag


def test_a_split_whose_chunks_are_gone_is_split_again(
        place: tuple[Deployment, Path, Path]) -> None:
    deployment, source, location = place
    spec = start(deployment, {"source": str(source), "chunk_size": 2000}, "exec-1")
    kept = files(location / "chunks")
    assert len(kept) > 3
    release(spec.location, "exec-1", Storage())
    for n, event in enumerate([{"resume": str(location)},
                               {"source": str(source), "chunk_size": 2000}], start=2):
        (location / "chunks" / "part-00002.csv").unlink()  # expired by the lifecycle rule
        assert reusable_manifest(spec, Storage()) is None
        start(deployment, event, f"exec-{n}")
        assert files(location / "chunks") == kept
        release(str(location), f"exec-{n}", Storage())


def test_a_manifest_pointing_outside_its_run_is_not_reused(
        place: tuple[Deployment, Path, Path], tmp_path: Path) -> None:
    deployment, source, _ = place
    spec = start(deployment, {"source": str(source), "chunk_size": 2000}, "exec-1")
    manifest = Storage().read_json(spec.layout.manifest)
    manifest["chunks"][0]["uri"] = str(tmp_path / "elsewhere.csv")
    (tmp_path / "elsewhere.csv").write_bytes(rows(1))
    Storage().write_json(spec.layout.manifest, manifest)
    assert reusable_manifest(spec, Storage()) is None
