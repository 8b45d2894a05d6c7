"""Adversarial review of 42736c0 ("a follower wakes when its execution ends, definitions
parsed once, start-name lookup indexed, X-Ray SDK preloaded by the fork server").

Tests that FAIL at 42736c0 (each says why in its docstring):

* test_a_handler_sees_the_xray_settings_of_its_environment
* test_wait_does_not_spin_while_an_execution_reuses_an_ended_arn
* test_a_shared_program_keeps_each_executions_retry_count  (a latent race, its window widened)

The rest PASS: behaviour of the changed code worth keeping. All pass since the commit after
5c0e5d3 (heap keys drawn before a program is shared, ends counted per ARN, the X-Ray SDK no
longer preloaded).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from s3split.engine.lambda_runtime import ProcessDispatcher
from s3split.engine.local import LocalEngine
from s3split.engine.moto_seam import install
from s3split.engine.quotas import AWS_QUOTAS
from s3split.engine.routing import moto_config
from s3split.engine.speedups import ends_of, wait_for_end
from tests.support.seam import (
    HANDLERS,
    LAMBDA_INVOKE,
    REGION,
    SYS_PATH,
    create,
    wait_for_execution,
)

pytestmark = pytest.mark.timeout(120)

ATTACK = "tests.support.attack_handlers"


@pytest.fixture(scope="module")
def dispatcher() -> Iterator[ProcessDispatcher]:
    with ProcessDispatcher(HANDLERS, max_workers=3, timeouts={"sleepy": 5.0},
                           extra_sys_path=SYS_PATH) as d:
        yield d


@pytest.fixture
def sfn(dispatcher: ProcessDispatcher) -> Iterator[Any]:
    with mock_aws(config=moto_config()), install(dispatcher, retry_interval_scale=0):
        yield boto3.client("stepfunctions", region_name=REGION)


def invoke(function: str, **extra: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": LAMBDA_INVOKE,
            "Parameters": {"FunctionName": function, "Payload.$": "$"},
            "ResultSelector": {"result.$": "$.Payload"}, "OutputPath": "$.result", **extra}


def output(described: dict[str, Any]) -> Any:
    assert described["status"] == "SUCCEEDED", (described.get("error"), described.get("cause"))
    return json.loads(described["output"])


# --------------------------------------------------------------------------------------------
# lambda_runtime: aws_xray_sdk.core preloaded by the fork server           (FAILS at 42736c0)
# --------------------------------------------------------------------------------------------


def test_a_handler_sees_the_xray_settings_of_its_environment() -> None:
    """A worker gets the dispatcher's environment (``env=``, as a function's configuration),
    and a handler that imports the X-Ray SDK (every Powertools ``Tracer()`` does) used to get
    a recorder built from it. The fork server now imports ``aws_xray_sdk.core`` before any
    worker's environment is set, so the recorder (created at import) keeps the fork server's
    AWS_XRAY_CONTEXT_MISSING / AWS_XRAY_TRACING_NAME: the handler sees its variables in
    os.environ but the SDK ignores them. (lambda_runtime re-runs Powertools' logger setup for
    the same reason: _powertools_logger_as_if_imported_now; nothing does so for X-Ray.)"""
    env = {"AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR", "AWS_XRAY_TRACING_NAME": "from-env"}
    with ProcessDispatcher({"probe": f"{ATTACK}:xray_settings"}, max_workers=1, env=env,
                           extra_sys_path=SYS_PATH) as d:
        seen = d("probe", {})
    assert seen["environ"] == env  # the worker has its environment ...
    assert (seen["context_missing"], seen["service"]) == ("IGNORE_ERROR", "from-env")  # ...


# --------------------------------------------------------------------------------------------
# wait_for_end / LocalEngine.wait
# --------------------------------------------------------------------------------------------

WAIT_2S = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 2, "End": True}}}
QUICK = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}


@pytest.mark.speedups
def test_wait_does_not_spin_while_an_execution_reuses_an_ended_arn(
        sfn: Any, dispatcher: ProcessDispatcher) -> None:
    """FAILS at 42736c0. ``_ended`` keeps every ARN that ended while the seam is installed, and
    an execution's ARN is only ``<state machine name>:<execution name>``: delete a state
    machine, create it again under the same name, start the same execution name, and its ARN
    is "ended" while it runs. ``wait_for_end`` then returns at once, so LocalEngine.wait (and
    tests/support/seam.wait_for_execution) spins: DescribeExecution and on_poll back to back
    for the whole run (thousands of calls for a 2 s Wait), instead of once per poll_s."""
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
    with mock_aws(config=moto_config()), install(dispatcher, quotas=quotas):
        sfn = boto3.client("stepfunctions", region_name=REGION)
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


# --------------------------------------------------------------------------------------------
# the definition cache: one parsed program for every execution of one text
# --------------------------------------------------------------------------------------------

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
    # (moto ends a Map stopped mid-iteration FAILED, not ABORTED: so before 42736c0 too)
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
    """FAILS at 42736c0 (a latent race; its window is widened here to make it certain).

    "Components keep no per-evaluation state" is not quite so: ``EvalComponent.heap_key`` is
    set lazily, on the shared component, the first time one is evaluated, and a Retrier's
    attempt count lives in the execution's heap under that key. Two executions of one cached
    program that reach a Retry for the first time together each draw a key; the one whose
    key is overwritten reads its count under the other's key (none: -1) and retries once
    more than MaxAttempts. Before 42736c0 each execution had its own parse, so its own keys
    (the race remained only between the lanes of one Map)."""
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


# --------------------------------------------------------------------------------------------
# the start-name index
# --------------------------------------------------------------------------------------------


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
