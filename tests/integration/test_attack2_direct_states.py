"""Attacks on the engine's direct StartExecution client (DirectStates) and on the parse cache
that lives for the process: task starts answer as the boto3 round trip does (plain, .sync,
.sync:2; 16 parameter sets, the error names a Catch sees included), and a parser a test
patched while an engine installed serves that engine only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from s3split.engine.lambda_runtime import ProcessDispatcher
from s3split.engine.moto_seam import install
from s3split.engine.routing import DirectStates, moto_config
from tests.support.seam import HANDLERS, REGION, SYS_PATH, create, wait_for_execution

pytestmark = pytest.mark.timeout(120)
START = "arn:aws:states:::states:startExecution"


@pytest.fixture(scope="module")
def dispatcher() -> Iterator[ProcessDispatcher]:
    with ProcessDispatcher(HANDLERS, max_workers=2, extra_sys_path=SYS_PATH) as d:
        yield d


@pytest.fixture
def sfn(dispatcher: ProcessDispatcher) -> Iterator[Any]:
    with mock_aws(config=moto_config()), install(dispatcher, retry_interval_scale=0):
        yield boto3.client("stepfunctions", region_name=REGION)


def _run(sfn: Any, machine: str, inp: Any) -> dict[str, Any]:
    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps(inp))["executionArn"]
    out = wait_for_execution(sfn, arn)
    return {k: out.get(k) for k in ("status", "output", "error", "cause")}


def _scrub(value: Any) -> Any:
    import re
    text = json.dumps(value, sort_keys=True)
    text = re.sub(r"Request ID: [0-9a-zA-Z-]+", "Request ID: R", text)
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "U", text)
    text = re.sub(r"child-[db]", "child", text)
    text = re.sub(r"\b1[0-9]{12}\b", "0", text)
    return json.loads(text)


@pytest.mark.parametrize("resource", [START, START + ".sync", START + ".sync:2"])
def test_task_starts_answer_as_the_boto3_round_trip(sfn: Any, resource: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = []
    for mode in ("d", "b"):
        if mode == "b":
            monkeypatch.setattr(DirectStates, "start_execution",
                                lambda self, **kw: self.client.start_execution(**kw))
        child = create(sfn, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                       name=f"child-{mode}")
        outputs.append(_scrub(_run(sfn, create(sfn, _parent(child, resource),
                                                   name=f"parent-{mode}"), {})))
    d, b = outputs
    if d != b:
        do, bo = json.loads(d["output"] or "{}"), json.loads(b["output"] or "{}")
        diff = {k: (do.get(k), bo.get(k)) for k in set(do) | set(bo) if do.get(k) != bo.get(k)}
        pytest.fail(json.dumps(diff, indent=1)[:4000] + json.dumps([d, b])[:1000])


def _parent(child: str, resource: str) -> dict[str, Any]:
    params_list = [
        {"StateMachineArn": child, "Input": {"a": 1}},
        {"StateMachineArn": child, "Input": "{\"a\": 1}", "Name": "n1"},
        {"StateMachineArn": child, "Input": "{", "Name": "n2"},
        {"StateMachineArn": child, "Input": [1, 2]},
        {"StateMachineArn": child, "Input": 5},
        {"StateMachineArn": child, "Name": "bad name"},
        {"StateMachineArn": child, "Name": ""},
        {"StateMachineArn": child, "Name": 123},
        {"StateMachineArn": child + ":1"},
        {"StateMachineArn": child + ":alias"},
        {"StateMachineArn": child.replace(REGION, "eu-west-1")},
        {"StateMachineArn": child.replace("123456789012", "111111111111")},
        {"StateMachineArn": "not-an-arn"},
        {"StateMachineArn": ""},
        {"StateMachineArn": child.replace(":stateMachine:", ":activity:")},
        {"StateMachineArn": 7},
    ]
    states = {}
    for n, params in enumerate(params_list):
        states[f"S{n}"] = {"Type": "Task", "Resource": resource, "Parameters": params,
                           "ResultPath": f"$.r{n}",
                           "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": f"$.e{n}",
                                      "Next": f"S{n + 1}"}],
                           "Next": f"S{n + 1}"}
    states[f"S{len(params_list)}"] = {"Type": "Pass", "End": True}
    return {"StartAt": "S0", "States": states}


_LEAK_SCRIPT = r"""
import json, boto3
from unittest import mock
from moto import mock_aws
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser as P
from s3split.engine.moto_seam import install
from s3split.engine.routing import moto_config

calls = []
real = P.parse
def spy(definition):
    calls.append(1)
    return real(definition)

def start(name):
    with mock_aws(config=moto_config()), install(lambda n, e: e):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        sfn.create_state_machine(name="m", roleArn="arn:aws:iam::123456789012:role/r",
            definition=json.dumps({"Comment": name, "StartAt": "P",
                                   "States": {"P": {"Type": "Pass", "End": True}}}))

with mock.patch.object(P, "parse", staticmethod(spy)):  # one test's patch, first engine
    start("first")
start("second")  # a later test's engine, the patch undone
print(json.dumps({"calls": len(calls)}))
"""


@pytest.mark.speedups
def test_a_parser_patched_while_the_first_engine_installs_does_not_outlive_its_patch(
        tmp_path: Any) -> None:
    """A parser patched while the first engine installs (to count parses, to fail one) is
    not called by the engines the process starts after the patch is undone (the cache once
    kept the parse found at the first install for the whole process)."""
    import subprocess
    import sys

    from tests.support.seam import REPO

    env = {"PYTHONPATH": f"{REPO / 'src'}:{REPO}", "PATH": "/usr/bin:/bin",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    done = subprocess.run([sys.executable, "-c", _LEAK_SCRIPT], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {"calls": 1}
