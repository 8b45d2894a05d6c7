"""S3 failing under the splitter: injected at the HTTP layer, never by mocking our code.

503 SlowDown and 500 answers come from botocore event hooks (botocore's retry config must
absorb them); a connection reset mid-body comes from a proxy in front of a moto server
(smart-open must reopen the stream at the right offset). The split must stay byte-exact and
hold every source record exactly once: ``check_split`` rebuilds the source from the chunks and
counts each chunk's records against the manifest.
"""

import random
import re
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from s3split.errors import SourceChanged
from s3split.split.manifest import SplitSettings
from s3split.split.range_steps import server_side_applies, split_server_side
from s3split.split.splitter import split
from s3split.storage import Storage
from tests.support.faulty_proxy import FaultyProxy
from tests.support.pipeline import BUCKET, moto_s3_server, s3_client
from tests.support.splits import check_split, read_split

MiB = 1024 * 1024


def source_records() -> tuple[bytes, list[bytes]]:
    """About 13 MiB: a header and records with quoted commas, doubled quotes and CRLFs."""
    rng = random.Random(5)
    header, size = b"id,text,n\r\n", 0
    records: list[bytes] = []
    while size < 13 * MiB:
        record = f'{len(records) + 1},"a, ""b""\r\nc {rng.random()}",{rng.randint(0, 10**9)}\r\n'
        records.append(record.encode())
        size += len(records[-1])
    return header + b"".join(records), records


DATA, RECORDS = source_records()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_s3_server() as url:
        client = s3_client(url)
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="in/big.csv", Body=DATA)
        yield url


def assert_every_record_once(s3: Any, prefix: str) -> dict[str, Any]:
    """The chunks rebuild DATA byte for byte, each record in exactly one chunk, and the
    manifest counts all of them; returns the manifest."""
    manifest, chunks = read_split(f"s3://{BUCKET}/{prefix}", Storage(s3))
    check_split(DATA, manifest, chunks, records=RECORDS, parse_csv=False)
    assert manifest["rows"] == len(RECORDS) == sum(e["rows"] for e in manifest["chunks"])
    return dict(manifest)


class FailFirst:
    """A botocore ``before-send`` hook answering the first ``times`` calls with ``status``."""

    def __init__(self, status: int, code: str, times: int) -> None:
        self.status, self.code, self.left, self.seen = status, code, times, 0

    def __call__(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        self.seen += 1
        if self.left <= 0:
            return None
        self.left -= 1
        body = (f"<Error><Code>{self.code}</Code><Message>injected</Message></Error>").encode()

        class Raw:
            def stream(self, **_: Any) -> Iterator[bytes]:
                yield body

        return AWSResponse(request.url, self.status, {}, Raw())


@pytest.mark.parametrize(("operation", "status", "code"), [
    ("GetObject", 503, "SlowDown"),
    ("GetObject", 500, "InternalError"),
    ("UploadPart", 500, "InternalError"),
    ("UploadPart", 503, "SlowDown"),
    ("CompleteMultipartUpload", 500, "InternalError"),
])
def test_s3_errors_are_retried_and_the_split_stays_exact(endpoint: str, operation: str,
                                                         status: int, code: str) -> None:
    s3 = s3_client(endpoint)
    hook = FailFirst(status, code, times=2)
    s3.meta.events.register(f"before-send.s3.{operation}", hook)
    prefix = f"out/{operation}-{status}"
    result = split(f"s3://{BUCKET}/in/big.csv", f"s3://{BUCKET}/{prefix}",
                   SplitSettings(chunk_size=6 * MiB), Storage(s3))
    assert result.done and hook.left == 0 and hook.seen > 2
    s3.meta.events.unregister(f"before-send.s3.{operation}", hook)
    assert assert_every_record_once(s3, prefix)["count"] == 3


def test_connection_reset_mid_body_is_resumed_at_the_right_offset(endpoint: str) -> None:
    port = int(endpoint.rsplit(":", 1)[1])
    with FaultyProxy(port, cut_after=3 * MiB) as proxy:
        s3 = s3_client(f"http://127.0.0.1:{proxy.port}")
        result = split(f"s3://{BUCKET}/in/big.csv", f"s3://{BUCKET}/out/reset",
                       SplitSettings(chunk_size=6 * MiB), Storage(s3))
        assert result.done and proxy.cut_done == 1
    assert_every_record_once(s3_client(endpoint), "out/reset")


def test_connection_reset_mid_body_of_a_split_assembled_by_s3_is_read_again(
        endpoint: str) -> None:
    """Between S3 locations the source is read by ranged GETs of its pinned version: one cut
    off mid-body is asked again, as the single pass reopens its stream."""
    port = int(endpoint.rsplit(":", 1)[1])
    settings = SplitSettings(chunk_size=16 * MiB)
    assert server_side_applies(f"s3://{BUCKET}/in/big.csv", f"s3://{BUCKET}/out/srv", settings)
    with FaultyProxy(port, cut_after=3 * MiB) as proxy:
        s3 = s3_client(f"http://127.0.0.1:{proxy.port}")
        manifest = split_server_side(f"s3://{BUCKET}/in/big.csv", f"s3://{BUCKET}/out/srv",
                                     settings, Storage(s3))
        assert manifest is not None and proxy.cut_done == 1
    assert assert_every_record_once(s3_client(endpoint), "out/srv")["assembly"] is not None


def test_persistent_errors_fail_the_split_and_leave_no_manifest(endpoint: str) -> None:
    s3 = s3_client(endpoint)
    hook = FailFirst(500, "InternalError", times=1000)
    s3.meta.events.register("before-send.s3.UploadPart", hook)
    with pytest.raises(Exception, match="InternalError"):
        split(f"s3://{BUCKET}/in/big.csv", f"s3://{BUCKET}/out/broken",
              SplitSettings(chunk_size=6 * MiB), Storage(s3))
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="out/broken/")
    assert [o["Key"] for o in listed.get("Contents", [])] == []


# -- a source overwritten while a connection is cut ----------------------------------------------


def overwrite_then_cut(endpoint: str, bucket: str, key: str, new: bytes) -> tuple[Any, Any]:
    """Put DATA at ``bucket/key``; return a direct client and an ``on_progress`` that overwrites
    the object with ``new`` on its first call. That call comes after smart-open's first 8 MiB
    buffer is read, so with a proxy cutting the GET at 10 MiB the reconnect for the rest comes
    after the overwrite."""
    direct = s3_client(endpoint)
    direct.put_object(Bucket=bucket, Key=key, Body=DATA)
    done: list[str] = []

    def on_progress(_: int) -> None:
        if not done:
            done.append(direct.put_object(Bucket=bucket, Key=key, Body=new)["ETag"])

    return direct, on_progress


def test_an_object_overwritten_mid_split_fails_source_changed_not_mixed(endpoint: str) -> None:
    key = "in/changing.csv"
    direct, on_progress = overwrite_then_cut(endpoint, BUCKET, key, DATA.replace(b"a, ", b"A, "))
    etag = direct.head_object(Bucket=BUCKET, Key=key)["ETag"]
    port = int(endpoint.rsplit(":", 1)[1])
    with FaultyProxy(port, cut_after=10 * MiB) as proxy:
        s3 = s3_client(f"http://127.0.0.1:{proxy.port}")
        with pytest.raises(SourceChanged) as info:
            split(f"s3://{BUCKET}/{key}", f"s3://{BUCKET}/out/changing",
                  SplitSettings(chunk_size=6 * MiB), Storage(s3), on_progress=on_progress,
                  block_size=MiB)
        assert proxy.cut_done == 1
    assert re.fullmatch(
        rf"s3://{BUCKET}/{key} changed during the split: it no longer has ETag {re.escape(etag)} "
        r"\(S3 answered PreconditionFailed to GetObject bytes=\d+-\); start the split again",
        str(info.value)), str(info.value)
    listed = direct.list_objects_v2(Bucket=BUCKET, Prefix="out/changing/").get("Contents", [])
    assert "out/changing/manifest.json" not in [o["Key"] for o in listed]


def test_a_versioned_object_overwritten_mid_split_is_read_at_its_first_version(
        endpoint: str) -> None:
    bucket, key = "versioned", "in/changing.csv"
    direct = s3_client(endpoint)
    direct.create_bucket(Bucket=bucket)
    direct.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    _, on_progress = overwrite_then_cut(endpoint, bucket, key, DATA.replace(b"a, ", b"A, "))
    first = direct.list_object_versions(Bucket=bucket, Prefix=key)["Versions"][0]["VersionId"]
    port = int(endpoint.rsplit(":", 1)[1])
    gets: list[tuple[str, bytes | None]] = []

    def log_get(request: Any, **_: Any) -> None:
        gets.append((request.url, request.headers.get("If-Match")))

    with FaultyProxy(port, cut_after=10 * MiB) as proxy:
        s3 = s3_client(f"http://127.0.0.1:{proxy.port}")
        s3.meta.events.register("before-send.s3.GetObject", log_get)
        result = split(f"s3://{bucket}/{key}", f"s3://{bucket}/out", SplitSettings(
            chunk_size=6 * MiB), Storage(s3), on_progress=on_progress, block_size=MiB)
        assert result.manifest is not None and proxy.cut_done == 1
    versions = direct.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    assert len(versions) == 2 and result.manifest.source.version_id == first
    # The first GET and the reconnect both name the version and its ETag (with versioning
    # suspended S3 rewrites the "null" version in place: only the ETag would tell).
    source_gets = [(url, match) for url, match in gets if "/in/changing.csv" in url]
    assert len(source_gets) == 2, gets
    etag = direct.head_object(Bucket=bucket, Key=key, VersionId=first)["ETag"]
    assert [(f"versionId={first}" in url, match) for url, match in source_gets] == \
        [(True, etag.encode())] * 2, (source_gets, etag)
    manifest, chunks = read_split(f"s3://{bucket}/out", Storage(direct))
    check_split(DATA, manifest, chunks, records=RECORDS, parse_csv=False)  # only the old data

