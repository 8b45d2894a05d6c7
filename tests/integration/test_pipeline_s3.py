"""The pipeline with S3 storage: a moto server on loopback stands in for S3, reached by the
handlers in their worker processes over HTTP; the three ways a run is started."""

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3split.engine.local import LocalEngine, local_engine
from s3split.pipeline.batch import child_name
from tests.support.iam import record_state_machine_calls
from tests.support.pipeline import BUCKET, CREDENTIALS, make_csv

EVENTS = Path(__file__).parents[1] / "events"


@pytest.fixture(scope="module")
def engine(s3_endpoint: str, server_s3: Any, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[LocalEngine]:
    env = CREDENTIALS | {"AWS_ENDPOINT_URL_S3": s3_endpoint, "S3SPLIT_ALLOWED_BUCKETS": BUCKET}
    # The interpreter's own S3 calls (a batch's ItemReader and ResultWriter) go there too.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
        with local_engine(f"s3://{BUCKET}/runs", workers=2, env=env) as started:
            yield started
            record_state_machine_calls(started.sfn)


def put_csv(s3: Any, tmp: Path, key: str, rows: int = 30) -> str:
    text = make_csv(tmp / "upload.csv", rows)
    s3.put_object(Bucket=BUCKET, Key=key, Body=text.encode())
    return text


def result_rows(s3: Any, prefix: str) -> list[dict[str, Any]]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/results/")
    keys = sorted(o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith(".jsonl"))
    rows = []
    for key in keys:
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
        rows += [json.loads(line) for line in body.splitlines()]
    return rows


def report(s3: Any, prefix: str) -> dict[str, Any]:
    body = s3.get_object(Bucket=BUCKET, Key=f"{prefix}/report.json")["Body"].read()
    return dict(json.loads(body))


def source_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_manual_start_with_spaces_and_unicode_in_the_key(engine: LocalEngine, server_s3: Any,
                                                         tmp_path: Path) -> None:
    key = "incoming/a b/ünïcode.csv"
    text = put_csv(server_s3, tmp_path, key)
    outcome = engine.wait(engine.start({"source": f"s3://{BUCKET}/{key}", "chunk_size": 1000}),
                          timeout_s=120)
    assert outcome.succeeded, outcome
    prefix = f"runs/{key}"
    assert report(server_s3, prefix)["chunks_ok"] > 1
    assert result_rows(server_s3, prefix) == source_rows(text)


def test_eventbridge_object_created_event(engine: LocalEngine, server_s3: Any,
                                         tmp_path: Path) -> None:
    event = json.loads((EVENTS / "s3_object_created.json").read_text())
    key = event["detail"]["object"]["key"]
    text = put_csv(server_s3, tmp_path, key)
    outcome = engine.wait(engine.start(event), timeout_s=120)
    assert outcome.succeeded, outcome
    assert result_rows(server_s3, f"runs/{key}") == source_rows(text)
    manifest = json.loads(server_s3.get_object(Bucket=BUCKET,
                                               Key=f"runs/{key}/chunks/manifest.json")
                          ["Body"].read())
    assert manifest["source"]["etag"] == server_s3.head_object(Bucket=BUCKET, Key=key)["ETag"]


def started_by(engine: LocalEngine, batch: str, keys: list[str]) -> list[str]:
    """The runs a batch started for ``keys``, found by the names Plan gives them."""
    prefix = engine.state_machine_arn.replace(":stateMachine:", ":execution:")
    names = [child_name(batch, f"s3://{BUCKET}/{key}") for key in keys]
    listed = {e["executionArn"] for page in engine.sfn.get_paginator("list_executions").paginate(
        stateMachineArn=engine.state_machine_arn) for e in page["executions"]}
    return [f"{prefix}:{name}" for name in names if f"{prefix}:{name}" in listed]


def test_batch_prefix_starts_one_execution_per_pending_csv(engine: LocalEngine, server_s3: Any,
                                                           tmp_path: Path) -> None:
    start = json.loads((EVENTS / "batch_start.json").read_text())
    prefix = start["prefix"].removeprefix(f"s3://{BUCKET}/")
    texts = {f"{prefix}{name}": put_csv(server_s3, tmp_path, f"{prefix}{name}", rows)
             for name, rows in (("one.csv", 10), ("two.csv", 25))}
    server_s3.put_object(Bucket=BUCKET, Key=f"{prefix}readme.txt", Body=b"not a csv")
    batch = engine.start(start)
    outcome = engine.wait(batch, timeout_s=60)
    assert outcome.succeeded, outcome
    assert outcome.output["count"] == 2
    children = started_by(engine, batch, sorted(texts))
    assert len(children) == 2
    for child in children:
        assert engine.wait(child, timeout_s=120).succeeded
    for key, text in texts.items():
        assert result_rows(server_s3, f"runs/{key}") == source_rows(text)
    again = engine.wait(engine.start(start), timeout_s=60)
    assert again.succeeded and again.output["count"] == 0  # completed runs are skipped
    texts[f"{prefix}two.csv"] = put_csv(server_s3, tmp_path, f"{prefix}two.csv", 7)  # a new version
    batch = engine.start(start)
    changed = engine.wait(batch, timeout_s=60)
    assert changed.output["count"] == 1
    (child,) = started_by(engine, batch, [f"{prefix}two.csv"])
    assert engine.wait(child, timeout_s=120).succeeded
    assert result_rows(server_s3, f"runs/{prefix}two.csv") == source_rows(texts[f"{prefix}two.csv"])


def test_source_in_a_bucket_outside_the_deployment(engine: LocalEngine) -> None:
    outcome = engine.wait(engine.start({"source": "s3://other-bucket/x.csv"}), timeout_s=60)
    assert outcome.error == "BucketNotAllowed"


def test_missing_object(engine: LocalEngine) -> None:
    outcome = engine.wait(engine.start({"source": f"s3://{BUCKET}/incoming/missing.csv"}),
                          timeout_s=60)
    assert outcome.error == "SourceNotFound"
    assert f"s3://{BUCKET}/incoming/missing.csv" in (outcome.cause or "")
