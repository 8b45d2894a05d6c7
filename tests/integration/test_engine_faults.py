"""Injected AWS service errors: they arrive under the names Step Functions gives them, so the
ASL's Retry/Catch on them runs. Small definitions first, then the real pipeline."""

from __future__ import annotations

import json
import time
import uuid
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from s3split.engine.faults import (
    LAMBDA_AWS_LAMBDA_EXCEPTION,
    LAMBDA_SDK_CLIENT_EXCEPTION,
    LAMBDA_SERVICE_ERRORS,
    LAMBDA_SERVICE_EXCEPTION,
    LAMBDA_TOO_MANY_REQUESTS,
    SFN_EXECUTION_LIMIT_EXCEEDED,
    SFN_THROTTLED,
    FaultPlan,
    Injected,
    LambdaFault,
    StartExecutionFault,
)
from s3split.engine.lambda_runtime import ProcessDispatcher
from s3split.engine.local import local_engine
from s3split.pipeline.lanes import WORST_ITERATION
from s3split.storage import Storage
from tests.support.pipeline import PROBE, Run
from tests.support.seam import (
    HANDLERS,
    LAMBDA_INVOKE,
    MODULE,
    fn_arn,
    history,
    moto_sfn,
    seam_fixtures,
    wait_for_execution,
)

pytestmark = pytest.mark.timeout(300)

FAULT_HANDLERS = HANDLERS | {"count": f"{MODULE}:count"}


dispatcher = seam_fixtures(FAULT_HANDLERS).dispatcher


def sfn_with(dispatcher: ProcessDispatcher, faults: FaultPlan,
             retry_interval_scale: float = 1.0) -> AbstractContextManager[Any]:
    return moto_sfn(dispatcher, faults=faults, retry_interval_scale=retry_interval_scale)


def run(sfn: Any, definition: dict[str, Any], payload: Any) -> dict[str, Any]:
    arn = sfn.create_state_machine(name=f"faults-{uuid.uuid4().hex[:8]}",
                                   definition=json.dumps(definition),
                                   roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]
    started = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload))
    return wait_for_execution(sfn, started["executionArn"], 60)


def caught(resource: str, error: str, **task: Any) -> dict[str, Any]:
    """One Lambda task on ``resource`` that catches ``error`` by name into ``$.error``."""
    state: dict[str, Any] = {"Type": "Task", "Resource": resource, "End": True,
                             "Catch": [{"ErrorEquals": [error], "ResultPath": "$.error",
                                        "Next": "Caught"}], **task}
    return {"StartAt": "Call", "States": {"Call": state, "Caught": {"Type": "Pass", "End": True}}}


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("error", sorted(LAMBDA_SERVICE_ERRORS))
@pytest.mark.parametrize("style", ["function arn", "lambda:invoke"])
def test_lambda_service_errors_arrive_under_their_step_functions_names(
        dispatcher: ProcessDispatcher, tmp_path: Path, error: str, style: str) -> None:
    """The error is caught by its exact name, and the handler never ran."""
    log = tmp_path / "runs.log"
    plan = FaultPlan(lambda_faults=[LambdaFault(error, function="count")])
    if style == "function arn":
        definition = caught(fn_arn("count"), error)
    else:
        definition = caught(LAMBDA_INVOKE, error,
                            Parameters={"FunctionName": "count", "Payload.$": "$"})
    with sfn_with(dispatcher, plan) as sfn:
        described = run(sfn, definition, {"log": str(log)})
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["error"]["Error"] == error
    assert "Injected by the local engine's FaultPlan" in output["error"]["Cause"]
    assert lines(log) == []
    assert plan.injected == [Injected(error, "count", 1)]


def test_throttled_twice_then_retried_runs_once(dispatcher: ProcessDispatcher,
                                                tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    plan = FaultPlan(lambda_faults=[LambdaFault(LAMBDA_TOO_MANY_REQUESTS, calls=(1, 2))])
    retry = [{"ErrorEquals": [LAMBDA_TOO_MANY_REQUESTS], "IntervalSeconds": 1,
              "MaxAttempts": 2}]
    definition = {"StartAt": "Call", "States": {
        "Call": {"Type": "Task", "Resource": fn_arn("count"), "Retry": retry, "End": True}}}
    with sfn_with(dispatcher, plan) as sfn:
        described = run(sfn, definition, {"log": str(log)})
        failed = [e["lambdaFunctionFailedEventDetails"]["error"]
                  for e in history(sfn, described["executionArn"])
                  if e["type"] == "LambdaFunctionFailed"]
    assert described["status"] == "SUCCEEDED", described
    assert failed == [LAMBDA_TOO_MANY_REQUESTS] * 2
    assert lines(log) == [""]


def test_faults_match_function_action_and_index(dispatcher: ProcessDispatcher,
                                                tmp_path: Path) -> None:
    """Only the invocation whose event has action "process" and index 2 fails."""
    log = tmp_path / "runs.log"
    plan = FaultPlan(lambda_faults=[LambdaFault(LAMBDA_SERVICE_EXCEPTION, function="count",
                                                action="process", index=2, calls=None)])
    lane = {"StartAt": "Call", "States": {"Call": {
        "Type": "Task", "Resource": fn_arn("count"), "End": True,
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}]},
        "Caught": {"Type": "Pass", "End": True}}}
    definition = {"StartAt": "Each", "States": {"Each": {
        "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 1, "End": True,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **lane},
        "ItemSelector": {"log.$": "$.log", "action.$": "$$.Map.Item.Value.action",
                         "index.$": "$$.Map.Item.Value.index",
                         "tag.$": "States.Format('{}-{}', $$.Map.Item.Value.action, "
                                  "$$.Map.Item.Value.index)"}}}}
    items = [{"action": a, "index": i} for a in ("process", "record_failure") for i in (1, 2)]
    with sfn_with(dispatcher, plan) as sfn:
        described = run(sfn, definition, {"log": str(log), "items": items})
    assert described["status"] == "SUCCEEDED", described
    errors = [item.get("error", {}).get("Error") for item in json.loads(described["output"])]
    assert errors == [None, LAMBDA_SERVICE_EXCEPTION, None, None]
    assert sorted(lines(log)) == ["process-1", "record_failure-1", "record_failure-2"]
    assert [(i.function, i.action, i.index) for i in plan.injected] == [("count", "process", 2)]


@pytest.mark.parametrize("error", [SFN_EXECUTION_LIMIT_EXCEEDED, SFN_THROTTLED])
def test_start_execution_task_fails_with_its_error_and_starts_nothing(
        dispatcher: ProcessDispatcher, error: str) -> None:
    plan = FaultPlan(start_execution_faults=[StartExecutionFault(error)])
    definition = {"StartAt": "Start", "States": {
        "Start": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution",
                  "Parameters": {"StateMachineArn.$": "$$.StateMachine.Id",
                                 "Input": {"child": True}},
                  "Catch": [{"ErrorEquals": [error], "ResultPath": "$.error",
                             "Next": "Caught"}], "End": True},
        "Caught": {"Type": "Pass", "End": True}}}
    with sfn_with(dispatcher, plan) as sfn:
        described = run(sfn, definition, {})
        executions = sfn.list_executions(
            stateMachineArn=described["stateMachineArn"])["executions"]
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"])["error"]["Error"] == error
    assert len(executions) == 1  # only the parent: the start was refused


def test_retry_interval_scale_zero_skips_the_wait(dispatcher: ProcessDispatcher,
                                                  tmp_path: Path) -> None:
    plan = FaultPlan(lambda_faults=[LambdaFault(LAMBDA_SERVICE_EXCEPTION, calls=(1,))])
    retry = [{"ErrorEquals": [LAMBDA_SERVICE_EXCEPTION], "IntervalSeconds": 60,
              "MaxAttempts": 1}]
    definition = {"StartAt": "Call", "States": {
        "Call": {"Type": "Task", "Resource": fn_arn("count"), "Retry": retry, "End": True}}}
    started = time.monotonic()
    with sfn_with(dispatcher, plan, retry_interval_scale=0) as sfn:
        described = run(sfn, definition, {"log": str(tmp_path / "runs.log")})
    assert described["status"] == "SUCCEEDED", described
    assert time.monotonic() - started < 30


def test_fault_definitions_refuse_what_aws_does_not_send() -> None:
    with pytest.raises(ValueError, match="not a Lambda service error"):
        LambdaFault("TransientError")
    with pytest.raises(ValueError, match="calls"):
        LambdaFault(LAMBDA_SERVICE_EXCEPTION, calls=(0,))
    with pytest.raises(ValueError, match="StepFunctions"):
        StartExecutionFault("Lambda.ServiceException")


# the real pipeline ---------------------------------------------------------------------------


def _pipeline_run(tmp_path: Path, name: str, faults: FaultPlan, **run_input: Any) -> Any:
    env = {"S3SPLIT_PROCESSORS": PROBE}
    with local_engine(str(tmp_path), workers=2, env=env, faults=faults,
                      retry_interval_scale=0) as engine:
        run = Run(engine, Storage(), str(tmp_path), name, rows=20)
        outcome = run.start(lanes=2, **run_input)
        return run, outcome, run.events(outcome)


def _failed_errors(histories: list[list[dict[str, Any]]]) -> list[str]:
    return [e["lambdaFunctionFailedEventDetails"]["error"] for events in histories
            for e in events if e["type"] == "LambdaFunctionFailed"]


@pytest.mark.parametrize(("error", "function", "action"), [
    (LAMBDA_SERVICE_EXCEPTION, "s3split-worker", "process"),
    (LAMBDA_TOO_MANY_REQUESTS, "s3split-worker", "process"),
    (LAMBDA_TOO_MANY_REQUESTS, "s3split-splitter", "plan"),
    (LAMBDA_AWS_LAMBDA_EXCEPTION, "s3split-worker", "process"),
    (LAMBDA_SDK_CLIENT_EXCEPTION, "s3split-worker", "process"),
    (LAMBDA_AWS_LAMBDA_EXCEPTION, "s3split-splitter", "summarize"),
])
def test_pipeline_retries_a_lambda_service_error_and_succeeds(
        tmp_path: Path, error: str, function: str, action: str) -> None:
    index = 1 if action == "process" else None
    plan = FaultPlan(lambda_faults=[LambdaFault(error, function=function, action=action,
                                                index=index)])
    run, outcome, histories = _pipeline_run(tmp_path, "svc", plan)
    assert [(i.error, i.function, i.action) for i in plan.injected] == [(error, function, action)]
    assert outcome.succeeded, outcome
    assert _failed_errors(histories) == [error]
    report = run.report
    assert report["chunks_failed"] == 0 and report["rows_ok"] == 20
    if action == "process":
        assert run.status(1)["state"] == "ok"
        assert len([p for p in run.probes() if p["index"] == 1]) == 1  # the handler ran once


def test_pipeline_retries_a_throttled_continue_as_new(tmp_path: Path) -> None:
    plan = FaultPlan(start_execution_faults=[StartExecutionFault(SFN_THROTTLED)])
    # Two lanes with room for one worst-case iteration each: every few chunks continue as new.
    env = {"S3SPLIT_PROCESSORS": PROBE, "S3SPLIT_EVENT_BUDGET": str(2 * WORST_ITERATION + 40)}
    with local_engine(str(tmp_path), workers=2, env=env, faults=plan,
                      retry_interval_scale=0) as engine:
        run = Run(engine, Storage(), str(tmp_path), "cont", rows=200)
        outcome = run.start(lanes=2)
    assert plan.injected and plan.injected[0].error == SFN_THROTTLED
    assert outcome.succeeded, outcome
    assert len(outcome.executions) > 1
    assert run.report["rows_ok"] == 200
