"""Batch imports on the engine: the pending list goes through S3 (ItemReader), the started runs'
results too (ResultWriter), so nothing in the execution's state grows with the number of files.

The runs a batch starts are stubbed by a one-state machine here: the prefix listing, the pending
list and the starts are what is under test (tests/integration/test_pipeline_s3.py runs real ones).
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest

from s3split.cli import aws as remote
from s3split.engine.local import (
    LocalEngine,
    local_engine,
)
from s3split.engine.moto_internals import check as check_compatible
from s3split.errors import UnsupportedDependency
from s3split.pipeline.batch import child_name
from s3split.storage import Storage
from tests.support.batches import ROLE, WORK, started_runs, stubbed_pipeline
from tests.support.iam import record_state_machine_calls
from tests.support.pipeline import BUCKET, CREDENTIALS, moto_s3_server

MANY = "incoming/many/"
MANY_KEYS = [f"{MANY}file-{i:05d}.csv" for i in range(5000)]


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The module's moto server, started with the 5,000 files of the big batch (and a file
    that is not a CSV) already stored: 5,001 PUTs cost the server ~20 s of CPU."""
    objects = tmp_path_factory.mktemp("s3") / "objects.json"
    objects.write_text(json.dumps({"bucket": BUCKET, "body": "id\n1\n",
                                   "keys": [*MANY_KEYS, f"{MANY}notes.txt"]}))
    with moto_s3_server(objects) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def engine(s3_endpoint: str, server_s3: Any) -> Iterator[LocalEngine]:
    env = CREDENTIALS | {"AWS_ENDPOINT_URL_S3": s3_endpoint, "S3SPLIT_ALLOWED_BUCKETS": BUCKET}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)  # the ItemReader's and ResultWriter's
        with local_engine(WORK, workers=2, env=env) as started:
            yield started
            record_state_machine_calls(started.sfn)


def run_batch(engine: LocalEngine, pipeline: str, prefix: str) -> tuple[str, dict[str, Any]]:
    batch = engine.sfn.start_execution(
        stateMachineArn=pipeline, input=json.dumps({"prefix": f"s3://{BUCKET}/{prefix}"}),
    )["executionArn"]
    outcome = engine.wait(batch, timeout_s=900, poll_s=1.0)
    assert outcome.succeeded, outcome
    return batch, outcome.output


def largest_state(engine: LocalEngine, execution: str) -> int:
    """The longest input or output any state of the execution saw, in characters."""
    sizes = [0]
    for event in engine.history(execution):
        for key, details in event.items():
            if key.endswith("EventDetails") and isinstance(details, dict):
                sizes += [len(details.get(k) or "") for k in ("input", "output")]
    return max(sizes)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_batch_of_5000_files_starts_each_once_with_a_small_state(
        engine: LocalEngine, server_s3: Any) -> None:
    listed = server_s3.list_objects_v2(Bucket=BUCKET, Prefix=MANY)
    assert (listed["KeyCount"], listed["IsTruncated"]) == (1000, True)  # (a page of 5,001)
    assert server_s3.get_object(Bucket=BUCKET, Key=MANY_KEYS[-1])["Body"].read() == b"id\n1\n"
    pipeline, stub = stubbed_pipeline(engine, "batch-many")
    batch, output = run_batch(engine, pipeline, MANY)
    assert output["count"] == 5000
    assert largest_state(engine, batch) < 2_000  # 1,150 files already made 253 KB
    runs = started_runs(engine, stub)
    sources = [json.loads(engine.sfn.describe_execution(executionArn=r["executionArn"])["input"])
               for r in runs[:50]]
    assert all(set(s) == {"source"} for s in sources)
    expected = {child_name(batch, f"s3://{BUCKET}/{key}") for key in MANY_KEYS}
    assert sorted(r["name"] for r in runs) == sorted(expected)  # each pending file, once


def test_the_result_writer_writes_the_started_runs_as_aws_does_and_status_reads_them(
        engine: LocalEngine, server_s3: Any) -> None:
    """AWS's ResultWriter: SUCCEEDED_0.json (each child with its Output) next to a manifest
    that lists it; `s3split status` of the batch names the runs from them."""
    for name in ("a", "b"):
        server_s3.put_object(Bucket=BUCKET, Key=f"incoming/written/{name}.csv", Body=b"id\n1\n")
    pipeline, stub = stubbed_pipeline(engine, "batch-written")
    batch, output = run_batch(engine, pipeline, "incoming/written/")
    details = output["started"]["ResultWriterDetails"]
    manifest = json.loads(server_s3.get_object(Bucket=details["Bucket"], Key=details["Key"])["Body"]
                          .read())
    assert manifest["MapRunArn"] == output["started"]["MapRunArn"]
    assert manifest["DestinationBucket"] == BUCKET
    (succeeded,) = manifest["ResultFiles"]["SUCCEEDED"]
    assert succeeded["Key"].endswith("/SUCCEEDED_0.json")
    assert manifest["ResultFiles"]["FAILED"] == manifest["ResultFiles"]["PENDING"] == []
    body = server_s3.get_object(Bucket=BUCKET, Key=succeeded["Key"])["Body"].read()
    assert succeeded["Size"] == len(body)
    children = json.loads(body)
    runs = sorted(r["executionArn"] for r in started_runs(engine, stub))
    assert sorted(json.loads(c["Output"])["execution"] for c in children) == runs
    assert all(c["Status"] == "SUCCEEDED" and json.loads(c["Input"])["name"] for c in children)
    summary = remote.status(batch, engine.sfn, Storage(server_s3))
    assert sorted(summary["started_executions"]) == runs and summary["failed_starts"] == []


def test_a_batch_of_no_files_starts_nothing(engine: LocalEngine, server_s3: Any) -> None:
    pipeline, stub = stubbed_pipeline(engine, "batch-none")
    _batch, output = run_batch(engine, pipeline, "incoming/empty/")
    assert output["count"] == 0
    assert started_runs(engine, stub) == []
    listed = server_s3.get_object(Bucket=output["pending"]["Bucket"], Key=output["pending"]["Key"])
    assert json.loads(listed["Body"].read()) == []


def test_a_repeated_start_under_one_name_is_one_run_as_on_aws(engine: LocalEngine) -> None:
    """What a retried StartOne or ContinueAsNew relies on: the same name and input while the
    first runs returns it; once it has ended, ExecutionAlreadyExists (which neither retries)."""
    machine = engine.sfn.create_state_machine(
        name="named-starts", roleArn=ROLE,
        definition=json.dumps({"StartAt": "Hold", "States": {
            "Hold": {"Type": "Wait", "Seconds": 2, "End": True}}}))["stateMachineArn"]
    first = engine.sfn.start_execution(stateMachineArn=machine, name="run-g1", input="{}")
    again = engine.sfn.start_execution(stateMachineArn=machine, name="run-g1", input="{}")
    assert again["executionArn"] == first["executionArn"]
    assert len(started_runs(engine, machine)) == 1
    engine.wait(first["executionArn"], timeout_s=30)
    with pytest.raises(engine.sfn.exceptions.ExecutionAlreadyExists):
        engine.sfn.start_execution(stateMachineArn=machine, name="run-g1", input="{}")


def test_the_compatibility_check_guards_the_distributed_map_pieces(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import (
        resource_eval_s3,
    )

    monkeypatch.delattr(resource_eval_s3.ResourceEvalS3, "_handle_get_object")
    with pytest.raises(UnsupportedDependency, match=r"ResourceEvalS3\._handle_get_object: missing"):
        check_compatible()
