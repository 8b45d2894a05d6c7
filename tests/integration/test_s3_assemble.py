"""assemble_chunk against moto: a chunk is header + source[start:end], byte for byte, made with
one PUT when small and with UploadPartCopy of the source when large; pinned to the planned
version of the source; nothing visible and no upload left behind when anything fails."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from s3split.errors import (
    BucketNotFound,
    InvalidOption,
    SourceChanged,
    SourceInDestination,
    TransientError,
)
from s3split.split.s3_assembly import (
    COPY,
    MIN_PART,
    UPLOAD,
    PinnedSource,
    assemble_chunk,
    plan_parts,
)
from s3split.storage import ObjectInfo, Storage
from tests.support import aws

pytestmark = pytest.mark.timeout(120)

BUCKET = "s3asm-test"
MiB = 1024 * 1024
HEADER = b"id,name,note\r\n"


class Injected(Exception):
    """A failure injected at the client layer."""


@pytest.fixture
def mocked_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's S3 in this process (no server: nothing outside it reaches it), ``BUCKET`` made."""
    with aws.mocked_s3(monkeypatch, BUCKET) as client:
        yield client


def records(size: int, salt: str = "") -> bytes:
    """CRLF records of about ``size`` bytes, every one different."""
    out, total, i = [], 0, 0
    while total < size:
        out.append(f'{i},"name {i}{salt}, {"x" * (i % 37)}",note {i}\r\n'.encode())
        total += len(out[-1])
        i += 1
    return b"".join(out)


def put_source(s3: Any, data: bytes, key: str = "in/source.csv") -> PinnedSource:
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    head = s3.head_object(Bucket=BUCKET, Key=key)
    return PinnedSource(BUCKET, key, head["ETag"], head.get("VersionId"))


def record_end_at_or_after(data: bytes, offset: int) -> int:
    return data.index(b"\r\n", offset) + 2


def body(s3: Any, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def exists(s3: Any, key: str) -> bool:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=key).get("Contents", [])
    return any(obj["Key"] == key for obj in listed)


def pending_uploads(s3: Any) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]


def tags(s3: Any, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]}


def calls_of(client: Any, operation: str) -> list[dict[str, Any]]:
    """The parameters of every ``operation`` call on the client, as a log."""
    seen: list[dict[str, Any]] = []
    client.meta.events.register(f"before-parameter-build.s3.{operation}",
                                lambda params, **_: seen.append(dict(params)))
    return seen


def fail_nth(client: Any, operation: str, n: int, error: Exception) -> None:
    count = [0]

    def hook(**_: Any) -> None:
        count[0] += 1
        if count[0] == n:
            raise error

    client.meta.events.register(f"before-call.s3.{operation}", hook)


# -- the two ways, byte for byte -------------------------------------------------------------


def test_small_chunk_is_one_get_and_one_put(mocked_s3: Any) -> None:
    data = HEADER + records(300_000)
    source = put_source(mocked_s3, data)
    start = len(HEADER) + 1000
    start = record_end_at_or_after(data, start)
    end = record_end_at_or_after(data, start + 100_000)
    copies = calls_of(mocked_s3, "UploadPartCopy")

    method = assemble_chunk(mocked_s3, source, HEADER, start, end, (BUCKET, "out/part-00001.csv"))

    assert method == UPLOAD
    assert body(mocked_s3, "out/part-00001.csv") == HEADER + data[start:end]
    assert copies == []
    assert tags(mocked_s3, "out/part-00001.csv") == {"s3split-object": "chunk"}


def test_large_chunk_is_copied_by_s3_byte_exact(mocked_s3: Any) -> None:
    data = HEADER + records(40 * MiB)
    source = put_source(mocked_s3, data)
    start = record_end_at_or_after(data, 3 * MiB)
    end = record_end_at_or_after(data, start + 33 * MiB)
    copies, uploads = calls_of(mocked_s3, "UploadPartCopy"), calls_of(mocked_s3, "UploadPart")

    method = assemble_chunk(mocked_s3, source, HEADER, start, end, (BUCKET, "out/part-00002.csv"),
                            part_size=8 * MiB)

    assert method == COPY
    assert body(mocked_s3, "out/part-00002.csv") == HEADER + data[start:end]
    # part 1 is the header and the chunk's first bytes up to 5 MiB; the rest are copies
    assert [len(u["Body"]) for u in uploads] == [MIN_PART]
    ranges = [c["CopySourceRange"] for c in copies]
    first = start + MIN_PART - len(HEADER)
    assert ranges[0] == f"bytes={first}-{first + 8 * MiB - 1}"
    assert ranges[-1].endswith(f"-{end - 1}") and len(ranges) == 4
    assert all(c["CopySourceIfMatch"] == source.etag for c in copies)
    assert tags(mocked_s3, "out/part-00002.csv") == {"s3split-object": "chunk"}
    assert pending_uploads(mocked_s3) == []


@pytest.mark.parametrize("size", [200_000, 12 * MiB], ids=["upload", "copy"])
def test_header_without_line_end_is_just_prepended(mocked_s3: Any, size: int) -> None:
    data = records(size + 10)
    source = put_source(mocked_s3, data)
    header = b'a,"b\r\nc'  # whatever bytes the chunk table says the header is
    method = assemble_chunk(mocked_s3, source, header, 7, 7 + size, (BUCKET, "out/odd.csv"))
    assert method == (UPLOAD if size < MIN_PART else COPY)
    assert body(mocked_s3, "out/odd.csv") == header + data[7:7 + size]


def test_header_of_5_mib_or_more_is_part_one_alone(mocked_s3: Any) -> None:
    header = b"h" * (MIN_PART + 3) + b"\n"
    data = records(7 * MiB)
    source = put_source(mocked_s3, data)
    gets = calls_of(mocked_s3, "GetObject")
    method = assemble_chunk(mocked_s3, source, header, 100, 6 * MiB, (BUCKET, "out/wide.csv"),
                            part_size=5 * MiB)
    assert method == COPY and gets == []
    assert body(mocked_s3, "out/wide.csv") == header + data[100:6 * MiB]


def test_chunk_of_exactly_one_part_and_of_one_byte_more(mocked_s3: Any) -> None:
    data = records(6 * MiB)
    source = put_source(mocked_s3, data)
    exact = MIN_PART - len(HEADER)
    assert assemble_chunk(mocked_s3, source, HEADER, 0, exact, (BUCKET, "out/a.csv")) == UPLOAD
    assert assemble_chunk(mocked_s3, source, HEADER, 0, exact + 1, (BUCKET, "out/b.csv")) == COPY
    assert body(mocked_s3, "out/a.csv") == HEADER + data[:exact]
    assert body(mocked_s3, "out/b.csv") == HEADER + data[:exact + 1]


def test_running_again_writes_the_same_bytes(mocked_s3: Any) -> None:
    data = HEADER + records(12 * MiB)
    source = put_source(mocked_s3, data)
    dest = (BUCKET, "out/again.csv")
    for _ in range(2):
        assert assemble_chunk(mocked_s3, source, HEADER, 500, len(data) - 3, dest) == COPY
        assert body(mocked_s3, dest[1]) == HEADER + data[500:len(data) - 3]
    mocked_s3.put_object(Bucket=BUCKET, Key=dest[1], Body=b"something else")
    assemble_chunk(mocked_s3, source, HEADER, 500, len(data) - 3, dest)
    assert body(mocked_s3, dest[1]) == HEADER + data[500:len(data) - 3]
    assert pending_uploads(mocked_s3) == []


# -- the source changes ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [100_000, 12 * MiB], ids=["upload", "copy"])
def test_source_rewritten_after_the_plan_fails_source_changed(mocked_s3: Any, size: int) -> None:
    data = HEADER + records(size + 100)
    source = put_source(mocked_s3, data)
    mocked_s3.put_object(Bucket=BUCKET, Key=source.key, Body=HEADER + records(size + 100, salt="!"))
    with pytest.raises(SourceChanged, match=r"s3://s3asm-test/in/source.csv changed"):
        assemble_chunk(mocked_s3, source, HEADER, 50, 50 + size, (BUCKET, "out/changed.csv"))
    assert not exists(mocked_s3, "out/changed.csv")
    assert pending_uploads(mocked_s3) == []


def test_source_rewritten_during_the_copies_fails_and_leaves_nothing(mocked_s3: Any) -> None:
    data = HEADER + records(24 * MiB)
    source = put_source(mocked_s3, data)
    other = boto3.client("s3", region_name="us-east-1")
    rewritten = records(24 * MiB, salt="?")

    def rewrite(**_: Any) -> None:
        other.put_object(Bucket=BUCKET, Key=source.key, Body=rewritten)

    mocked_s3.meta.events.register("before-call.s3.UploadPartCopy", rewrite)
    with pytest.raises(SourceChanged, match="changed since the chunk table was made"):
        assemble_chunk(mocked_s3, source, HEADER, 0, 20 * MiB, (BUCKET, "out/mid.csv"),
                       part_size=5 * MiB)
    assert not exists(mocked_s3, "out/mid.csv")
    assert pending_uploads(mocked_s3) == []


def test_source_shorter_than_the_plan_fails_source_changed(mocked_s3: Any) -> None:
    data = HEADER + records(8 * MiB)
    source = put_source(mocked_s3, data)
    for start, end in ((10, len(data) + 1), (len(data) - 100, len(data) + 5)):
        with pytest.raises(SourceChanged, match=f"{end}|bytes {start}-{end - 1}"):
            assemble_chunk(mocked_s3, source, HEADER, start, end, (BUCKET, "out/short.csv"))
    assert not exists(mocked_s3, "out/short.csv")
    assert pending_uploads(mocked_s3) == []


def test_versioned_source_copies_the_pinned_version(mocked_s3: Any) -> None:
    mocked_s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    data = HEADER + records(12 * MiB)
    source = put_source(mocked_s3, data)
    assert source.version_id
    mocked_s3.put_object(Bucket=BUCKET, Key=source.key, Body=HEADER + records(12 * MiB, salt="v2"))
    copies = calls_of(mocked_s3, "UploadPartCopy")
    end = len(data) - 10
    assert assemble_chunk(mocked_s3, source, HEADER, 20, end, (BUCKET, "out/v1.csv")) == COPY
    assert body(mocked_s3, "out/v1.csv") == HEADER + data[20:end]
    # (botocore has turned the CopySource dict into its header value by then)
    assert copies and all(f"versionId={source.version_id}" in c["CopySource"] for c in copies)
    assert assemble_chunk(mocked_s3, source, HEADER, 20, 1000, (BUCKET, "out/v1s.csv")) == UPLOAD
    assert body(mocked_s3, "out/v1s.csv") == HEADER + data[20:1000]


def test_deleted_version_fails_source_changed(mocked_s3: Any) -> None:
    mocked_s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    source = put_source(mocked_s3, HEADER + records(7 * MiB))
    mocked_s3.delete_object(Bucket=BUCKET, Key=source.key, VersionId=source.version_id)
    with pytest.raises(SourceChanged, match=f"version {source.version_id}"):
        assemble_chunk(mocked_s3, source, HEADER, 0, 6 * MiB, (BUCKET, "out/gone.csv"))
    assert not exists(mocked_s3, "out/gone.csv") and pending_uploads(mocked_s3) == []


# -- failures part-way -----------------------------------------------------------------------


@pytest.mark.parametrize(("operation", "n"), [("UploadPartCopy", 2), ("UploadPart", 1),
                                              ("CompleteMultipartUpload", 1)])
def test_failure_mid_way_aborts_the_upload(mocked_s3: Any, operation: str, n: int) -> None:
    data = HEADER + records(20 * MiB)
    source = put_source(mocked_s3, data)
    fail_nth(mocked_s3, operation, n, Injected(f"{operation} #{n}"))
    aborts = calls_of(mocked_s3, "AbortMultipartUpload")
    with pytest.raises(Injected):
        assemble_chunk(mocked_s3, source, HEADER, 0, 18 * MiB, (BUCKET, "out/cut.csv"),
                       part_size=5 * MiB)
    assert not exists(mocked_s3, "out/cut.csv")
    assert len(aborts) == 1 and pending_uploads(mocked_s3) == []


def test_throttled_copy_is_transient_and_aborts(mocked_s3: Any) -> None:
    source = put_source(mocked_s3, HEADER + records(12 * MiB))
    slow_down = ClientError({"Error": {"Code": "SlowDown", "Message": "reduce your rate"},
                             "ResponseMetadata": {"HTTPStatusCode": 503}}, "UploadPartCopy")
    fail_nth(mocked_s3, "UploadPartCopy", 1, slow_down)
    with pytest.raises(TransientError, match=re.escape("UploadPartCopy 2 of chunk s3://s3asm-test/out/t.csv")):
        assemble_chunk(mocked_s3, source, HEADER, 0, 11 * MiB, (BUCKET, "out/t.csv"))
    assert not exists(mocked_s3, "out/t.csv") and pending_uploads(mocked_s3) == []


# -- refusals --------------------------------------------------------------------------------


def test_refuses_what_it_must_not_do(mocked_s3: Any) -> None:
    source = put_source(mocked_s3, HEADER + records(1000))
    with pytest.raises(SourceInDestination):
        assemble_chunk(mocked_s3, source, HEADER, 0, 100, (BUCKET, source.key))
    for start, end in ((-1, 10), (10, 10), (10, 5)):
        with pytest.raises(InvalidOption, match=f"{start}-{end}"):
            assemble_chunk(mocked_s3, source, HEADER, start, end, (BUCKET, "out/x.csv"))
    with pytest.raises(InvalidOption, match="pin"):
        PinnedSource(BUCKET, source.key)
    with pytest.raises(InvalidOption, match="part size"):
        assemble_chunk(mocked_s3, source, HEADER, 0, 100, (BUCKET, "out/x.csv"), part_size=MiB)
    with pytest.raises(BucketNotFound, match="no-such-bucket"):
        assemble_chunk(mocked_s3, source, HEADER, 0, 100, ("no-such-bucket", "out/x.csv"))
    assert not exists(mocked_s3, "out/x.csv")


def test_pinned_source_from_storage_stat(mocked_s3: Any) -> None:
    data = HEADER + records(6 * MiB)
    put_source(mocked_s3, data)
    info = Storage(mocked_s3).stat(f"s3://{BUCKET}/in/source.csv")
    source = PinnedSource.of(info)
    assert (source.bucket, source.key, source.etag) == (BUCKET, "in/source.csv", info.etag)
    assemble_chunk(mocked_s3, source, HEADER, 3, len(data), (BUCKET, "out/stat.csv"))
    assert body(mocked_s3, "out/stat.csv") == HEADER + data[3:]
    with pytest.raises(InvalidOption, match="not an s3:// object"):
        PinnedSource.of(ObjectInfo("/tmp/x.csv", 10, '"1-2-3"'))


def test_plan_matches_what_is_sent(mocked_s3: Any) -> None:
    data = HEADER + records(30 * MiB)
    source = put_source(mocked_s3, data)
    copies = calls_of(mocked_s3, "UploadPartCopy")
    plan = plan_parts(len(HEADER), 1, len(data), 6 * MiB)
    assemble_chunk(mocked_s3, source, HEADER, 1, len(data), (BUCKET, "out/p.csv"),
                   part_size=6 * MiB)
    assert [c["CopySourceRange"] for c in copies] == [
        f"bytes={a}-{b - 1}" for a, b in plan.copies]
