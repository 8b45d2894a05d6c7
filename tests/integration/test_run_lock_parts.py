"""The run lock's parts: conditional writes (local files, S3 on moto), and whether a
holder's execution still runs (Step Functions on moto)."""

import json
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from s3split.errors import ConditionalWritesIgnored
from s3split.holders import Holder, holder_alive
from s3split.pipeline.run_lock import acquire as run_lock
from s3split.pipeline.run_lock import release
from s3split.split.destination_lock import acquire as split_lock
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


def ignoring_conditions(s3: object) -> object:
    """The client of a store that ignores If-None-Match (s3rver does): the header never
    reaches moto, which then accepts every PUT, as such a store would."""
    def drop(params: dict[str, object], **_: object) -> None:
        params.pop("IfNoneMatch", None)

    s3.meta.events.register("before-parameter-build.s3.PutObject", drop)  # type: ignore[attr-defined]
    return s3


def test_a_store_that_ignores_conditional_writes_is_refused_before_any_lock(
        aws: None) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    storage = Storage(ignoring_conditions(s3))  # type: ignore[arg-type]
    for take in (lambda location: run_lock(location, Holder.new("exec-1"), storage,
                                           lambda _: True),
                 lambda location: split_lock(location, storage)):
        location = f"s3://data/runs/{os.urandom(4).hex()}"
        with pytest.raises(ConditionalWritesIgnored) as refused:
            take(location)
        message = str(refused.value)
        assert "\n" not in message and location in message and "If-None-Match" in message
    assert s3.list_objects_v2(Bucket="data").get("KeyCount") == 0  # no lock, no probe left


def test_a_store_that_honours_them_is_probed_once_per_location(aws: None) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    puts: list[str] = []
    s3.meta.events.register("before-parameter-build.s3.PutObject",
                            lambda params, **_: puts.append(params["Key"]))
    storage, location = Storage(s3), f"s3://data/runs/{os.urandom(4).hex()}"
    run_lock(location, Holder.new("exec-1"), storage, lambda _: True)
    release(location, "exec-1", storage)
    run_lock(location, Holder.new("exec-2"), storage, lambda _: True)
    probes = [key for key in puts if "conditional-write-probe" in key]
    assert len(probes) == 2 and probes[0] == probes[1]  # one key, created twice, once
    assert [k.rsplit("/", 1)[1] for k in puts if k not in probes] == ["lock.json"] * 2
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="data").get("Contents", [])]
    assert listed == [f"{location.removeprefix('s3://data/')}/lock.json"]
