"""The engine's speed-ups of moto (``s3split.engine.speedups``) keep moto's behaviour: a
follower is woken when its execution ends (stopped, timed out, failed on the history limit,
or ended before it looked) and never spins on an ARN used again; one parsed program serves
every execution of a definition, each with its own state, retry counts and failures, and a
parser patched while an engine installs serves that engine only; start names are looked up
in an index that answers as AWS does, under concurrent starts too."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from s3split.engine.lambda_runtime import ProcessDispatcher
from s3split.engine.local import LocalEngine
from s3split.engine.quotas import AWS_QUOTAS
from s3split.engine.speedups import ends_of, wait_for_end
from tests.support.seam import (
    LAMBDA_INVOKE,
    REGION,
    create,
    moto_sfn,
    seam_fixtures,
    wait_for_execution,
)

pytestmark = pytest.mark.timeout(120)

dispatcher, sfn = seam_fixtures(max_workers=3, timeouts={"sleepy": 5.0}, retry_interval_scale=0)


def invoke(function: str, **extra: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": LAMBDA_INVOKE,
            "Parameters": {"FunctionName": function, "Payload.$": "$"},
            "ResultSelector": {"result.$": "$.Payload"}, "OutputPath": "$.result", **extra}


def output(described: dict[str, Any]) -> Any:
    assert described["status"] == "SUCCEEDED", (described.get("error"), described.get("cause"))
    return json.loads(described["output"])


# -- a follower is woken when its execution ends (wait_for_end, LocalEngine.wait) -----------------

WAIT_2S = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 2, "End": True}}}
QUICK = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}


@pytest.mark.speedups
def test_wait_does_not_spin_while_an_execution_reuses_an_ended_arn(
        sfn: Any, dispatcher: ProcessDispatcher) -> None:
    """An execution's ARN is only ``<state machine name>:<execution name>``: delete a state
    machine, create it again under the same name and start the same execution name, and the
    new execution has the ended one's ARN. Ends are counted per ARN, so a follower of the new
    one still waits for its end: once per ``poll_s``, not DescribeExecution and on_poll back
    to back for the whole run (thousands of calls for a 2 s Wait)."""
    arn = create(sfn, QUICK, name="reused")
    first = sfn.start_execution(stateMachineArn=arn, name="same")["executionArn"]
    assert wait_for_execution(sfn, first)["status"] == "SUCCEEDED"
    sfn.delete_state_machine(stateMachineArn=arn)
    arn = create(sfn, WAIT_2S, name="reused")
    second = sfn.start_execution(stateMachineArn=arn, name="same")["executionArn"]
    assert second == first  # (as on AWS: the ARN names the state machine and the execution)
    polls: list[float] = []
    outcome = LocalEngine(sfn, arn, dispatcher).wait(
        second, timeout_s=30, on_poll=lambda: polls.append(time.monotonic()), poll_s=1.0)
    assert outcome.status == "SUCCEEDED"
    assert len(polls) <= 5, f"{len(polls)} polls in a 2 s execution with poll_s=1.0"


@pytest.mark.speedups
def test_wait_wakes_promptly_when_an_execution_is_stopped(
        sfn: Any, dispatcher: ProcessDispatcher) -> None:
    arn = create(sfn, {"StartAt": "Hold", "States": {
        "Hold": {"Type": "Wait", "Seconds": 60, "End": True}}}, name="stopped")
    running = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    time.sleep(0.3)
    threading.Timer(0.5, lambda: sfn.stop_execution(executionArn=running)).start()
    began = time.monotonic()
    outcome = LocalEngine(sfn, arn, dispatcher).wait(running, timeout_s=30, poll_s=10.0)
    assert outcome.status == "ABORTED"
    assert time.monotonic() - began < 3.0


@pytest.mark.speedups
def test_wait_wakes_promptly_on_timeout_seconds_and_on_the_history_limit(
        dispatcher: ProcessDispatcher) -> None:
    quotas = dataclasses.replace(AWS_QUOTAS, history_events=50)
    with moto_sfn(dispatcher, quotas=quotas) as sfn:
        timed = create(sfn, {"TimeoutSeconds": 1, "StartAt": "Hold", "States": {
            "Hold": {"Type": "Wait", "Seconds": 60, "End": True}}}, name="timed")
        looping = create(sfn, {"StartAt": "Loop", "States": {
            "Loop": {"Type": "Pass", "Next": "Loop"}}}, name="looping")
        engine = LocalEngine(sfn, timed, dispatcher)
        for machine, status in ((timed, "TIMED_OUT"), (looping, "FAILED")):
            began = time.monotonic()
            arn = sfn.start_execution(stateMachineArn=machine)["executionArn"]
            outcome = engine.wait(arn, timeout_s=30, poll_s=20.0)
            assert outcome.status == status
            assert time.monotonic() - began < 5.0, status


@pytest.mark.speedups
def test_an_execution_that_ended_before_wait_is_seen_at_once(sfn: Any) -> None:
    arn = create(sfn, QUICK, name="quick")
    done = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    wait_for_execution(sfn, done)
    began = time.monotonic()
    assert ends_of(done) == 1
    assert wait_for_end(done, 0, 5.0)  # (what a follower that looked before the end gives)
    assert time.monotonic() - began < 0.5


# -- the definition cache: one parsed program for every execution of one text -------------------

RICH = {
    "StartAt": "Init",
    "States": {
        "Init": {"Type": "Pass",
                 "Parameters": {"tag.$": "$.tag", "items.$": "$.items", "bad.$": "$.bad",
                                "label.$": "States.Format('run-{}', $.tag)"},
                 "Next": "Both"},
        "Both": {"Type": "Parallel", "Next": "Out", "Branches": [
            {"StartAt": "Each", "States": {"Each": {
                "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2,
                "ItemSelector": {"v.$": "$$.Map.Item.Value", "tag.$": "$.tag"},
                "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Echo",
                                  "States": {"Echo": invoke("echo", **{
                                      "Retry": [{"ErrorEquals": ["States.ALL"],
                                                 "MaxAttempts": 2}],
                                      "ResultSelector": {"v.$": "$.Payload.echo.v",
                                                         "tag.$": "$.Payload.echo.tag"},
                                      "OutputPath": "$", "End": True})}},
                "End": True}}},
            {"StartAt": "MaybeBad", "States": {
                "MaybeBad": {"Type": "Choice", "Default": "Fine",
                             "Choices": [{"Variable": "$.bad", "BooleanEquals": True,
                                          "Next": "Bad"}]},
                "Bad": invoke("validate", **{
                    "Parameters": {"FunctionName": "validate", "Payload": {"chunk.$": "$.tag"}},
                    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.caught",
                               "Next": "Caught"}],
                    "End": True}),
                "Caught": {"Type": "Pass", "Parameters": {"error.$": "$.caught.Error",
                                                          "label.$": "$.label"}, "End": True},
                "Fine": {"Type": "Pass", "Parameters": {"label.$": "$.label"}, "End": True}}},
        ]},
        "Out": {"Type": "Pass", "Parameters": {"items.$": "$[0]", "other.$": "$[1]"}, "End": True},
    },
}


def expected_rich(tag: str, items: list[int], bad: bool) -> dict[str, Any]:
    other = {"error": "ChunkInvalid", "label": f"run-{tag}"} if bad else {"label": f"run-{tag}"}
    return {"items": [{"v": v, "tag": tag} for v in items], "other": other}


def test_concurrent_executions_of_one_definition_keep_their_own_state(sfn: Any) -> None:
    """Parallel + INLINE Map + Retry + Choice + Catch + an intrinsic (no JSONata nor Assign
    here: moto evaluates them with a Java runtime this venv lacks): six
    executions of one parsed program at once, then three more, each gets its own answer."""
    arn = create(sfn, RICH, name=f"rich-{uuid.uuid4().hex[:6]}")
    for rounds in (range(6), range(6, 9)):
        runs = {f"t{i}": ([i, i * 10, i * 100][: 1 + i % 3], i % 2 == 0) for i in rounds}
        started = {tag: sfn.start_execution(stateMachineArn=arn, input=json.dumps(
            {"tag": tag, "items": items, "bad": bad}))["executionArn"]
                   for tag, (items, bad) in runs.items()}
        for tag, execution in started.items():
            items, bad = runs[tag]
            assert output(wait_for_execution(sfn, execution, 60)) == expected_rich(tag, items, bad)


def test_stopping_one_execution_leaves_another_of_the_same_definition_alone(sfn: Any) -> None:
    definition = {"StartAt": "Each", "States": {"Each": {
        "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "End": True,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Hold", "States": {
            "Hold": {"Type": "Wait", "Seconds": 1, "Next": "Echo"},
            "Echo": {"Type": "Pass", "Parameters": {"v.$": "$"}, "End": True}}}}}}
    arn = create(sfn, definition, name="stop-one")
    doomed = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": [1, 2, 3]}))
    kept = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": [4, 5, 6]}))
    time.sleep(0.3)
    sfn.stop_execution(executionArn=doomed["executionArn"])
    # (moto ends a Map stopped mid-iteration FAILED, not ABORTED, without the cache too)
    assert wait_for_execution(sfn, doomed["executionArn"])["status"] in ("ABORTED", "FAILED")
    assert output(wait_for_execution(sfn, kept["executionArn"])) == [{"v": 4}, {"v": 5},
                                                                     {"v": 6}]
    again = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": [7]}))
    assert output(wait_for_execution(sfn, again["executionArn"])) == [{"v": 7}]


def test_a_failure_does_not_leak_into_the_next_execution(sfn: Any) -> None:
    definition = {"StartAt": "Check", "States": {
        "Check": {"Type": "Choice", "Default": "Ok",
                  "Choices": [{"Variable": "$.fail", "BooleanEquals": True, "Next": "No"}]},
        "No": {"Type": "Fail", "Error": "Boom", "Cause": "asked"},
        "Ok": {"Type": "Pass", "Result": {"fine": True}, "End": True}}}
    arn = create(sfn, definition, name="leak")
    for fail in (True, False, True, False):
        described = wait_for_execution(sfn, sfn.start_execution(
            stateMachineArn=arn, input=json.dumps({"fail": fail}))["executionArn"])
        if fail:
            assert (described["status"], described.get("error")) == ("FAILED", "Boom")
        else:
            assert output(described) == {"fine": True}


def test_update_state_machine_runs_the_new_definition_and_a_bad_one_is_refused(
        sfn: Any) -> None:
    arn = create(sfn, {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1,
                                                       "End": True}}}, name="updated")
    assert output(wait_for_execution(sfn, sfn.start_execution(stateMachineArn=arn)[
        "executionArn"])) == 1
    sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(
        {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 2, "End": True}}}))
    assert output(wait_for_execution(sfn, sfn.start_execution(stateMachineArn=arn)[
        "executionArn"])) == 2
    bad = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pas", "End": True}}})
    for _ in range(3):
        with pytest.raises(ClientError):
            sfn.update_state_machine(stateMachineArn=arn, definition=bad)


def test_a_shared_program_keeps_each_executions_retry_count(
        sfn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two executions of one cached program reach a Retry for the first time together (the
    race's window widened here to make it certain) and each retries MaxAttempts times.

    moto's ``EvalComponent.heap_key`` is set lazily, on the shared component, the first time
    one is evaluated, and a Retrier's attempt count lives in the execution's heap under that
    key: had both executions drawn a key, the one whose key was overwritten would read its
    count under the other's (none: -1) and retry once more than MaxAttempts. The cache draws
    every key before a program is shared."""
    import moto.stepfunctions.parser.asl.component.eval_component as eval_component

    original = eval_component.long_uid

    def slow_uid() -> str:
        time.sleep(0.3)  # a thread switch inside heap_key's check-then-set, made likely
        return str(original())

    monkeypatch.setattr(eval_component, "long_uid", slow_uid)
    definition = {"StartAt": "Try", "States": {"Try": {
        "Type": "Task", "Resource": LAMBDA_INVOKE,
        "Parameters": {"FunctionName": "flaky", "Payload.$": "$"},
        "Retry": [{"ErrorEquals": ["TransientError"], "MaxAttempts": 1,
                   "IntervalSeconds": 1}],
        "End": True}}}
    arn = create(sfn, definition, name="retry-race")
    counters = [tmp_path / f"c{i}" for i in range(2)]
    started = [sfn.start_execution(stateMachineArn=arn, input=json.dumps(
        {"counter": str(c), "failures": 10}))["executionArn"] for c in counters]
    for execution in started:
        assert wait_for_execution(sfn, execution, 60)["status"] == "FAILED"
    attempts = [int(c.read_text()) for c in counters]
    assert attempts == [2, 2], f"attempts per execution (MaxAttempts 1): {attempts}"


# -- the start-name index -------------------------------------------------------------------------


@pytest.mark.speedups  # (x17 still running 30 starts later: as fast as the index makes them)
def test_start_by_name_is_idempotent_as_on_aws(sfn: Any) -> None:
    arn = create(sfn, WAIT_2S, name="named")
    other = create(sfn, WAIT_2S, name="named-other")
    first = sfn.start_execution(stateMachineArn=arn, name="n", input='{"a": 1}')
    assert sfn.start_execution(stateMachineArn=arn, name="n", input='{"a": 1}')[
        "executionArn"] == first["executionArn"]
    with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
        sfn.start_execution(stateMachineArn=arn, name="n", input='{"a": 2}')
    # another state machine's names are its own
    assert sfn.start_execution(stateMachineArn=other, name="n", input='{"a": 2}')[
        "executionArn"] != first["executionArn"]
    # many more names in between: the index is extended, not stale
    for i in range(30):
        sfn.start_execution(stateMachineArn=arn, name=f"x{i}", input="{}")
    wait_for_execution(sfn, first["executionArn"])
    with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
        sfn.start_execution(stateMachineArn=arn, name="n", input='{"a": 1}')
    with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
        sfn.start_execution(stateMachineArn=arn, name="x29", input='{"other": 1}')
    assert sfn.start_execution(stateMachineArn=arn, name="x17", input="{}")[
        "executionArn"].endswith(":named:x17")  # (still running: the same one)
    # a state machine deleted and created again starts with no names
    sfn.delete_state_machine(stateMachineArn=arn)
    arn = create(sfn, QUICK, name="named")
    again = sfn.start_execution(stateMachineArn=arn, name="n", input='{"a": 3}')
    assert output(wait_for_execution(sfn, again["executionArn"])) == {"a": 3}


def test_concurrent_starts_of_one_name_make_one_execution(
        sfn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many threads start one name with one input while it runs: one execution, one ARN.
    moto looks for the name, builds the execution, then appends it: the build is slowed here
    so that every thread would pass the look-up before the first appends, without the
    engine's lock."""
    from moto.stepfunctions.parser import models

    class SlowToBuild(models.Execution):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            time.sleep(0.05)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(models, "Execution", SlowToBuild)
    arn = create(sfn, WAIT_2S, name="racing")
    barrier = threading.Barrier(8)
    arns: list[str] = []
    errors: list[Exception] = []

    def start() -> None:
        client = boto3.client("stepfunctions", region_name=REGION)
        barrier.wait()
        try:
            arns.append(client.start_execution(stateMachineArn=arn, name="one",
                                               input='{"k": 1}')["executionArn"])
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(arns)) == 1
    listed = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert len(listed) == 1, [e["executionArn"] for e in listed]


# -- the parse cache lives for the process, keyed by the parser -----------------------------------


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
    not called by the engines the process starts after the patch is undone: the cache is
    keyed by the parser found at each install."""
    import subprocess
    import sys

    from tests.support.seam import REPO

    env = {"PYTHONPATH": f"{REPO / 'src'}:{REPO}", "PATH": "/usr/bin:/bin",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    done = subprocess.run([sys.executable, "-c", _LEAK_SCRIPT], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {"calls": 1}
