"""The local engine fails where AWS fails: history events, payload sizes, execution names,
Lambda's 6 MB. Each limit is crossed by a small definition on moto's interpreter with the
seam installed, and the failure is checked against what AWS reports (see
``s3split.engine.quotas`` for the sources)."""

from __future__ import annotations

import json
import time
import uuid
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from s3split import executions
from s3split.engine.lambda_runtime import ProcessDispatcher
from s3split.engine.moto_seam import install
from s3split.engine.quotas import (
    AWS_QUOTAS,
    HISTORY_EVENTS,
    LAMBDA_REQUEST_BYTES,
    PAYLOAD_BYTES,
    SOURCES,
    Quotas,
)
from s3split.engine.routing import moto_config
from tests.support.seam import (
    HANDLERS,
    MODULE,
    create,
    fn_arn,
    history,
    moto_sfn,
    seam_fixtures,
    wait_for_execution,
)

pytestmark = pytest.mark.timeout(300)

QUOTA_HANDLERS = HANDLERS | {"big": f"{MODULE}:big", "count": f"{MODULE}:count"}
LOOP = {"StartAt": "Loop", "States": {"Loop": {"Type": "Pass", "Next": "Loop"}}}


dispatcher = seam_fixtures(QUOTA_HANDLERS).dispatcher


def engine(dispatcher: ProcessDispatcher,
           quotas: Quotas = AWS_QUOTAS) -> AbstractContextManager[Any]:
    """moto with the seam and ``quotas``; yields a Step Functions client."""
    return moto_sfn(dispatcher, quotas=quotas)


def start(sfn: Any, definition: dict[str, Any], payload: Any = None, timeout: float = 60,
          **kwargs: Any) -> dict[str, Any]:
    arn = create(sfn, definition, name=f"quota-{uuid.uuid4().hex[:8]}")
    started = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload or {}), **kwargs)
    return wait_for_execution(sfn, started["executionArn"], timeout)


def passes(n: int) -> dict[str, Any]:
    """``n`` Pass states in a row: 2 + 2n history events."""
    states: dict[str, Any] = {f"P{i}": {"Type": "Pass", "Next": f"P{i + 1}"} for i in range(n)}
    states[f"P{n - 1}"] = {"Type": "Pass", "End": True}
    return {"StartAt": "P0", "States": states}


def test_quota_table_names_every_limit_with_an_aws_page() -> None:
    assert {s.value for s in SOURCES} >= {HISTORY_EVENTS, PAYLOAD_BYTES, LAMBDA_REQUEST_BYTES}
    assert all(s.url.startswith("https://docs.aws.amazon.com/") for s in SOURCES)
    assert (AWS_QUOTAS.history_events, AWS_QUOTAS.payload_bytes, AWS_QUOTAS.name_chars) == (
        25_000, 262_144, 80)


# history events ------------------------------------------------------------------------


def test_a_loop_fails_at_25000_events_as_aws_reports_it(dispatcher: ProcessDispatcher) -> None:
    """The issue's case: moto ran such executions to SUCCEEDED past 25,000 events."""
    started = time.monotonic()
    with engine(dispatcher) as sfn:
        described = start(sfn, LOOP, timeout=240)
        events = history(sfn, described["executionArn"])
    print(f"\n25,000-event loop failed after {time.monotonic() - started:.1f} s")
    assert described["status"] == "FAILED"
    assert described["error"] == "States.Runtime"
    assert described["cause"] == (
        "The execution reached the maximum number of history events (25000).")
    assert len(events) == 25_000
    before, last = events[-2:]
    assert (last["id"], last["type"]) == (25_000, "ExecutionFailed")
    assert last["executionFailedEventDetails"] == {
        "error": "States.Runtime",
        "cause": "The execution reached the maximum number of history events (25000)."}
    assert (before["id"], before["type"]) == (24_999, "PassStateExited")


def test_the_limit_event_may_be_execution_succeeded(dispatcher: ProcessDispatcher) -> None:
    """AWS: when event 25,000 is ExecutionSucceeded the execution succeeds."""
    with engine(dispatcher, Quotas(history_events=2 + 2 * 3)) as sfn:
        exact = start(sfn, passes(3))
        over = start(sfn, passes(4))
        over_events = history(sfn, over["executionArn"])
    assert exact["status"] == "SUCCEEDED"
    assert over["status"] == "FAILED" and over["error"] == "States.Runtime"
    assert "(8)" in over["cause"]
    assert [e["id"] for e in over_events] == list(range(1, 9))
    assert over_events[-1]["type"] == "ExecutionFailed"


def test_no_lambda_runs_after_the_cut_and_catch_all_does_not_save_it(
        dispatcher: ProcessDispatcher, tmp_path: Path) -> None:
    """Two Map lanes loop on a Lambda task with a catch-all: the execution still fails at the
    limit, and every handler run has its LambdaFunctionStarted event (none after the cut)."""
    log = tmp_path / "runs.log"
    lane = {
        "StartAt": "Call",
        "States": {
            "Call": {"Type": "Task", "Resource": fn_arn("count"), "Next": "Call",
                     "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]},
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    definition = {
        "StartAt": "Lanes",
        "States": {
            "Lanes": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2,
                      "ItemSelector": {"log.$": "$.log", "tag.$": "$$.Map.Item.Value"},
                      "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"},
                                        "StartAt": "Lane", "States": {
                                            "Lane": {"Type": "Parallel", "Branches": [lane],
                                                     "End": True}}},
                      "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                      "End": True},
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    with engine(dispatcher, Quotas(history_events=120)) as sfn:
        described = start(sfn, definition, {"items": [0, 1], "log": str(log)})
        time.sleep(1)  # a handler still running at the cut would write its line now
        events = history(sfn, described["executionArn"])
    assert described["status"] == "FAILED", described
    assert described["error"] == "States.Runtime"
    assert len(events) == 120 and events[-1]["type"] == "ExecutionFailed"
    started_calls = sum(e["type"] == "LambdaFunctionStarted" for e in events)
    assert len(log.read_text().splitlines()) == started_calls > 10


# payload sizes -----------------------------------------------------------------------------


def test_execution_input_over_256_kib_is_invalid_execution_input(
        dispatcher: ProcessDispatcher) -> None:
    with engine(dispatcher) as sfn:
        arn = create(sfn, passes(1))
        at_limit = json.dumps({"p": "x" * (PAYLOAD_BYTES - 9)})
        assert len(at_limit.encode()) == PAYLOAD_BYTES
        sfn.start_execution(stateMachineArn=arn, input=at_limit)
        with pytest.raises(ClientError) as refused:
            sfn.start_execution(stateMachineArn=arn,
                                input=json.dumps({"p": "x" * (PAYLOAD_BYTES - 8)}))
    assert refused.value.response["Error"]["Code"] == "InvalidExecutionInput"
    assert str(PAYLOAD_BYTES + 1) in refused.value.response["Error"]["Message"]


def test_state_output_over_256_kib_fails_data_limit_exceeded(
        dispatcher: ProcessDispatcher) -> None:
    """A Pass state's output of exactly 262,144 bytes passes (moto refused it); one byte more
    fails the execution with States.DataLimitExceeded."""
    def big_pass(chars: int) -> dict[str, Any]:
        return {"StartAt": "Big", "States": {"Big": {"Type": "Pass", "Result": "x" * chars,
                                                     "End": True}}}

    with engine(dispatcher) as sfn:
        exact = start(sfn, big_pass(PAYLOAD_BYTES - 2))  # a JSON string: the quotes count
        over = start(sfn, big_pass(PAYLOAD_BYTES - 1))
    assert exact["status"] == "SUCCEEDED", exact
    assert over["status"] == "FAILED"
    assert over["error"] == "States.DataLimitExceeded"


@pytest.mark.parametrize("result", [
    "\u00e9" * ((PAYLOAD_BYTES - 2) // 2),  # 2 bytes each in UTF-8 (6 as a \\u escape)
    "\U0001f600" * ((PAYLOAD_BYTES - 2) // 4),  # 4 bytes each (12 as two escapes)
    [0] * ((PAYLOAD_BYTES - 1) // 2),  # "[0,0,...]": no space after a comma
    {f"k{i:05d}": 0 for i in range(PAYLOAD_BYTES // 11)}])  # '"k00000":0,': 11 bytes each
def test_the_256_kib_counts_compact_json_as_utf8(dispatcher: ProcessDispatcher,
                                                 result: Any) -> None:
    """AWS counts a payload as the UTF-8 bytes of its JSON text: a state output that is that
    close to the quota passes; counted with Python's \\u escapes and ", " separators it would
    have failed States.DataLimitExceeded."""
    compact = json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode()
    assert PAYLOAD_BYTES - 12 <= len(compact) <= PAYLOAD_BYTES
    definition = {"StartAt": "Big", "States": {"Big": {"Type": "Pass", "Result": result,
                                                       "End": True}}}
    with engine(dispatcher) as sfn:
        described = start(sfn, definition)
    assert described["status"] == "SUCCEEDED", described.get("error")


@pytest.mark.parametrize(("catch", "status"), [("States.ALL", "FAILED"),
                                               ("States.DataLimitExceeded", "SUCCEEDED")])
def test_a_task_result_over_256_kib_is_caught_only_by_name(
        dispatcher: ProcessDispatcher, catch: str, status: str) -> None:
    """AWS: States.ALL does not catch the terminal States.DataLimitExceeded; its name does."""
    definition = {
        "StartAt": "Big",
        "States": {
            "Big": {"Type": "Task", "Resource": fn_arn("big"), "End": True,
                    "Catch": [{"ErrorEquals": [catch], "ResultPath": "$.error",
                               "Next": "Caught"}]},
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    with engine(dispatcher) as sfn:
        described = start(sfn, definition, {"bytes": PAYLOAD_BYTES})
    assert described["status"] == status, described
    if status == "FAILED":
        assert described["error"] == "States.DataLimitExceeded"
    else:
        assert json.loads(described["output"])["error"]["Error"] == "States.DataLimitExceeded"


@pytest.mark.parametrize("catch", [[["States.Runtime"]], [["States.ALL"]],
                                   [["States.Runtime"], ["States.ALL"]]])
def test_states_runtime_is_caught_neither_by_name_nor_by_catch_all(
        dispatcher: ProcessDispatcher, catch: list[list[str]], tmp_path: Path) -> None:
    """AWS: a States.Runtime error (here a Parameters path that matches nothing) always fails
    the execution; no Retry or Catch takes it, named or not (moto's interpreter let both)."""
    log = tmp_path / "calls.log"
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {"Type": "Task", "Resource": fn_arn("count"), "End": True,
                     "Parameters": {"log": str(log), "tag.$": "$.missing"},
                     "Retry": [{"ErrorEquals": errors, "MaxAttempts": 2, "IntervalSeconds": 1}
                               for errors in catch],
                     "Catch": [{"ErrorEquals": errors, "Next": "Caught"} for errors in catch]},
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    with engine(dispatcher) as sfn:
        described = start(sfn, definition, {"present": 1})
        events = history(sfn, described["executionArn"])
    assert (described["status"], described.get("error")) == ("FAILED", "States.Runtime")
    entered = [e["stateEnteredEventDetails"]["name"] for e in events
               if e["type"].endswith("StateEntered")]
    assert entered == ["Call"] and not log.exists()


@pytest.mark.parametrize(("tolerance", "status"), [
    ({}, "FAILED"), ({"ToleratedFailureCount": 1}, "SUCCEEDED"),
    ({"ToleratedFailurePercentage": 25.0}, "SUCCEEDED"),
    ({"ToleratedFailurePercentage": 20.0}, "FAILED"),
    ({"ToleratedFailureCount": 5, "ToleratedFailurePercentage": 10.0}, "FAILED")])
def test_a_distributed_map_fails_past_its_tolerated_failures(
        dispatcher: ProcessDispatcher, tolerance: dict[str, Any], status: str) -> None:
    """AWS: a Map Run fails with States.ExceedToleratedFailureThreshold once more children
    failed than ToleratedFailureCount/Percentage allow, by default none (moto counted failed
    children and succeeded). Here one child of four fails."""
    child = {"StartAt": "Which", "States": {
        "Which": {"Type": "Choice", "Default": "Fine",
                  "Choices": [{"Variable": "$", "NumericEquals": 1, "Next": "Broken"}]},
        "Broken": {"Type": "Fail", "Error": "Broken", "Cause": "item 1"},
        "Fine": {"Type": "Succeed"}}}
    definition = {"StartAt": "Each", "States": {"Each": {
        "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "End": True,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED",
                                              "ExecutionType": "STANDARD"}} | child,
        **tolerance}}}
    with engine(dispatcher) as sfn:
        described = start(sfn, definition, {"items": [0, 1, 2, 3]})
    assert described["status"] == status, described
    if status == "FAILED":
        assert described["error"] == "States.ExceedToleratedFailureThreshold", described


def test_invocations_beyond_the_accounts_concurrency_are_throttled(
        dispatcher: ProcessDispatcher) -> None:
    """Quotas.lambda_concurrency: four 1-second invocations at once on an account of 2; the
    two beyond it get Lambda.TooManyRequestsException, as Lambda answers (not retried here)."""
    definition = {"StartAt": "Each", "States": {"Each": {
        "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 4, "End": True,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Call", "States": {
            "Call": {"Type": "Task", "Resource": fn_arn("sleepy"), "End": True,
                     "Parameters": {"sleep": 1},
                     "Catch": [{"ErrorEquals": ["Lambda.TooManyRequestsException"],
                                "Next": "Throttled"}]},
            "Throttled": {"Type": "Pass", "Result": "throttled", "End": True}}}}}}
    with engine(dispatcher, Quotas(lambda_concurrency=2)) as sfn:
        described = start(sfn, definition, {"items": [1, 2, 3, 4]})
    results = json.loads(described["output"])
    assert results.count("throttled") == 2 and results.count({"slept": 1}) == 2, results


# execution names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["x" * 81, "two words", "a:b", "tab\there", "q?", "c#1",
                                  "nul\u0000", "del\u007f", "brace{", "runs/orders",
                                  "x\ufffe", "x\uffff"])
def test_names_aws_rejects_are_invalid_name(dispatcher: ProcessDispatcher, name: str) -> None:
    with engine(dispatcher) as sfn:
        arn = create(sfn, passes(1))
        with pytest.raises(ClientError) as refused:
            sfn.start_execution(stateMachineArn=arn, name=name, input="{}")
    assert refused.value.response["Error"]["Code"] == "InvalidName"


def test_names_aws_accepts_start(dispatcher: ProcessDispatcher) -> None:
    with engine(dispatcher) as sfn:
        arn = create(sfn, passes(1))
        for name in ("x" * 80, "run-2024_01.csv", "déjà-vu", "a"):
            started = sfn.start_execution(stateMachineArn=arn, name=name, input="{}")
            assert started["executionArn"].endswith(f":{name}")


# Choice rules -----------------------------------------------------------------------------


@pytest.mark.parametrize("rule", [{"BooleanEquals": True}, {"StringEquals": "batch"},
                                  {"NumericGreaterThan": 0}, {"IsNull": True}])
def test_a_choice_on_a_path_that_matches_nothing_is_states_runtime(
        dispatcher: ProcessDispatcher, rule: dict[str, Any]) -> None:
    """AWS fails the execution (no Default taken) when a rule's Variable matches nothing, unless
    the rule is IsPresent; moto compared the missing value as false and went on."""
    definition = {"StartAt": "Route", "States": {
        "Route": {"Type": "Choice", "Default": "Other",
                  "Choices": [{"Variable": "$.split.done", "Next": "Done"} | rule]},
        "Done": {"Type": "Succeed"}, "Other": {"Type": "Succeed"}}}
    with engine(dispatcher) as sfn:
        described = start(sfn, definition, {"split": {}})
        events = history(sfn, described["executionArn"])
    assert (described["status"], described.get("error")) == ("FAILED", "States.Runtime")
    assert "$.split.done" in described["cause"]
    assert not [e for e in events if e["type"] == "ChoiceStateExited"]


def test_is_present_guards_a_comparison_of_a_path_that_may_be_missing(
        dispatcher: ProcessDispatcher) -> None:
    """The guard the pipeline's Route uses: IsPresent is false on a missing path and And stops
    there; on a present path the comparison decides."""
    guarded = {"And": [{"Variable": "$.split.ranges", "IsPresent": True},
                       {"Variable": "$.split.ranges", "BooleanEquals": True}], "Next": "Ranges"}
    definition = {"StartAt": "Route", "States": {
        "Route": {"Type": "Choice", "Choices": [guarded], "Default": "Split"},
        "Ranges": {"Type": "Pass", "Result": {"to": "ranges"}, "End": True},
        "Split": {"Type": "Pass", "Result": {"to": "split"}, "End": True}}}
    with engine(dispatcher) as sfn:
            outputs = [json.loads(start(sfn, definition, {"split": split})["output"])["to"]
                   for split in ({}, {"ranges": True}, {"ranges": False})]
    assert outputs == ["split", "ranges", "split"]


# Lambda's 6 MB -----------------------------------------------------------------------------


def test_lambda_response_over_6_mb_is_response_size_too_large(
        dispatcher: ProcessDispatcher) -> None:
    """Lambda fails the invocation before Step Functions sees the result: the error is
    Lambda's, not States.DataLimitExceeded."""
    definition = {"StartAt": "Big", "States": {"Big": {"Type": "Task",
                                                       "Resource": fn_arn("big"), "End": True}}}
    with engine(dispatcher) as sfn:
        described = start(sfn, definition, {"bytes": 6_291_556})
    assert described["status"] == "FAILED"
    assert described["error"] == "Function.ResponseSizeTooLarge"
    cause = json.loads(described["cause"])
    assert cause["errorMessage"] == ("Response payload size exceeded maximum allowed payload "
                                     "size (6291556 bytes).")


def test_lambda_request_over_6_mb_is_request_too_large(dispatcher: ProcessDispatcher) -> None:
    """Step Functions cannot send more than 256 KiB, but the engine's Lambda is also called
    directly (and by other clients): it refuses what Lambda refuses."""
    with engine(dispatcher):
        client = boto3.client("lambda", region_name="us-east-1")
        small = client.invoke(FunctionName="big", Payload=json.dumps(
            {"bytes": 1, "filler": "x" * (LAMBDA_REQUEST_BYTES - 100)}))
        assert "FunctionError" not in small
        assert json.load(small["Payload"]) == {"pad": "x"}
        with pytest.raises(ClientError) as refused:
            client.invoke(FunctionName="big", Payload=json.dumps(
                {"bytes": 1, "filler": "x" * LAMBDA_REQUEST_BYTES}))
    assert refused.value.response["Error"]["Code"] == "RequestTooLargeException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_quotas_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="history_events"):
        Quotas(history_events=1)


def test_distributed_map_children_have_histories_of_their_own(
        dispatcher: ProcessDispatcher, tmp_path: Path) -> None:
    """On AWS each child of a Distributed Map is an execution with its own 25,000 events (a
    range split's 1,000 scans); an Inline Map's iterations count against the parent's. Each
    child here ends in a Lambda call that logs it: all 30 run (moto would drop a child cut
    off by the limit without failing the Map)."""
    log = tmp_path / "calls.log"
    child = passes(2)
    child["States"]["P1"] = {"Type": "Pass", "Next": "Call"}
    child["States"]["Call"] = {"Type": "Task", "Resource": fn_arn("count"), "End": True,
                               "Parameters": {"log": str(log), "tag.$": "$.tag"}}
    items = {"items": list(range(30))}  # ~12 events each: 360, over the limit of 100

    def each(mode: str) -> dict[str, Any]:
        config = {"Mode": mode} | ({"ExecutionType": "STANDARD"} if mode == "DISTRIBUTED" else {})
        return {"StartAt": "Each", "States": {"Each": {
            "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 4, "ResultPath": None,
            "ItemSelector": {"tag.$": f"States.Format('{mode} {{}}', $$.Map.Item.Value)"},
            "ItemProcessor": {"ProcessorConfig": config} | child, "End": True}}}

    with engine(dispatcher, Quotas(history_events=100)) as sfn:
        distributed = start(sfn, each("DISTRIBUTED"), items)
        events = history(sfn, distributed["executionArn"])
        inline = start(sfn, each("INLINE"), items)
    assert distributed["status"] == "SUCCEEDED", distributed
    assert len(events) < 20
    assert sorted(lines(log, "DISTRIBUTED")) == sorted(f"DISTRIBUTED {i}" for i in range(30))
    assert (inline["status"], inline.get("error")) == ("FAILED", "States.Runtime")
    assert len(lines(log, "INLINE")) < 30


def lines(path: Path, prefix: str) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith(prefix)]


# history pages ---------------------------------------------------------------------------


def test_a_history_comes_a_page_at_a_time_as_on_aws(dispatcher: ProcessDispatcher) -> None:
    """AWS answers GetExecutionHistory 100 events at a time unless asked for up to 1,000,
    with a nextToken and in reverse on request (moto: the whole history in one answer)."""
    with mock_aws(config=moto_config()):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        with install(dispatcher):
            arn = start(sfn, passes(150))["executionArn"]  # 302 events
            first = sfn.get_execution_history(executionArn=arn)
            paged = history(sfn, arn)
            small = list(executions.history(sfn, arn, page_size=7))
            newest = sfn.get_execution_history(executionArn=arn, reverseOrder=True,
                                               maxResults=2)["events"]
            with pytest.raises(ClientError, match="ValidationException"):
                sfn.get_execution_history(executionArn=arn, maxResults=1001)
            with pytest.raises(ClientError, match="InvalidToken"):
                sfn.get_execution_history(executionArn=arn, nextToken="302")
        whole = sfn.get_execution_history(executionArn=arn)["events"]  # moto's own answer
    assert (len(first["events"]), first["nextToken"]) == (100, "100")
    assert [e["id"] for e in paged] == list(range(1, 303))
    assert small == paged == whole  # the same events, timestamps and details
    assert newest == whole[:-3:-1]


def test_a_history_token_that_is_no_token_of_ours_is_invalid_token(
        dispatcher: ProcessDispatcher) -> None:
    """A token the engine never gave (digits of another script, a negative number) is AWS's
    InvalidToken, named once; not an error of the engine's own."""
    with engine(dispatcher) as sfn:
        arn = start(sfn, passes(60))["executionArn"]  # 122 events: a second page
        errors = []
        for token in ("\u00b2", "-1", "1.5", "abc"):
            with pytest.raises(ClientError) as caught:
                sfn.get_execution_history(executionArn=arn, nextToken=token)
            errors.append(caught.value.response["Error"])
    assert [error["Code"] for error in errors] == ["InvalidToken"] * 4
    assert [error["Message"].count("Invalid Token") for error in errors] == [1] * 4


def test_a_running_history_in_reverse_gives_each_event_once(
        dispatcher: ProcessDispatcher) -> None:
    """Pages in reverse of an execution that adds events between two pages: the events older
    than the first page, each once (a token counted from the newest event would repeat some)."""
    task = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "echo", "Payload": {"token.$": "$$.Task.Token"}},
            "Next": "Q0"}
    after = passes(5)["States"]
    after = {name.replace("P", "Q"): state | ({"Next": state["Next"].replace("P", "Q")}
                                               if "Next" in state else {})
             for name, state in after.items()}
    definition = {"StartAt": "P0", "States": passes(5)["States"] | {"P4": {
        "Type": "Pass", "Next": "Wait"}, "Wait": task} | after}
    with engine(dispatcher) as sfn:
        arn = create(sfn, definition, name=f"quota-{uuid.uuid4().hex[:8]}")
        execution = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
        token = _task_token(sfn, execution)
        first = sfn.get_execution_history(executionArn=execution, reverseOrder=True,
                                          maxResults=4)
        sfn.send_task_success(taskToken=token, output="{}")
        assert wait_for_execution(sfn, execution)["status"] == "SUCCEEDED"
        ids = [event["id"] for event in first["events"]]
        rest = sfn.get_execution_history(executionArn=execution, reverseOrder=True,
                                         maxResults=1000, nextToken=first["nextToken"])
        ids += [event["id"] for event in rest["events"]]
    assert ids == list(range(ids[0], 0, -1))


def _task_token(sfn: Any, execution: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for event in executions.history(sfn, execution):
            details = event.get("taskSubmittedEventDetails") or event.get(
                "taskScheduledEventDetails")
            if event["type"] == "TaskSubmitted" and details:
                token: str = json.loads(details["output"])["Payload"]["echo"]["token"]
                return token
        time.sleep(0.05)
    raise AssertionError(f"{execution}: no task submitted in 30 s")
