"""What assembling chunks sends to S3, counted on the wire (a moto server behind a counting
proxy): the first part of each chunk and the requests' own bytes, nothing more; the chunks are
byte-exact. (At 64 MiB chunks that is 5 MiB of 64, the issue's <= 12 %; bench/
bench_s3_assembly.py measures that size.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from s3split.split.s3_assembly import PinnedSource, assemble_chunk, plan_parts
from tests.support.counting_proxy import CountingProxy
from tests.support.pipeline import BUCKET, s3_client

pytestmark = pytest.mark.timeout(240)

MiB = 1024 * 1024
CHUNK = 16 * MiB
HEADER = b"id,name,note\r\n"
# Per request: the request line and headers (SigV4 signing, checksums) and, for
# CompleteMultipartUpload, its short XML body; under 1 KiB measured (880 bytes), bounded generously.
REQUEST_OVERHEAD = 4096
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1"}


def source_bytes(size: int) -> bytes:
    out, total, i = [], 0, 0
    while total < size:
        out.append(f'{i},"name {i}, {"x" * (i % 41)}",note {i}\r\n'.encode())
        total += len(out[-1])
        i += 1
    return HEADER + b"".join(out)


def cuts(data: bytes, header_end: int, chunk: int) -> list[tuple[int, int]]:
    """Chunk k closes at the first record end at or after header_end + k * chunk."""
    out, start = [], header_end
    while start < len(data):
        target = header_end + (len(out) + 1) * chunk
        end = len(data) if target >= len(data) else data.index(b"\r\n", target - 2) + 2
        out.append((start, end))
        start = end
    return out


def test_assembly_sends_the_first_parts_only(server_s3: Any, s3_endpoint: str) -> None:
    data = source_bytes(3 * CHUNK - 1000)
    server_s3.put_object(Bucket=BUCKET, Key="asm/source.csv", Body=data)
    head = server_s3.head_object(Bucket=BUCKET, Key="asm/source.csv")
    source = PinnedSource(BUCKET, "asm/source.csv", head["ETag"], head.get("VersionId"))
    chunks = cuts(data, len(HEADER), CHUNK)
    assert len(chunks) == 3

    with CountingProxy(int(s3_endpoint.rsplit(":", 1)[1])) as proxy:
        counted = s3_client(f"http://127.0.0.1:{proxy.port}")
        requests: list[str] = []
        counted.meta.events.register("before-send.s3", lambda **kw: requests.append(
            kw["request"].method))
        methods = [assemble_chunk(counted, source, HEADER, start, end,
                                  (BUCKET, f"asm/out/part-{i:05d}.csv"))
                   for i, (start, end) in enumerate(chunks)]
        sent, _ = proxy.reset()

    assert methods == ["copy"] * 3
    plans = [plan_parts(len(HEADER), start, end) for start, end in chunks]
    through_us = sum(len(HEADER) + plan.first_end - plan.start for plan in plans)
    assert through_us == 3 * 5 * MiB
    assert through_us <= sent <= through_us + REQUEST_OVERHEAD * len(requests), (
        sent, through_us, len(requests))
    assert sent < 0.33 * len(data)  # the streaming splitter sends all of it, and headers
    for i, (start, end) in enumerate(chunks):
        chunk = server_s3.get_object(Bucket=BUCKET, Key=f"asm/out/part-{i:05d}.csv")["Body"].read()
        assert chunk == HEADER + data[start:end], i


def test_an_s3_to_s3_split_assembles_the_single_passs_chunks_server_side(
        server_s3: Any, s3_endpoint: str) -> None:
    from s3split.split.manifest import SplitSettings
    from s3split.split.range_steps import server_side_applies, split_server_side
    from s3split.split.splitter import split
    from s3split.storage import Storage

    data = source_bytes(3 * CHUNK - 1000).replace(b"note 7\r\n", b'"note\r\n7"\r\n')
    server_s3.put_object(Bucket=BUCKET, Key="srv/source.csv", Body=data)
    source, settings = f"s3://{BUCKET}/srv/source.csv", SplitSettings(chunk_size=CHUNK)
    assert server_side_applies(source, f"s3://{BUCKET}/srv/asm", settings)
    with CountingProxy(int(s3_endpoint.rsplit(":", 1)[1])) as proxy:
        client = s3_client(f"http://127.0.0.1:{proxy.port}")
        requests: list[str] = []
        client.meta.events.register("before-send.s3", lambda **kw: requests.append(
            kw["request"].method))
        assembled = split_server_side(source, f"s3://{BUCKET}/srv/asm", settings,
                                      Storage(client))
        sent, received = proxy.reset()
    streamed = split(source, f"s3://{BUCKET}/srv/stream", settings, Storage(server_s3)).manifest
    assert streamed is not None and assembled is not None

    assert sent <= 0.33 * len(data), sent  # the first 5 MiB of each of the 3 chunks, requests
    # Read back: each byte of the source once (the first parts uploaded, the bytes around each
    # cut that both ranges beside it read, what reading the header read: kept from the first
    # read), and the answers' own bytes.
    assert len(data) <= received <= len(data) + REQUEST_OVERHEAD * len(requests), (
        received, len(data), len(requests))
    assert assembled.assembly is not None and assembled.assembly["chunks"] == ["copy"] * 3
    assert [(e.rows, e.bytes, e.source_offset, e.source_line) for e in assembled.chunks] == [
        (e.rows, e.bytes, e.source_offset, e.source_line) for e in streamed.chunks]
    assert (assembled.rows, assembled.header, assembled.source) == (
        streamed.rows, streamed.header, streamed.source)
    for a, b in zip(assembled.chunks, streamed.chunks, strict=True):
        assert read(server_s3, a.uri) == read(server_s3, b.uri), a.index


def read(s3: Any, uri: str) -> bytes:
    key = uri.removeprefix(f"s3://{BUCKET}/")
    return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def test_a_transcoded_source_between_s3_locations_takes_the_single_pass(
        server_s3: Any, s3_endpoint: str) -> None:
    """The real command: a UTF-16 source cannot be cut in source ranges, so S3 does not
    assemble its chunks; they are the single pass's, UTF-8."""
    text = "id,name\n" + "".join(f"{i},Jürgen {i}\n" for i in range(200))
    server_s3.put_object(Bucket=BUCKET, Key="srv/utf16.csv", Body=text.encode("utf-16"))
    dest = f"s3://{BUCKET}/srv/utf16-parts"
    done = subprocess.run(
        [sys.executable, "-m", "s3split", "split", f"s3://{BUCKET}/srv/utf16.csv", dest,
         "--chunk-size", "16MiB", "--json"],
        env=os.environ | FAKE_CREDENTIALS | {"AWS_ENDPOINT_URL": s3_endpoint},
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    manifest = json.loads(read(server_s3, f"{dest}/manifest.json"))
    assert manifest["rows"] == 200 and manifest.get("assembly") is None
    assert read(server_s3, f"{dest}/part-00000.csv") == text.encode("utf-8")


def test_a_split_without_credentials_fails_in_one_line(s3_endpoint: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        [sys.executable, "-m", "s3split", "split", f"s3://{BUCKET}/srv/x.csv", "out"],
        env=env | {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                   "AWS_CONFIG_FILE": "/nonexistent"},
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "s3split: error: Unable to locate credentials"], done.stderr


def test_records_longer_than_a_chunk_leave_nothing_kept_that_is_not_read_again(
        server_s3: Any, s3_endpoint: str) -> None:
    """Records of 3 MiB in chunks of 1 MiB pass two chunk targets each that no chunk starts
    after: what is kept for them is released with the chunk before them, so the cap (small
    here, the ranges too, so chunks are assembled while later ranges are scanned) holds only
    what is read again, and each source byte is still got once."""
    from unittest import mock

    from s3split.split import range_steps
    from s3split.split.manifest import SplitSettings
    from s3split.storage import Storage

    data = HEADER + b"".join(b"%d,%s,n\r\n" % (i, b"x" * (3 * MiB)) for i in range(12))
    server_s3.put_object(Bucket=BUCKET, Key="srv/long.csv", Body=data)
    source, dest = f"s3://{BUCKET}/srv/long.csv", f"s3://{BUCKET}/srv/long-parts"
    with CountingProxy(int(s3_endpoint.rsplit(":", 1)[1])) as proxy, \
            mock.patch.object(range_steps, "KEEP_CAP", 24 * MiB), \
            mock.patch.object(range_steps, "SERVER_SIDE_RANGE", 4 * MiB):
        client = s3_client(f"http://127.0.0.1:{proxy.port}")
        requests: list[str] = []
        client.meta.events.register("before-send.s3", lambda **kw: requests.append(
            kw["request"].method))
        manifest = range_steps.split_server_side(source, dest, SplitSettings(chunk_size=MiB),
                                                 Storage(client))
        _, received = proxy.reset()
    assert manifest is not None and manifest.rows == 12 == len(manifest.chunks)
    assert len(data) <= received <= len(data) + REQUEST_OVERHEAD * len(requests), (
        received, len(data), len(requests))
    for entry in manifest.chunks:
        start = entry.source_offset
        assert read(server_s3, entry.uri) == HEADER + data[start:start + entry.bytes
                                                           - len(HEADER)], entry.index
