"""An S3 range split through the real ASL on the engine with chunks over S3's 5 MiB part
minimum: S3 assembles them (UploadPartCopy of the pinned source version) and they are the
sequential split's, byte for byte."""

import pytest

from s3split.engine.local import local_engine
from s3split.split.manifest import SplitSettings
from s3split.split.splitter import split
from s3split.storage import Storage, join
from tests.support.iam import record_state_machine_calls
from tests.support.pipeline import BUCKET, CREDENTIALS, assert_accounted, moto_s3_server, s3_client

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

MiB = 1024 * 1024
HEADER = b"id,name,note\r\n"


def source_bytes(size: int) -> bytes:
    out, total, i = [HEADER], 0, 0
    while total < size:
        out.append(f'{i},"name {i}, {"x" * (i % 41)}","a\r\nb ""{i}"""\r\n'.encode())
        total += len(out[-1])
        i += 1
    return b"".join(out)


def test_s3_chunks_of_a_range_split_are_copied_by_s3_and_byte_exact() -> None:
    data = source_bytes(13 * MiB)
    with moto_s3_server() as endpoint:
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="incoming/big.csv", Body=data)
        storage = Storage(s3)
        source, location = f"s3://{BUCKET}/incoming/big.csv", f"s3://{BUCKET}/runs/big"
        env = CREDENTIALS | {"AWS_ENDPOINT_URL_S3": endpoint, "S3SPLIT_ALLOWED_BUCKETS": BUCKET,
                             "S3SPLIT_RANGE_SPLIT_FROM": "10MiB", "S3SPLIT_RANGE_SIZE": "2MiB",
                             "S3SPLIT_ASSEMBLE_CHUNKS": "1"}
        with local_engine(f"s3://{BUCKET}/runs", workers=2, env=env) as engine:
            outcome = engine.wait(engine.start(
                {"source": source, "run": location, "chunk_size": 6 * MiB, "processor": "noop",
                 "lanes": 2}), timeout_s=300)
            record_state_machine_calls(engine.sfn)
        assert outcome.succeeded, outcome
        manifest = storage.read_json(join(location, "chunks", "manifest.json"))
        expected = split(source, f"s3://{BUCKET}/sequential", SplitSettings(chunk_size=6 * MiB),
                         storage).manifest
        assert expected is not None and expected.count == 3
        assert manifest["assembly"] == {"scan": "ranges", "ranges": 7, "batches": 3,
                                        "chunks": ["copy", "copy", "upload"]}
        for ours, theirs in zip(manifest["chunks"], expected.chunks, strict=True):
            assert {**ours, "uri": ""} == {**theirs.__dict__, "uri": ""}
            with storage.open_read(ours["uri"]) as a, storage.open_read(theirs.uri) as b:
                assert a.read() == b.read()
            tags = s3.get_object_tagging(Bucket=BUCKET, Key=ours["uri"][len(f"s3://{BUCKET}/"):])
            assert tags["TagSet"] == [{"Key": "s3split-object", "Value": "chunk"}]
        report = storage.read_json(join(location, "report.json"))
        assert_accounted(report, expected.rows, manifest)
