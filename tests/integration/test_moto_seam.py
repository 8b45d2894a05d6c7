"""The moto seam: real ASL on moto's interpreter, Lambda Tasks in worker processes; Lambda
and ``states:startExecution`` tasks that call moto's backends directly answer as the boto3
round trip does.

Handlers live in ``tests/support/seam_handlers.py``. Workers are forked from a fresh
interpreter (the fork server), so they import it by module name from ``extra_sys_path`` below --
independent of pytest's import mode.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from s3split.engine.lambda_runtime import (
    CRASH_ERROR_TYPE,
    TIMEOUT_ERROR_TYPE,
    FunctionError,
    ProcessDispatcher,
)
from s3split.engine.moto_seam import install
from s3split.engine.routing import DirectLambda, DirectStates, moto_config
from tests.support.seam import (
    LAMBDA_INVOKE,
    MODULE,
    REGION,
    ROLE,
    SYS_PATH,
    create,
    fn_arn,
    history,
    moto_sfn,
    seam_fixtures,
    wait_for_execution,
)

pytestmark = pytest.mark.timeout(120)
START = "arn:aws:states:::states:startExecution"


def invoke_task(function: str, **extra: Any) -> dict[str, Any]:
    """An ``arn:aws:states:::lambda:invoke`` Task whose output is the handler result."""
    return {
        "Type": "Task",
        "Resource": LAMBDA_INVOKE,
        "Parameters": {"FunctionName": function, "Payload.$": "$"},
        "ResultSelector": {"result.$": "$.Payload"},
        "OutputPath": "$.result",
        **extra,
    }


dispatcher, sfn = seam_fixtures(max_workers=3, timeouts={"sleepy": 1.0, "deaf": 0.5, "echo": 30.0})


def run(sfn: Any, definition: dict[str, Any], payload: Any, timeout: float = 30) -> dict[str, Any]:
    arn = create(sfn, definition)
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload))
    return wait_for_execution(sfn, execution["executionArn"], timeout)


def succeeded(described: dict[str, Any]) -> Any:
    assert described["status"] == "SUCCEEDED", (described.get("error"), described.get("cause"))
    return json.loads(described["output"])


def failures(sfn: Any, execution_arn: str) -> list[str]:
    """Error names of failed task attempts, in order."""
    names = []
    for event in history(sfn, execution_arn):
        for key in ("taskFailedEventDetails", "lambdaFunctionFailedEventDetails"):
            if key in event:
                names.append(event[key]["error"])
    return names


# (a) -----------------------------------------------------------------------


def test_payload_round_trips_through_a_worker_process(
    sfn: Any, dispatcher: ProcessDispatcher
) -> None:
    definition = {
        "StartAt": "ByArn",
        "States": {
            # Resource = function ARN style ...
            "ByArn": {
                "Type": "Task",
                "Resource": fn_arn("echo"),
                "ResultPath": "$.by_arn",
                "Next": "ByInvoke",
            },
            # ... and the optimised lambda:invoke integration (name:qualifier form).
            "ByInvoke": {
                "Type": "Task",
                "Resource": LAMBDA_INVOKE,
                "Parameters": {"FunctionName": "echo:live", "Payload": {"chunk.$": "$.chunk"}},
                "ResultSelector": {"result.$": "$.Payload"},
                "ResultPath": "$.by_invoke",
                "End": True,
            },
        },
    }
    output = succeeded(run(sfn, definition, {"chunk": 7}))

    by_arn, by_invoke = output["by_arn"], output["by_invoke"]["result"]
    assert by_arn["echo"] == {"chunk": 7}
    assert by_invoke["echo"] == {"chunk": 7}
    for result in (by_arn, by_invoke):
        assert result["function_name"] == "echo"
        assert result["arn"] == fn_arn("echo")
        assert result["pid"] != os.getpid()
        assert result["pid"] in dispatcher.worker_pids
        assert 0 < result["remaining_ms"] <= 30_000


# (b) -----------------------------------------------------------------------


def test_custom_exception_is_caught_by_name(sfn: Any) -> None:
    definition = {
        "StartAt": "Validate",
        "States": {
            "Validate": invoke_task(
                "validate",
                Catch=[{"ErrorEquals": ["ChunkInvalid"], "ResultPath": "$.error", "Next": "Bad"}],
                End=True,
            ),
            "Bad": {"Type": "Pass", "End": True},
        },
    }
    output = succeeded(run(sfn, definition, {"chunk": 7}))

    assert output["error"]["Error"] == "ChunkInvalid"
    cause = json.loads(output["error"]["Cause"])
    assert cause["errorType"] == "ChunkInvalid"
    assert cause["errorMessage"] == "chunk 7 has a bad header"
    assert cause["stackTrace"]  # the worker's traceback travels in the Cause


# (c) -----------------------------------------------------------------------


def test_transient_error_is_retried_then_succeeds(sfn: Any, tmp_path: Path) -> None:
    retry = [{"ErrorEquals": ["TransientError"], "IntervalSeconds": 1, "MaxAttempts": 2}]
    definition = {
        "StartAt": "Flaky",
        "States": {
            "Flaky": {"Type": "Task", "Resource": fn_arn("flaky"), "Retry": retry, "End": True}
        },
    }
    described = run(sfn, definition, {"counter": str(tmp_path / "n"), "failures": 1})

    assert succeeded(described) == {"attempt": 2}
    assert failures(sfn, described["executionArn"]) == ["TransientError"]


# (d) -----------------------------------------------------------------------


def test_map_lanes_run_concurrently_in_distinct_processes(sfn: Any, tmp_path: Path) -> None:
    definition = {
        "StartAt": "Lanes",
        "States": {
            "Lanes": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 2,
                "ItemSelector": {
                    "item.$": "$$.Map.Item.Value",
                    "dir.$": "$.dir",
                    "sleep.$": "$.sleep",
                },
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Lane",
                    "States": {"Lane": invoke_task("lane", End=True)},
                },
                "End": True,
            }
        },
    }
    payload = {"items": [0, 1, 2, 3], "dir": str(tmp_path), "sleep": 0.8}
    output = succeeded(run(sfn, definition, payload))

    assert [lane["item"] for lane in output] == [0, 1, 2, 3]
    lanes = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("lane-*.json"))]
    assert len(lanes) == 4

    def running_at(t: float) -> list[dict[str, Any]]:
        return [lane for lane in lanes if lane["start"] <= t < lane["end"]]

    peak = max(len(running_at(lane["start"])) for lane in lanes)
    # The dispatcher has 3 workers, so a peak of exactly 2 is moto honouring MaxConcurrency.
    assert peak == 2
    for lane in lanes:
        for other in running_at(lane["start"]):
            if other is not lane:
                assert other["pid"] != lane["pid"]


# (e) -----------------------------------------------------------------------


def test_start_execution_with_pascal_case_parameters_continues_as_new(sfn: Any) -> None:
    definition = {
        "StartAt": "Work",
        "States": {
            "Work": invoke_task("generation", Next="Done?"),
            "Done?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.done", "BooleanEquals": True, "Next": "Finished"}],
                "Default": "ContinueAsNew",
            },
            "ContinueAsNew": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution",
                "Parameters": {
                    "StateMachineArn.$": "$$.StateMachine.Id",
                    # A JSON object, as in real ASL; AWS serialises it.
                    "Input": {"generation.$": "$.generation", "last.$": "$.last"},
                },
                "End": True,
            },
            "Finished": {"Type": "Succeed"},
        },
    }
    arn = create(sfn, definition)
    # Unnamed executions: moto would name every one "None" and reject the second.
    first = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"last": 3}))
    chain = [first["executionArn"]]
    while True:
        output = succeeded(wait_for_execution(sfn, chain[-1]))
        if "ExecutionArn" not in output:
            break
        assert isinstance(output["StartDate"], int)  # epoch millis, JSON-safe
        chain.append(output["ExecutionArn"])

    assert output == {"generation": 3, "last": 3, "done": True}
    assert len(chain) == len(set(chain)) == 3
    executions = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert {e["executionArn"] for e in executions} == set(chain)
    assert all(not e["executionArn"].endswith(":None") for e in executions)


# (f) -----------------------------------------------------------------------


def test_killed_worker_is_a_retryable_lambda_failure(
    sfn: Any, dispatcher: ProcessDispatcher, tmp_path: Path
) -> None:
    pids_before = set(dispatcher.worker_pids)
    retry = [{"ErrorEquals": [CRASH_ERROR_TYPE], "IntervalSeconds": 1, "MaxAttempts": 1}]
    definition = {
        "StartAt": "Crash",
        "States": {"Crash": invoke_task("crash_once", Retry=retry, End=True)},
    }
    described = run(sfn, definition, {"counter": str(tmp_path / "n")})

    output = succeeded(described)
    assert output["attempt"] == 2
    assert failures(sfn, described["executionArn"]) == [CRASH_ERROR_TYPE]
    pids_after = set(dispatcher.worker_pids)
    assert len(pids_after) == 3
    assert len(pids_before - pids_after) == 1  # exactly the killed worker was replaced
    assert output["pid"] in pids_after


# (g) -----------------------------------------------------------------------


@pytest.mark.speedups
def test_a_definition_is_parsed_once_and_each_execution_keeps_its_own_state(
        sfn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The program parsed at create serves every start; two executions of it at once, each
    a Map whose lanes wait, give each its own items back. A definition that does not parse
    is refused every time."""
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser

    parses = []
    original = ASLParser.state_machine

    def counted(self: Any) -> Any:
        parses.append(1)
        return original(self)

    monkeypatch.setattr(ASLParser, "state_machine", counted)
    definition = {"Comment": f"parsed once {time.monotonic_ns()}", "StartAt": "Each", "States": {
        "Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 3, "End": True,
                 "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Hold",
                                   "States": {
                                       "Hold": {"Type": "Wait", "Seconds": 1, "Next": "Echo"},
                                       "Echo": {"Type": "Pass", "Parameters": {"v.$": "$"},
                                                "End": True}}}}}}
    arn = create(sfn, definition, name="parsed-once")
    started = [sfn.start_execution(stateMachineArn=arn, input=json.dumps({"items": items}))
               for items in ([1, 2, 3], [10, 20])]
    outputs = [succeeded(wait_for_execution(sfn, s["executionArn"])) for s in started]
    assert outputs == [[{"v": 1}, {"v": 2}, {"v": 3}], [{"v": 10}, {"v": 20}]]
    assert len(parses) == 1
    broken = json.dumps({"StartAt": "Nowhere", "States": {"Here": {"Type": "Pas"}}})
    for _ in range(2):
        with pytest.raises(ClientError, match="ASLParserException"):
            sfn.create_state_machine(name="broken", definition=broken, roleArn=ROLE)


# extras ----------------------------------------------------------------------


def test_timeout_is_enforced_in_the_worker(dispatcher: ProcessDispatcher) -> None:
    started = time.monotonic()
    with pytest.raises(FunctionError) as caught:
        dispatcher("sleepy", {"sleep": 10})
    assert caught.value.error_type == TIMEOUT_ERROR_TYPE
    assert time.monotonic() - started < 5
    assert dispatcher("echo", {"after": "timeout"})["echo"] == {"after": "timeout"}


def test_a_handler_that_returns_after_its_timeout_timed_out(
        dispatcher: ProcessDispatcher) -> None:
    """A handler deaf to SIGALRM that returns within the kill grace still overran its
    timeout: Lambda reports that invocation as timed out, whatever it returned."""
    with pytest.raises(FunctionError) as caught:
        dispatcher("deaf", {"sleep": 0.8})
    assert caught.value.error_type == TIMEOUT_ERROR_TYPE
    assert "timed out after 0.50 seconds" in str(caught.value)
    assert dispatcher("deaf", {"sleep": 0})["slept"] == 0  # within its time: a result


def test_unknown_function_is_resource_not_found(sfn: Any) -> None:
    definition = {"StartAt": "Nope", "States": {"Nope": invoke_task("nope", End=True)}}
    described = run(sfn, definition, {})

    assert described["status"] == "FAILED"
    assert described["error"] == "Lambda.ResourceNotFoundException"


def test_a_worker_has_the_environment_its_dispatcher_had_when_it_started(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers are forked from a fork server started once per process, with the environment
    of that moment: each must still see the dispatcher's own, as a spawned process would."""
    names = ["S3SPLIT_PROBE_A", "S3SPLIT_PROBE_B", "S3SPLIT_PROBE_C"]
    handlers = {"environment": f"{MODULE}:environment"}

    def seen() -> Any:
        with ProcessDispatcher(handlers, max_workers=1, extra_sys_path=SYS_PATH,
                               env={"S3SPLIT_PROBE_C": "given"}) as dispatcher:
            return dispatcher("environment", {"names": names})["env"]

    monkeypatch.setenv("S3SPLIT_PROBE_A", "first")
    first = seen()
    monkeypatch.delenv("S3SPLIT_PROBE_A")
    monkeypatch.setenv("S3SPLIT_PROBE_B", "second")
    second = seen()
    assert first == {"S3SPLIT_PROBE_A": "first", "S3SPLIT_PROBE_B": None,
                     "S3SPLIT_PROBE_C": "given"}
    assert second == {"S3SPLIT_PROBE_A": None, "S3SPLIT_PROBE_B": "second",
                      "S3SPLIT_PROBE_C": "given"}


def _answer(client: Any, function: str, payload: bytes) -> dict[str, Any]:
    """What a Lambda client answered, without what differs by call (request id, headers,
    date): the fields, the payload read, or the error's code, message and HTTP status."""
    try:
        response = dict(client.invoke(FunctionName=fn_arn(function), Payload=payload))
    except ClientError as error:
        return {"error": error.response["Error"],
                "status": error.response["ResponseMetadata"]["HTTPStatusCode"],
                "operation": error.operation_name}
    assert response.pop("ResponseMetadata")["RequestId"]
    payload = json.loads(response.pop("Payload").read())
    if isinstance(payload, dict):
        payload.pop("request_id", None)
        payload.pop("remaining_ms", None)
        payload.pop("pid", None)
    return response | {"payload": payload}


def test_a_lambda_task_gets_the_answers_a_boto3_round_trip_gives(
        dispatcher: ProcessDispatcher) -> None:
    """A Lambda task's client calls moto's Lambda backend directly (DirectLambda): for each
    kind of answer (a result, a function error, an unknown function, a service error the
    engine injects, a request over Lambda's 6 MB), it answers as boto3 through moto does."""
    from botocore.config import Config

    from s3split.engine.faults import FaultPlan, LambdaFault

    throttled = LambdaFault("Lambda.TooManyRequestsException", function="echo", calls=None,
                            action="throttle")
    calls = [("echo", {"action": "hello", "n": 1}), ("validate", {"chunk": 7}),
             ("nope", {}), ("echo", {"action": "throttle"}), ("echo", {"x": "y" * 6_300_000})]
    with mock_aws(config=moto_config()), install(dispatcher, faults=FaultPlan([throttled])):
        boto = boto3.client("lambda", region_name=REGION,
                            config=Config(retries={"max_attempts": 0, "total_max_attempts": 1}))
        direct = DirectLambda(REGION)
        answered = []
        for function, event in calls:
            payload = json.dumps(event).encode()
            boto_answer, direct_answer = (_answer(client, function, payload)
                                          for client in (boto, direct))
            assert direct_answer == boto_answer, function
            answered.append(direct_answer)
    assert [(a.get("StatusCode"), a.get("FunctionError")) for a in answered[:2]] == [
        (200, None), (200, "Unhandled")]
    assert answered[0]["payload"]["echo"] == {"action": "hello", "n": 1}
    assert answered[1]["payload"]["errorType"] == "ChunkInvalid"
    assert [(a["error"]["Code"], a["status"]) for a in answered[2:]] == [
        ("ResourceNotFoundException", 404), ("TooManyRequestsException", 429),
        ("RequestTooLargeException", 413)]


def _started(client: Any, **params: Any) -> dict[str, Any]:
    """What a StartExecution answered, as ``_answer`` reads a Lambda invocation."""
    try:
        response = dict(client.start_execution(**params))
    except ClientError as error:
        return {"error": error.response["Error"],
                "status": error.response["ResponseMetadata"]["HTTPStatusCode"],
                "operation": error.operation_name}
    assert response.pop("ResponseMetadata")["RequestId"]
    started = response.pop("startDate")
    assert started.microsecond % 1000 == 0 and started.utcoffset() is not None
    return response | {"executionArn": response["executionArn"].rsplit(":", 1)[0]}


def test_a_states_task_starts_executions_as_a_boto3_round_trip_does(sfn: Any) -> None:
    """A ``states:startExecution`` task's client starts through moto's backend directly
    (DirectStates): for a start, a start without a name, an idempotent start, a name or an
    input AWS refuses, and an unknown state machine, it answers as boto3 through moto does."""
    machine = create(sfn, {"StartAt": "Hold", "States": {
        "Hold": {"Type": "Wait", "Seconds": 5, "End": True}}}, name="direct-starts")
    missing = machine.replace("direct-starts", "no-such-machine")
    direct = DirectStates(REGION, sfn)
    refused = []
    for params in [
            {"name": "{}-one", "input": '{"a": 1}'}, {"input": "{}"}, {},
            {"name": "held", "input": '{"a": 1}'}, {"name": "held", "input": '{"a": 2}'},
            {"name": "bad name"}, {"name": "{}-big", "input": json.dumps("x" * 300_000)},
            {"name": "{}-not-json", "input": "{"}]:
        answers = []
        for who, client in (("boto3", sfn), ("direct", direct)):
            named = {k: v.format(who) if k == "name" else v for k, v in params.items()}
            answers.append(_started(client, stateMachineArn=machine, **named))
        assert answers[0] == answers[1], params
        refused.append(answers[0].get("error", {}).get("Code"))
    assert refused == [None, None, None, None, "ExecutionAlreadyExists", "InvalidName",
                       "InvalidExecutionInput", "InvalidExecutionInput"], refused
    assert _started(direct, stateMachineArn=missing)["error"]["Code"] == "StateMachineDoesNotExist"
    assert _started(direct, stateMachineArn=missing) == _started(sfn, stateMachineArn=missing)
    assert direct.describe_state_machine(stateMachineArn=machine)["name"] == "direct-starts"


def test_a_second_install_in_the_process_is_refused_as_such(
        sfn: Any, dispatcher: ProcessDispatcher) -> None:
    with pytest.raises(RuntimeError, match=r"already active in this process"), \
            install(dispatcher):
        pass  # pragma: no cover (never entered)
    assert sfn.list_state_machines()["stateMachines"] == []  # the first one still serves


def test_a_response_under_lambdas_6_mb_is_a_result_not_a_size_error() -> None:
    """DirectLambda answers as the boto3 round trip through moto (string, empty, non-JSON
    and unicode payloads, Event and DryRun, qualifiers, every injected service error, the
    request quota) but in one place, by design: moto's HTTP layer turns a response over
    ``sys.getsizeof`` 6,000,000 (6,000,000 - 33 bytes) into ``Function.ResponseSizeTooLarge``,
    where Lambda's limit (and the engine's quota) is 6,291,556 bytes. A 6.1 MB response is a
    result (and a state then fails ``States.DataLimitExceeded``, as on AWS), not a function
    error that ``States.ALL`` catches."""
    size = 6_100_000
    with (ProcessDispatcher({"big": f"{MODULE}:big"}, max_workers=1,
                            extra_sys_path=SYS_PATH) as dispatcher,
          moto_sfn(dispatcher)):
        response = DirectLambda("us-east-1").invoke(
            FunctionName="big", Payload=json.dumps({"bytes": size}).encode())
        body = response["Payload"].read()
    assert (response["StatusCode"], response.get("FunctionError")) == (200, None)
    assert len(body) == size + len('{"pad": ""}')


def ended(sfn: Any, machine: str, inp: Any) -> dict[str, Any]:
    """How an execution of ``machine`` ended: status, output, error and cause."""
    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps(inp))["executionArn"]
    out = wait_for_execution(sfn, arn)
    return {k: out.get(k) for k in ("status", "output", "error", "cause")}


def _scrub(value: Any) -> Any:
    """``value`` without what differs between two starts (request ids, UUIDs, the child's
    name, epoch milliseconds)."""
    import re
    text = json.dumps(value, sort_keys=True)
    text = re.sub(r"Request ID: [0-9a-zA-Z-]+", "Request ID: R", text)
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "U", text)
    text = re.sub(r"child-[db]", "child", text)
    text = re.sub(r"\b1[0-9]{12}\b", "0", text)
    return json.loads(text)


@pytest.mark.parametrize("resource", [START, START + ".sync", START + ".sync:2"])
def test_task_starts_end_as_with_the_boto3_round_trip_for_every_parameter_set(
        sfn: Any, resource: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``states:startExecution`` task (plain, ``.sync``, ``.sync:2``) through DirectStates
    ends as it does through the boto3 round trip, for 16 parameter sets that AWS accepts or
    refuses, the error names a Catch sees included."""
    outputs = []
    for mode in ("d", "b"):
        if mode == "b":
            monkeypatch.setattr(DirectStates, "start_execution",
                                lambda self, **kw: self.client.start_execution(**kw))
        child = create(sfn, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                       name=f"child-{mode}")
        outputs.append(_scrub(ended(sfn, create(sfn, _parent(child, resource),
                                                   name=f"parent-{mode}"), {})))
    d, b = outputs
    if d != b:
        do, bo = json.loads(d["output"] or "{}"), json.loads(b["output"] or "{}")
        diff = {k: (do.get(k), bo.get(k)) for k in set(do) | set(bo) if do.get(k) != bo.get(k)}
        pytest.fail(json.dumps(diff, indent=1)[:4000] + json.dumps([d, b])[:1000])


def _parent(child: str, resource: str) -> dict[str, Any]:
    """A definition that starts ``child`` through ``resource`` with each parameter set in
    turn, catching every error into the state."""
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
