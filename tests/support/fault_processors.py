"""Processors for the fault tests, run by the engine's worker processes (named in
``S3SPLIT_PROCESSORS`` as ``tests.support.fault_processors:<function>``).

``throttled_dynamodb``: the dynamodb processor writing to table ``events`` on a moto server
(``AWS_ENDPOINT_URL_DYNAMODB``), with DynamoDB's faults injected at the botocore layer and
steered by ``control.json`` beside the run's location (in its parent):

    {"unprocessed": {"<index>": rounds},  the first ``rounds`` BatchWriteItem calls of every
                                          attempt write 3 items; the rest come back unprocessed
     "throttle": {"<index>": attempts},   the first ``attempts`` attempts: ThrottlingException
     "refuse": [index, ...]}              every BatchWriteItem: ValidationException

Every call writes ``attempts/<index>-<attempt>.json`` first (it counts the attempts), and
at its end the number of BatchWriteItem calls it made.
"""

from typing import Any

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders

from s3split.processors import DYNAMODB_CONFIG, ChunkJob, DynamoDBProcessor, ProcessResult
from s3split.storage import Storage, join

TABLE = "events"
TYPES = {"sk": "N", "qty": "N", "paid": "BOOL"}


def throttled_dynamodb(job: ChunkJob, storage: Storage) -> ProcessResult:
    location = job.output_uri.rsplit("/results/", 1)[0]
    control_uri = join(location.rstrip("/").rsplit("/", 1)[0], "control.json")
    control = dict(storage.read_json(control_uri)) if storage.exists(control_uri) else {}
    attempts = join(location, "attempts")
    attempt = sum(name.startswith(f"{job.index}-") for name in storage.list(attempts))
    storage.write_json(join(attempts, f"{job.index}-{attempt}.json"), {"index": job.index})
    client = boto3.client("dynamodb", config=DYNAMODB_CONFIG)
    events, key = client.meta.events, str(job.index)
    partial = PartialWrites(client, control.get("unprocessed", {}).get(key, 0))
    if job.index in control.get("refuse", []):
        events.register("before-call.dynamodb.BatchWriteItem", _error("ValidationException"))
    elif attempt < control.get("throttle", {}).get(key, 0):
        events.register("before-call.dynamodb.BatchWriteItem", _error("ThrottlingException"))
    try:
        return DynamoDBProcessor(TABLE, TYPES, client, sleep=lambda seconds: None)(job, storage)
    finally:
        storage.write_json(join(attempts, f"{job.index}-{attempt}.json"),
                           {"index": job.index, "batch_calls": partial.calls})


def _error(code: str) -> Any:
    def respond(**kwargs: Any) -> tuple[AWSResponse, dict[str, Any]]:
        body = {"Error": {"Code": code, "Message": "injected"},
                "ResponseMetadata": {"HTTPStatusCode": 400}}
        return AWSResponse("https://dynamodb", 400, HTTPHeaders(), None), body

    return respond


class PartialWrites:
    """For the first ``rounds`` BatchWriteItem calls only the first 3 puts reach the table; the
    rest come back as UnprocessedItems, as under throttling."""

    def __init__(self, client: Any, rounds: int) -> None:
        self.rounds, self.calls = rounds, 0
        self.held: dict[str, list[Any]] = {}
        client.meta.events.register("provide-client-params.dynamodb.BatchWriteItem", self.hold)
        client.meta.events.register("after-call.dynamodb.BatchWriteItem", self.give_back)

    def hold(self, params: dict[str, Any], **kwargs: Any) -> None:
        self.calls += 1
        self.held = {}
        if self.calls > self.rounds:
            return
        for table, requests in params["RequestItems"].items():
            self.held[table], params["RequestItems"][table] = requests[3:], requests[:3]

    def give_back(self, parsed: dict[str, Any], **kwargs: Any) -> None:
        unprocessed = {table: requests for table, requests in self.held.items() if requests}
        if unprocessed:
            parsed["UnprocessedItems"] = unprocessed
