"""The dynamodb processor against moto: types, keys, duplicates, reruns and throttling."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from s3split.errors import ChunkInvalid, InvalidOption, TransientError
from s3split.processors.base import ProcessResult
from s3split.processors.dynamodb import BACKOFF_BASE, BACKOFF_CAP, RETRY_ROUNDS, DynamoDBProcessor
from s3split.storage import Storage
from tests.support.jobs import make_job

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = pytest.mark.timeout(60)

TYPES = {"qty": "N", "paid": "BOOL", "sk": "N"}


@pytest.fixture
def dynamodb(mocked_dynamodb: DynamoDBClient) -> DynamoDBClient:
    create_table(mocked_dynamodb, "orders", pk="S")
    create_table(mocked_dynamodb, "events", pk="S", sk="N")
    return mocked_dynamodb


def create_table(client: DynamoDBClient, name: str, *, pk: str, sk: str | None = None) -> None:
    keys: list[Any] = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attributes: list[Any] = [{"AttributeName": "pk", "AttributeType": pk}]
    if sk:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attributes.append({"AttributeName": "sk", "AttributeType": sk})
    client.create_table(
        TableName=name, KeySchema=keys, AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
    )


def scan(client: DynamoDBClient, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table):
        items.extend(page["Items"])
    return sorted(items, key=lambda i: (i["pk"]["S"], float(i.get("sk", {"N": "0"})["N"])))


def processor(
    client: DynamoDBClient, table: str = "orders", sleeps: list[float] | None = None
) -> DynamoDBProcessor:
    record = sleeps.append if sleeps is not None else (lambda seconds: None)
    return DynamoDBProcessor(table, TYPES, client, sleep=record)


def rows(count: int, *, first: int = 0) -> str:
    return "".join(f"p{i},{i},{i % 5},true\n" for i in range(first, first + count))


EVENTS_HEADER = "pk,sk,qty,paid\n"


def assert_every_row_once(result: ProcessResult, client: DynamoDBClient, table: str,
                          rows_in: int, keys: list[str]) -> None:
    """A chunk's accounting below the pipeline: each of its ``rows_in`` rows counted once
    (imported or rejected, rejects listed with their line), and the table holding each
    imported row once, under the keys ``keys``."""
    assert result.rows_in == rows_in == result.rows_out + result.rows_rejected
    assert len(result.rejects) == result.rows_rejected
    assert all(r["line"] >= 2 and r["reason"] for r in result.rejects)
    assert sorted(i["pk"]["S"] for i in scan(client, table)) == sorted(keys)
    assert result.rows_out == len(keys)


class BatchLog:
    """Records each BatchWriteItem request (the items per table) without changing it."""

    def __init__(self, client: DynamoDBClient) -> None:
        self.requests: list[list[dict[str, Any]]] = []
        client.meta.events.register("provide-client-params.dynamodb.BatchWriteItem", self.record)

    def record(self, params: dict[str, Any], **kwargs: Any) -> None:
        for requests in params["RequestItems"].values():
            self.requests.append([r["PutRequest"]["Item"] for r in requests])


class Throttle:
    """For the first ``rounds`` BatchWriteItem calls, only the first ``keep`` puts reach the
    table (moto); the rest come back as UnprocessedItems, as under throttling."""

    def __init__(self, client: DynamoDBClient, rounds: int, keep: int = 3) -> None:
        self.rounds, self.keep, self.calls = rounds, keep, 0
        self.held: dict[str, list[Any]] = {}
        events = client.meta.events
        events.register("provide-client-params.dynamodb.BatchWriteItem", self.hold)
        events.register("before-call.dynamodb.BatchWriteItem", self.skip_if_nothing_left)
        events.register("after-call.dynamodb.BatchWriteItem", self.give_back)

    def hold(self, params: dict[str, Any], **kwargs: Any) -> None:
        self.calls += 1
        self.held = {}
        if self.calls > self.rounds:
            return
        for table, requests in list(params["RequestItems"].items()):
            self.held[table] = requests[self.keep:]
            params["RequestItems"][table] = requests[: self.keep] or requests

    def skip_if_nothing_left(self, **kwargs: Any) -> Any:
        if self.held and self.keep == 0:
            return AWSResponse("https://dynamodb", 200, HTTPHeaders(), None), {}
        return None

    def give_back(self, parsed: dict[str, Any], **kwargs: Any) -> None:
        unprocessed = {table: requests for table, requests in self.held.items() if requests}
        if unprocessed:
            parsed["UnprocessedItems"] = unprocessed


def throttling_error(code: str, status: int) -> Any:
    def respond(**kwargs: Any) -> tuple[AWSResponse, dict[str, Any]]:
        body = {"Error": {"Code": code, "Message": "slow down"},
                "ResponseMetadata": {"HTTPStatusCode": status}}
        return AWSResponse("https://dynamodb", status, HTTPHeaders(), None), body

    return respond


def test_import_with_partition_key_and_types(tmp_path: Path, dynamodb: DynamoDBClient) -> None:
    job = make_job(tmp_path, (
        "pk,qty,paid,note,empty\n"
        "a,1.50,yes,\"x, y\",\n"
        "b,-2e3,0,日本,\n"
        "c,1e999,true,,\n"
        "d,3,maybe,,\n"
        ",4,true,,\n"
        "e,5\n"
        "f,007,False,,\n"
    ), source_line=10)
    result = DynamoDBProcessor("orders", TYPES, dynamodb)(
        job, Storage()
    )
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (7, 3, 4)
    assert result.rejects == [
        {"line": 12, "reason": "qty: not a valid N: '1e999'"},
        {"line": 13, "reason": "paid: not a valid BOOL: 'maybe'"},
        {"line": 14, "reason": "missing key attribute(s): pk"},
        {"line": 15, "reason": "expected 5 fields, got 2"},
    ]
    assert scan(dynamodb, "orders") == [
        {"pk": {"S": "a"}, "qty": {"N": "1.50"}, "paid": {"BOOL": True}, "note": {"S": "x, y"}},
        {"pk": {"S": "b"}, "qty": {"N": "-2E+3"}, "paid": {"BOOL": False}, "note": {"S": "日本"}},
        {"pk": {"S": "f"}, "qty": {"N": "7"}, "paid": {"BOOL": False}},
    ]
    assert Path(job.output_uri).read_text() == '{"imported": 3}\n'
    assert len(Path(job.rejects_uri).read_text().splitlines()) == 4


def test_import_with_partition_and_sort_key_in_batches_of_25(
    tmp_path: Path, dynamodb: DynamoDBClient
) -> None:
    log = BatchLog(dynamodb)
    job = make_job(tmp_path, EVENTS_HEADER + rows(60))
    result = processor(dynamodb, "events")(job, Storage())
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (60, 60, 0)
    assert [len(items) for items in log.requests] == [25, 25, 10]
    assert len(scan(dynamodb, "events")) == 60
    item = dynamodb.get_item(TableName="events", Key={"pk": {"S": "p42"}, "sk": {"N": "42"}})
    assert item["Item"] == {"pk": {"S": "p42"}, "sk": {"N": "42"}, "qty": {"N": "2"},
                            "paid": {"BOOL": True}}


def test_duplicate_keys_in_a_batch_keep_the_last_row(
    tmp_path: Path, dynamodb: DynamoDBClient
) -> None:
    log = BatchLog(dynamodb)
    chunk = EVENTS_HEADER + "a,1,1,true\n" + "a,1,1,true\n" + "b,2,1,true\n" + "a,1.0,2,false\n"
    chunk += rows(30)
    result = processor(dynamodb, "events")(make_job(tmp_path, chunk), Storage())
    assert (result.rows_in, result.rows_out) == (34, 34)
    for items in log.requests:
        keys = [(i["pk"]["S"], float(i["sk"]["N"])) for i in items]
        assert len(keys) == len(set(keys)) and len(keys) <= 25
    assert sum(map(len, log.requests)) == 32
    got = dynamodb.get_item(TableName="events", Key={"pk": {"S": "a"}, "sk": {"N": "1"}})
    assert got["Item"]["qty"] == {"N": "2"} and got["Item"]["paid"] == {"BOOL": False}
    assert len(scan(dynamodb, "events")) == 32


def test_rerun_of_a_chunk_writes_the_same_items(tmp_path: Path, dynamodb: DynamoDBClient) -> None:
    job = make_job(tmp_path, EVENTS_HEADER + rows(40))
    importer = processor(dynamodb, "events")
    first = importer(job, Storage())
    before = scan(dynamodb, "events")
    second = importer(job, Storage())
    assert first == second
    assert scan(dynamodb, "events") == before
    assert_every_row_once(second, dynamodb, "events", 40, [f"p{i}" for i in range(40)])


def test_key_schema_is_described_once(tmp_path: Path, dynamodb: DynamoDBClient) -> None:
    calls: list[str] = []
    dynamodb.meta.events.register(
        "provide-client-params.dynamodb.DescribeTable", lambda **kw: calls.append("describe")
    )
    importer = processor(dynamodb, "events")
    for first in (0, 10, 20):
        importer(make_job(tmp_path, EVENTS_HEADER + rows(10, first=first)), Storage())
    again = DynamoDBProcessor("events", TYPES, dynamodb)  # another processor, one client
    again(make_job(tmp_path, EVENTS_HEADER + rows(10, first=30)), Storage())
    assert calls == ["describe"]
    assert importer.key_types() == {"pk": "S", "sk": "N"}
    assert len(scan(dynamodb, "events")) == 40


def test_unprocessed_items_are_retried_with_backoff(
    tmp_path: Path, dynamodb: DynamoDBClient
) -> None:
    throttle = Throttle(dynamodb, rounds=5, keep=3)
    sleeps: list[float] = []
    result = processor(dynamodb, "events", sleeps)(
        make_job(tmp_path, EVENTS_HEADER + rows(50)), Storage()
    )
    assert_every_row_once(result, dynamodb, "events", 50, [f"p{i}" for i in range(50)])
    assert throttle.calls > 2
    assert len(sleeps) == 5
    for attempt, seconds in enumerate(sleeps):
        assert 0 <= seconds <= min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)


def test_persistent_unprocessed_items_raise_transient_error(
    tmp_path: Path, dynamodb: DynamoDBClient
) -> None:
    throttle = Throttle(dynamodb, rounds=1000, keep=0)
    sleeps: list[float] = []
    job = make_job(tmp_path, EVENTS_HEADER + rows(10))
    with pytest.raises(TransientError, match=r"events: 10 items still unprocessed"):
        processor(dynamodb, "events", sleeps)(job, Storage())
    assert throttle.calls == 1 + RETRY_ROUNDS
    assert len(sleeps) == RETRY_ROUNDS
    assert scan(dynamodb, "events") == []
    assert not Path(job.output_uri).exists()


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("InternalServerError", 500),
        ("SomethingNew", 503),
    ],
)
def test_throttling_errors_are_transient(
    tmp_path: Path, dynamodb: DynamoDBClient, code: str, status: int
) -> None:
    dynamodb.meta.events.register(
        "before-call.dynamodb.BatchWriteItem", throttling_error(code, status)
    )
    job = make_job(tmp_path, EVENTS_HEADER + rows(3))
    with pytest.raises(TransientError, match=f"events: {code}"):
        processor(dynamodb, "events")(job, Storage())
    assert not Path(job.output_uri).exists()  # no success claimed: the chunk is retried
    assert scan(dynamodb, "events") == []


def test_transient_failure_then_rerun_imports_everything(
    tmp_path: Path, dynamodb: DynamoDBClient
) -> None:
    failing = throttling_error("ProvisionedThroughputExceededException", 400)
    calls = {"n": 0}

    def fail_second_batch(**kwargs: Any) -> Any:
        calls["n"] += 1
        return failing() if calls["n"] == 2 else None

    dynamodb.meta.events.register("before-call.dynamodb.BatchWriteItem", fail_second_batch)
    job = make_job(tmp_path, EVENTS_HEADER + rows(60))
    importer = processor(dynamodb, "events")
    with pytest.raises(TransientError):
        importer(job, Storage())
    assert len(scan(dynamodb, "events")) == 25
    result: ProcessResult = importer(job, Storage())
    assert_every_row_once(result, dynamodb, "events", 60, [f"p{i}" for i in range(60)])


def test_missing_table_and_conflicting_key_type(tmp_path: Path, dynamodb: DynamoDBClient) -> None:
    job = make_job(tmp_path, EVENTS_HEADER + rows(1))
    with pytest.raises(InvalidOption, match="table not found: nope"):
        DynamoDBProcessor("nope", {}, dynamodb)(job, Storage())
    with pytest.raises(InvalidOption, match="key sk is of type N; S3SPLIT_DYNAMODB_TYPES says S"):
        DynamoDBProcessor("events", {"sk": "S"}, dynamodb)(job, Storage())


def test_numbers_dynamodb_cannot_store_reject_the_row(
    tmp_path: Path, dynamodb: DynamoDBClient
) -> None:
    chunk = EVENTS_HEADER + "a,1,1" + "0" * 40 + "1,true\n" + "b,2,1e-131,true\nc,3,0.0,true\n"
    result = processor(dynamodb, "events")(make_job(tmp_path, chunk), Storage())
    assert [r["line"] for r in result.rejects] == [2, 3]
    assert result.rows_out == 1


def test_a_batch_dynamodb_refuses_is_chunk_invalid(
    tmp_path: Path, dynamodb: DynamoDBClient
) -> None:
    dynamodb.meta.events.register(
        "before-call.dynamodb.BatchWriteItem", throttling_error("ValidationException", 400)
    )
    with pytest.raises(ChunkInvalid, match="refused a batch"):
        processor(dynamodb, "events")(make_job(tmp_path, EVENTS_HEADER + rows(2)), Storage())
