"""split() with source and destination in S3 (moto): multipart chunk uploads, source
identity in the manifest, .gz sources, resuming, and failures injected at the client."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from backports import zstd

from s3split import storage as storage_module
from s3split.errors import (
    CorruptSource,
    SourceChanged,
    SourceInDestination,
    SourceNotFound,
    SplitInProgress,
)
from s3split.split.destination_lock import acquire, holding
from s3split.split.manifest import ResumeToken, SplitSettings
from s3split.split.splitter import split
from s3split.storage import Storage
from tests.support import aws
from tests.support.splits import check_sizes, check_split, read_split

pytestmark = pytest.mark.timeout(120)

BUCKET = "s3split-test"
MiB = 1024 * 1024
HEADER = b'id,name,note,amount\r\n'


class Injected(Exception):
    """A failure injected at the client layer."""


@pytest.fixture
def mocked_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's S3 in this process (no server: nothing outside it reaches it), ``BUCKET`` made."""
    with aws.mocked_s3(monkeypatch, BUCKET) as client:
        yield client


def uri(key: str) -> str:
    return f"s3://{BUCKET}/{key}"


def keys(client: Any, prefix: str) -> list[str]:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(obj["Key"][len(prefix):] for obj in listed)


def name_of(url_path: str) -> str:
    """``/out/x/part-00000.csv?uploads`` -> ``part-00000.csv``."""
    return url_path.split("?")[0].rsplit("/", 1)[-1]


def pending_uploads(client: Any) -> list[str]:
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]


def records_of(size: int) -> list[bytes]:
    """Varied CRLF records (quoted commas, quoted CRLF, doubled quotes, UTF-8) of ~size bytes."""
    out, total, i = [], 0, 0
    while total < size:
        note = f'"line {i}\r\nsays ""hi"", ok"' if i % 3 else f"plain-{i}-é"
        record = f'{i},"name {i}, {"x" * (i % 13)}",{note},{i * 7 % 1000}.{i % 100:02d}\r\n'
        out.append(record.encode())
        total += len(out[-1])
        i += 1
    return out


@pytest.fixture(scope="module")
def big() -> tuple[bytes, list[bytes]]:
    """A ~12 MiB source and its records (after the header)."""
    records = records_of(12 * MiB)
    return HEADER + b"".join(records), records


def on_call(client: Any, operation: str, act: Callable[[str], None]) -> None:
    """Run ``act(url_path)`` before every ``operation`` request the client sends."""

    def hook(params: dict[str, Any], **_: Any) -> None:
        act(params["url_path"])

    client.meta.events.register(f"before-call.s3.{operation}", hook)


def fail_nth(client: Any, operation: str, n: int, path_contains: str = "") -> list[str]:
    """Make the ``n``-th ``operation`` request (to a path containing ``path_contains``)
    raise ``Injected``; returns the url paths of the matching calls, as a log."""
    seen: list[str] = []

    def act(path: str) -> None:
        if path_contains in path:
            seen.append(path)
            if len(seen) == n:
                raise Injected(f"{operation} #{n} to {path}")

    on_call(client, operation, act)
    return seen


# -- a large split -----------------------------------------------------------------------------


@pytest.mark.parametrize(("part_size", "parts_per_chunk"), [(None, 1), (5 * MiB, 2)])
def test_large_split_uploads_chunks_as_multipart(
    mocked_s3: Any, big: tuple[bytes, list[bytes]], monkeypatch: pytest.MonkeyPatch,
    part_size: int | None, parts_per_chunk: int,
) -> None:
    if part_size is not None:
        monkeypatch.setattr(storage_module, "S3_PART_SIZE", part_size)
    data, records = big
    put = mocked_s3.put_object(Bucket=BUCKET, Key="in/big.csv", Body=data)
    created: list[str] = []
    part_sizes: dict[str, list[int]] = {}
    on_call(mocked_s3, "CreateMultipartUpload", created.append)

    def record_part(params: dict[str, Any], **_: Any) -> None:
        size = params["body"].getbuffer().nbytes
        part_sizes.setdefault(name_of(params["url_path"]), []).append(size)

    mocked_s3.meta.events.register("before-call.s3.UploadPart", record_part)

    chunk_size = 6 * MiB
    result = split(uri("in/big.csv"), uri("out/big"), SplitSettings(chunk_size=chunk_size),
                   Storage(mocked_s3))
    assert result.done and result.manifest_uri == uri("out/big/manifest.json")

    manifest, chunks = read_split(uri("out/big"), Storage(mocked_s3))
    assert manifest["source"] == {"uri": uri("in/big.csv"), "size": len(data),
                                  "etag": put["ETag"], "version_id": None}
    check_sizes(check_split(data, manifest, chunks, records=records), chunk_size)
    assert manifest["count"] == 2
    names = [f"part-{i:05d}.csv" for i in range(manifest["count"])]
    assert keys(mocked_s3, "out/big/") == sorted([*names, "manifest.json"])
    assert [name_of(p) for p in created] == [*names, "manifest.json"]
    for name, entry in zip(names, manifest["chunks"], strict=True):
        etag = mocked_s3.head_object(Bucket=BUCKET, Key=f"out/big/{name}")["ETag"]
        assert etag.strip('"').endswith(f"-{parts_per_chunk}"), (name, etag)
        sizes = part_sizes[name]
        assert len(sizes) == parts_per_chunk and sum(sizes) == entry["bytes"]
        assert all(s >= 5 * MiB for s in sizes[:-1])
        assert entry["bytes"] >= chunk_size or name == names[-1]
    assert pending_uploads(mocked_s3) == []


# -- source identity, compression, resuming --------------------------------------------------------


def small_source(rows: int = 40) -> bytes:
    return b"id,v\n" + b"".join(b'%d,"v %d\nsecond line"\n' % (i, i) for i in range(rows))


def test_versioned_source_records_version_and_etag(mocked_s3: Any) -> None:
    mocked_s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    mocked_s3.put_object(Bucket=BUCKET, Key="in/v.csv", Body=small_source(5))
    data = small_source(30)
    put = mocked_s3.put_object(Bucket=BUCKET, Key="in/v.csv", Body=data)
    assert put.get("VersionId")
    result = split(uri("in/v.csv"), uri("out/v"), SplitSettings(chunk_size=100), Storage(mocked_s3))
    assert result.manifest is not None
    assert result.manifest.source.version_id == put["VersionId"]
    assert result.manifest.source.etag == put["ETag"]
    manifest, chunks = read_split(uri("out/v"), Storage(mocked_s3))
    assert manifest["source"]["version_id"] == put["VersionId"]
    check_sizes(check_split(data, manifest, chunks), 100)


def test_unversioned_source_has_no_version(mocked_s3: Any) -> None:
    data = small_source(3)
    put = mocked_s3.put_object(Bucket=BUCKET, Key="in/u.csv", Body=data)
    result = split(uri("in/u.csv"), uri("out/u"), SplitSettings(chunk_size=100), Storage(mocked_s3))
    assert result.manifest is not None
    assert (result.manifest.source.etag, result.manifest.source.version_id) == (put["ETag"], None)


def test_chunks_are_tagged_for_the_lifecycle_rule_and_the_manifest_is_not(mocked_s3: Any) -> None:
    mocked_s3.put_object(Bucket=BUCKET, Key="in/t.csv", Body=small_source(50))
    result = split(uri("in/t.csv"), uri("out/t"), SplitSettings(chunk_size=500), Storage(mocked_s3))
    assert result.manifest is not None and result.manifest.count > 1
    for chunk in result.manifest.chunks:
        key = chunk.uri.removeprefix(f"s3://{BUCKET}/")
        tags = mocked_s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
        assert tags == [{"Key": "s3split-object", "Value": "chunk"}]
    manifest_tags = mocked_s3.get_object_tagging(Bucket=BUCKET, Key="out/t/manifest.json")["TagSet"]
    assert manifest_tags == []


def test_gzip_source_is_decompressed(mocked_s3: Any) -> None:
    data = small_source(200)
    compressed = gzip.compress(data)
    put = mocked_s3.put_object(Bucket=BUCKET, Key="in/data.csv.gz", Body=compressed)
    settings = SplitSettings(chunk_size=None, chunk_rows=64)
    result = split(uri("in/data.csv.gz"), uri("out/gz"), settings, Storage(mocked_s3),
                   block_size=1000)
    assert result.done
    manifest, chunks = read_split(uri("out/gz"), Storage(mocked_s3))
    check_split(data, manifest, chunks)
    assert [c["rows"] for c in manifest["chunks"]] == [64, 64, 64, 8]
    assert manifest["source"]["size"] == len(compressed)
    assert manifest["source"]["etag"] == put["ETag"]


@pytest.mark.parametrize(("key", "packed", "problem"), [
    ("in/cut.csv.gz", gzip.compress(small_source(200))[:-10], "truncated gzip data"),
    ("in/plain.csv.gz", small_source(200), "not gzip data"),
    ("in/cut.csv.zst", zstd.compress(small_source(200))[:-4], "truncated zstd data"),
])
def test_a_corrupt_compressed_s3_source_fails_naming_it(mocked_s3: Any, key: str, packed: bytes,
                                                        problem: str) -> None:
    """As a local one does: CorruptSource naming the object, never the decompressor's own
    EOFError or BadGzipFile (which name nothing), and no manifest."""
    mocked_s3.put_object(Bucket=BUCKET, Key=key, Body=packed)
    with pytest.raises(CorruptSource,
                       match=rf"^s3://{BUCKET}/{key}: {problem}.* good decompressed"):
        split(uri(key), uri("out/bad"), SplitSettings(chunk_size=100), Storage(mocked_s3))
    assert "manifest.json" not in keys(mocked_s3, "out/bad/")


@pytest.mark.parametrize("key", ["in/r.csv", "in/r.csv.gz"])
def test_resume_in_s3_gives_the_same_chunks(mocked_s3: Any, key: str) -> None:
    data = small_source(120)
    mocked_s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(data) if key.endswith(".gz")
                  else data)
    settings = SplitSettings(chunk_size=700)
    storage = Storage(mocked_s3)
    split(uri(key), uri("out/once"), settings, storage, block_size=256)
    token: ResumeToken | None = None
    for _ in range(100):
        result = split(uri(key), uri("out/steps"), settings, storage, resume=token,
                       should_stop=lambda: True, block_size=256)
        if result.done:
            break
        assert "manifest.json" not in keys(mocked_s3, "out/steps/")
        assert result.token is not None
        token = ResumeToken.from_dict(json.loads(json.dumps(result.token.to_dict())))
    else:
        raise AssertionError("the split never finished")
    once, once_chunks = read_split(uri("out/once"), storage)
    steps, steps_chunks = read_split(uri("out/steps"), storage)
    assert once_chunks == steps_chunks and len(once_chunks) > 3
    check_split(data, steps, steps_chunks)
    for entry in steps["chunks"]:
        entry["uri"] = entry["uri"].replace("/out/steps/", "/out/once/")
    assert once == steps
    assert keys(mocked_s3, "out/steps/") == keys(mocked_s3, "out/once/")  # no progress records left


def test_resume_after_source_overwritten(mocked_s3: Any) -> None:
    mocked_s3.put_object(Bucket=BUCKET, Key="in/c.csv", Body=small_source(20))
    stopped = split(uri("in/c.csv"), uri("out/c"), SplitSettings(chunk_size=100),
                    Storage(mocked_s3), should_stop=lambda: True)
    assert stopped.token is not None
    mocked_s3.put_object(Bucket=BUCKET, Key="in/c.csv", Body=small_source(21))
    with pytest.raises(SourceChanged, match="changed since the split started"):
        split(uri("in/c.csv"), uri("out/c"), SplitSettings(chunk_size=100), Storage(mocked_s3),
              resume=stopped.token)
    assert "manifest.json" not in keys(mocked_s3, "out/c/")


@pytest.mark.parametrize("key", ["in/missing.csv", "nested/dir/missing.csv.gz"])
def test_missing_s3_source(mocked_s3: Any, key: str) -> None:
    with pytest.raises(SourceNotFound) as info:
        split(uri(key), uri("out/m"), SplitSettings(), Storage(mocked_s3))
    assert str(info.value) == f"source not found: {uri(key)}"
    assert keys(mocked_s3, "out/") == []


def test_missing_bucket(mocked_s3: Any) -> None:
    with pytest.raises(SourceNotFound, match=r"^source not found: s3://no-such-bucket-here/x\.csv$"):
        split("s3://no-such-bucket-here/x.csv", uri("out/m"), SplitSettings(), Storage(mocked_s3))


# -- failures while writing -----------------------------------------------------------------


def test_upload_part_failure_mid_chunk(mocked_s3: Any, big: tuple[bytes, list[bytes]],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunk 0 goes up in two parts; the first part of chunk 1 fails while it is written."""
    monkeypatch.setattr(storage_module, "S3_PART_SIZE", 5 * MiB)
    mocked_s3.put_object(Bucket=BUCKET, Key="in/big.csv", Body=big[0])
    calls = fail_nth(mocked_s3, "UploadPart", 3)
    with pytest.raises(Injected):
        split(uri("in/big.csv"), uri("out/f"), SplitSettings(chunk_size=6 * MiB),
              Storage(mocked_s3))
    assert [c.split("?")[0] for c in calls] == ["/out/f/part-00000.csv"] * 2 + [
        "/out/f/part-00001.csv"]
    assert keys(mocked_s3, "out/f/") == ["part-00000.csv"]  # no manifest, nothing of chunk 1
    assert pending_uploads(mocked_s3) == []  # the half-written chunk's upload was aborted


def test_complete_failure_leaves_no_chunk_object(mocked_s3: Any) -> None:
    mocked_s3.put_object(Bucket=BUCKET, Key="in/s.csv", Body=small_source(40))
    calls = fail_nth(mocked_s3, "CompleteMultipartUpload", 1, path_contains="part-00002.csv")
    with pytest.raises(Injected):
        split(uri("in/s.csv"), uri("out/s"), SplitSettings(chunk_size=200), Storage(mocked_s3))
    assert len(calls) == 1
    assert keys(mocked_s3, "out/s/") == ["part-00000.csv", "part-00001.csv"]
    assert pending_uploads(mocked_s3) == []


def test_manifest_write_failure_leaves_no_manifest(mocked_s3: Any) -> None:
    data = small_source(40)
    mocked_s3.put_object(Bucket=BUCKET, Key="in/s.csv", Body=data)
    split(uri("in/s.csv"), uri("out/s"), SplitSettings(chunk_size=200), Storage(mocked_s3))
    assert "manifest.json" in keys(mocked_s3, "out/s/")  # a complete earlier split
    fail_nth(mocked_s3, "UploadPart", 1, path_contains="manifest.json")
    with pytest.raises(Injected):
        split(uri("in/s.csv"), uri("out/s"), SplitSettings(chunk_size=300), Storage(mocked_s3))
    names = keys(mocked_s3, "out/s/")
    assert "manifest.json" not in names
    names.remove(".leftovers.json")  # the earlier split's parts, noted for the next split
    assert names and all(n.startswith("part-") for n in names)
    assert pending_uploads(mocked_s3) == []


# -- the destination: never touch what the split did not write; one split at a time -------------


def objects(client: Any, prefix: str) -> dict[str, bytes]:
    return {name: client.get_object(Bucket=BUCKET, Key=prefix + name)["Body"].read()
            for name in keys(client, prefix)}


@pytest.mark.parametrize(("dest", "key"), [
    ("out/d", "out/d/part-00000.csv"), ("out/d/", "out/d/part-00003.csv"),
    ("out/d", "out/d/manifest.json"), ("out/d", "out/d/_split/segment-00000.json"),
    ("", "part-00001.csv")])
def test_an_s3_source_that_is_the_splits_own_object_is_refused(mocked_s3: Any, dest: str,
                                                               key: str) -> None:
    dest_uri = f"s3://{BUCKET}/{dest}" if dest else f"s3://{BUCKET}"
    mocked_s3.put_object(Bucket=BUCKET, Key="in/s.csv", Body=small_source(40))
    split(uri("in/s.csv"), dest_uri, SplitSettings(chunk_size=200), Storage(mocked_s3))
    mocked_s3.put_object(Bucket=BUCKET, Key=key, Body=small_source(3))
    prefix = dest.rstrip("/") + "/" if dest else ""
    before = objects(mocked_s3, prefix)
    with pytest.raises(SourceInDestination, match=f"^source {uri(key)} has a name the split "
                                                  f"writes in its destination {dest_uri}: "):
        split(uri(key), dest_uri, SplitSettings(chunk_size=100), Storage(mocked_s3))
    assert objects(mocked_s3, prefix) == before


def test_s3_leftovers_come_from_the_previous_manifest_only(mocked_s3: Any) -> None:
    data = small_source(40)
    mocked_s3.put_object(Bucket=BUCKET, Key="out/d/data.csv", Body=data)
    mocked_s3.put_object(Bucket=BUCKET, Key="out/d/part-00099.csv", Body=b"mine\n")
    mocked_s3.put_object(Bucket=BUCKET, Key="out/d-other/part-00005.csv", Body=b"other\n")
    storage = Storage(mocked_s3)
    first = split(uri("out/d/data.csv"), uri("out/d"), SplitSettings(chunk_size=200), storage)
    assert first.manifest is not None and first.manifest.count > 3
    second = split(uri("out/d/data.csv"), uri("out/d/"), SplitSettings(chunk_size=1000), storage)
    assert second.manifest is not None and second.manifest.count < first.manifest.count
    names = [f"part-{i:05d}.csv" for i in range(second.manifest.count)]
    assert keys(mocked_s3, "out/d/") == ["data.csv", "manifest.json", *names, "part-00099.csv"]
    assert objects(mocked_s3, "out/d/")["data.csv"] == data
    assert objects(mocked_s3, "out/d-other/") == {"part-00005.csv": b"other\n"}
    check_split(data, *read_split(uri("out/d"), storage))


def test_one_split_holds_an_s3_destination(mocked_s3: Any) -> None:
    storage = Storage(mocked_s3)
    with holding(uri("out/l"), storage):
        assert keys(mocked_s3, "out/l/") == [".split.lock"]
        with pytest.raises(SplitInProgress, match=f"^destination {uri('out/l')} is in use by "
                                                  f"another split, process {os.getpid()} on "):
            acquire(uri("out/l"), storage)
    assert keys(mocked_s3, "out/l/") == []
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    stale = {"lease": "old", "pid": child.pid, "host": socket.gethostname(), "since": "t"}
    mocked_s3.put_object(Bucket=BUCKET, Key="out/l/.split.lock", Body=json.dumps(stale).encode())
    with holding(uri("out/l"), storage) as holder:
        assert json.loads(objects(mocked_s3, "out/l/")[".split.lock"])["lease"] == holder.lease
    assert keys(mocked_s3, "out/l/") == []
