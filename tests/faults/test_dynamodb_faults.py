"""DynamoDB throttling through the whole pipeline: the dynamodb processor in the engine's
workers, writing to a moto server, with faults injected per chunk (``fault_processors``).

Unprocessed items are retried inside the processor; a ThrottlingException escapes as a
TransientError that the state machine retries; a batch DynamoDB refuses fails its chunk. The
report must count every source record once, and the table must hold exactly the rows the
report says were imported.
"""

import bisect
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from s3split.engine.local import local_engine
from s3split.storage import Storage
from tests.support.fault_processors import TABLE
from tests.support.pipeline import CREDENTIALS, assert_accounted, moto_s3_server

pytestmark = pytest.mark.timeout(300)

PROCESSOR = "throttled=tests.support.fault_processors:throttled_dynamodb"
HEADER = "pk,sk,qty,paid\n"
ROWS = 120
BAD = {7, 60}  # rows whose qty is not a number: rejected with their source line


def source_text() -> str:
    """Fixed-width records (16 bytes); record i is on source line i + 2."""
    return HEADER + "".join(f"p{i:03d},{i:03d},{'x' if i in BAD else i % 5},true\n"
                            for i in range(ROWS))


def dynamodb_client(endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def table_keys(client: Any) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("scan").paginate(TableName=TABLE):
        keys += [item["pk"]["S"] for item in page["Items"]]
    return sorted(keys)


def test_throttled_import_accounts_for_every_record(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(source_text())
    location = tmp_path / "run"
    location.mkdir()
    control = {"unprocessed": {"0": 3}, "throttle": {"1": 1}, "refuse": [3]}
    (tmp_path / "control.json").write_text(json.dumps(control))
    run_input = {"source": str(source), "run": str(location), "chunk_size": 400,
                 "processor": "throttled", "lanes": 2,
                 "tolerate": "2"}  # the failed chunk and the two rejected rows
    with moto_s3_server() as endpoint:
        client = dynamodb_client(endpoint)
        client.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "N"}])
        env = CREDENTIALS | {"AWS_ENDPOINT_URL_DYNAMODB": endpoint,
                             "S3SPLIT_DYNAMODB_TABLE": TABLE,  # (the deployment's import table)
                             "S3SPLIT_PROCESSORS": PROCESSOR}
        with local_engine(str(tmp_path), workers=2, env=env) as engine:
            outcome = engine.wait(engine.start(run_input), timeout_s=240)
            failures = [e["lambdaFunctionFailedEventDetails"]["error"]
                        for arn in outcome.executions for e in engine.history(arn)
                        if e["type"] == "LambdaFunctionFailed"]
        imported = table_keys(client)  # the engine's in-process moto no longer intercepts

    assert outcome.succeeded, outcome
    assert sorted(failures) == ["ChunkInvalid", "TransientError"]
    storage = Storage()
    report: dict[str, Any] = storage.read_json(str(location / "report.json"))
    manifest: dict[str, Any] = storage.read_json(str(location / "chunks" / "manifest.json"))
    assert_accounted(report, ROWS, manifest)

    firsts = [entry["source_line"] for entry in manifest["chunks"]]
    assert len(firsts) > 4

    def chunk_of(row: int) -> int:
        return bisect.bisect_right(firsts, row + 2) - 1

    assert [(f["chunk"], f["source_line"], f["error"]) for f in report["failed"]] == [
        (3, firsts[3], "ChunkInvalid")]
    assert "refused a batch" in report["failed"][0]["message"]
    assert all(chunk_of(i) != 3 for i in BAD)  # rejected, not inside the failed chunk
    assert sorted((r["chunk"], r["line"]) for r in report["rejected"]) == [
        (chunk_of(i), i + 2) for i in sorted(BAD)]
    assert imported == [f"p{i:03d}" for i in range(ROWS) if chunk_of(i) != 3 and i not in BAD]
    assert report["rows_ok"] == len(imported)
    written = [json.loads(path.read_text())["imported"]
               for path in sorted((location / "results").glob("part-*.jsonl"))
               if not path.name.endswith(".rejects.jsonl")]
    assert sum(written) == len(imported)
    status = storage.read_json(str(location / "status" / "part-00001.json"))
    assert (status["state"], status["attempt"]) == ("ok", 2)
    attempts = {path.stem: json.loads(path.read_text())["batch_calls"]
                for path in (location / "attempts").iterdir()}
    assert attempts["0-0"] > 3  # 3 rounds of unprocessed items, then the rest
    assert attempts["1-0"] == 1 and "1-1" in attempts  # throttled, then again
