"""The run lock's parts: conditional writes (local files, S3 on moto), and whether a
holder's execution still runs (Step Functions on moto)."""

import json
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from s3split.pipeline.lock import Holder, holder_alive
from s3split.storage import Storage


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_conditional_writes(kind: str, aws: None, tmp_path: Path) -> None:
    if kind == "s3":
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="data")
        storage, uri = Storage(s3), "s3://data/runs/x/lock.json"
    else:
        storage, uri = Storage(), str(tmp_path / "x" / "lock.json")
    assert storage.read_json_version(uri) is None
    assert storage.put_json_if(uri, {"n": 1}, None)
    assert not storage.put_json_if(uri, {"n": 2}, None)
    document, version = storage.read_json_version(uri) or ({}, "")
    assert document == {"n": 1}
    assert storage.put_json_if(uri, {"n": 3}, version)
    assert not storage.put_json_if(uri, {"n": 4}, version)
    assert storage.read_json(uri) == {"n": 3}
    if kind == "local":
        assert os.listdir(tmp_path / "x") == ["lock.json"]  # no temporary or guard files


def test_an_aws_holder_is_alive_while_its_execution_runs(aws: None) -> None:
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    machine = sfn.create_state_machine(
        name="pipeline", roleArn="arn:aws:iam::123456789012:role/sfn",
        definition=json.dumps({"StartAt": "W", "States": {"W": {"Type": "Pass", "End": True}}}))
    execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"])["executionArn"]
    holder = Holder.new(execution)

    assert holder_alive(holder, sfn=lambda: sfn)
    sfn.stop_execution(executionArn=execution)
    assert not holder_alive(holder, sfn=lambda: sfn)
    gone = execution.rsplit(":", 1)[0] + ":never-started"
    assert not holder_alive(Holder.new(gone), sfn=lambda: sfn)
