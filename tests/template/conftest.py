"""Fixtures of the template tests: the resolved template, the roles' grants, the S3 event rule
on moto's EventBridge, and the Lambda layer as `sam build` makes it (each module-scoped one is
built once per test file that uses it)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.support.aws import fake_aws_env
from tests.support.template import LAYER_CACHE, REGION, REPO, TEMPLATE_DOC, Stack, grants


@pytest.fixture
def stack() -> Stack:
    return Stack(TEMPLATE_DOC)


@pytest.fixture(params=["no table", "with table"])
def granted(request: pytest.FixtureRequest) -> tuple[Stack, dict[str, list[tuple[str, str, str]]]]:
    parameters = {"ImportTableName": "orders"} if request.param == "with table" else {}
    stack = Stack(TEMPLATE_DOC, **parameters)
    return stack, grants(stack)


@pytest.fixture(scope="module")
def eventbridge() -> Iterator[Any]:
    """A rule with the template's pattern on moto's EventBridge, delivering to a queue; the
    fixture's value tells whether an event reached the queue."""
    rule = Stack(TEMPLATE_DOC).props("PipelineStateMachine")["Events"]["ObjectCreated"]
    assert rule["Type"] == "EventBridgeRule"
    with pytest.MonkeyPatch.context() as patch:
        fake_aws_env(patch, REGION)
        with mock_aws():
            events = boto3.client("events", region_name=REGION)
            sqs = boto3.client("sqs", region_name=REGION)
            queue = sqs.create_queue(QueueName="started")["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
                "Attributes"]["QueueArn"]
            events.put_rule(Name="object-created",
                            EventPattern=json.dumps(rule["Properties"]["Pattern"]))
            events.put_targets(Rule="object-created", Targets=[{"Id": "q", "Arn": queue_arn}])

            def delivered(event: dict[str, Any]) -> bool:
                sent = events.put_events(Entries=[{
                    "Source": event["source"], "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]), "Resources": event["resources"]}])
                assert sent["FailedEntryCount"] == 0
                got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
                messages = got.get("Messages", [])
                for message in messages:
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
                assert len(messages) <= 1
                if messages:
                    assert json.loads(messages[0]["Body"])["detail"] == event["detail"]
                return bool(messages)

            yield delivered


# -- the layer ---------------------------------------------------------------------------------


def runtime_python(version: str) -> str:
    """An interpreter of the runtime's version if the machine has one, else this one."""
    candidates = [shutil.which(f"python{version}"),
                  *map(str, sorted(Path.home().glob(f".pyenv/versions/{version}*/bin/python"
                                                    f"{version}"))),
                  f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in filter(None, candidates):
        try:
            found = subprocess.run([candidate, "-c", "import sys, pip; print(sys.version[:5])"],
                                   capture_output=True, text=True, timeout=30, check=False)
        except OSError:
            continue
        if found.returncode == 0 and found.stdout.startswith(f"{version}."):
            return candidate
    return sys.executable


def _layer_key(python: str, locked: str) -> str:
    digest = hashlib.sha256()
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"],
                             capture_output=True, text=True, check=True).stdout
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile[makefile.index("LAYER_PIP ?="):]
    for part in (version, locked, recipe, (REPO / "pyproject.toml").read_text()):
        digest.update(part.encode())
    for path in sorted((REPO / "src" / "s3split").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(REPO)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def layer() -> tuple[str, Path]:
    """The layer as `sam build` makes it (the Makefile's build-SharedLayer), for this machine's
    platform and the runtime's Python when there is one; dependencies as requirements/layer.txt
    locks them. Cached under .aws-sam/handler-check/ by what goes into it."""
    python = runtime_python(TEMPLATE_DOC["Globals"]["Function"]["Runtime"].removeprefix("python"))
    locked = (REPO / "requirements" / "layer.txt").read_text(encoding="utf-8")
    built = LAYER_CACHE / _layer_key(python, locked)
    if (built / "python").is_dir():
        return python, built / "python"
    LAYER_CACHE.mkdir(parents=True, exist_ok=True)
    for old in LAYER_CACHE.iterdir():  # keep one
        shutil.rmtree(old, ignore_errors=True)
    building = LAYER_CACHE / f"building-{os.getpid()}"
    building.mkdir()
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", "build-SharedLayer", f"ARTIFACTS_DIR={building}",
         f"LAYER_PIP={python} -m pip", f"LAYER_PYTHON={python}",
         "LAYER_PIP_FLAGS=--disable-pip-version-check"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"building the layer failed:\n{done.stdout}\n{done.stderr}"
    building.rename(built)
    return python, built / "python"
