"""What starts a run and what raises an alert: the S3 "Object Created" rule (its pattern evaluated
by moto's EventBridge), the schedule, the failure rule and the failed-chunks alarm.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.events.models import EventPattern

from s3split.deployment import Deployment
from s3split.pipeline.inputs import BatchStart, normalize
from s3split.pipeline.spec import parse_event
from s3split.storage import Storage
from tests.support.template import BUCKET, EVENTS, STACK, TEMPLATE_DOC, Stack

# -- starting runs -----------------------------------------------------------------------------


def test_an_upload_event_plans_a_run_under_the_work_prefix(stack: Stack) -> None:
    deployment = Deployment.from_env(stack.function_env("SplitterFunction"))
    event = json.loads((EVENTS / "s3_object_created.json").read_text())
    planned = normalize(event, deployment, Storage())
    assert planned["mode"] == "run"
    assert planned["run"]["source"] == f"s3://{BUCKET}/incoming/orders.csv"
    assert planned["run"]["location"] == f"s3://{BUCKET}/runs/incoming/orders.csv"


def test_the_schedule_starts_a_batch_of_the_input_prefix_disabled_by_default(
        stack: Stack) -> None:
    schedule = stack.props("PipelineStateMachine")["Events"]["BatchImport"]
    assert schedule["Type"] == "ScheduleV2"
    assert schedule["Properties"]["State"] == "DISABLED"
    assert schedule["Properties"]["ScheduleExpression"] == stack.params["ScheduleExpression"]
    start = json.loads(schedule["Properties"]["Input"])
    assert parse_event(start, BatchStart).prefix == f"s3://{BUCKET}/incoming/"
    # SAM names a ScheduleV2 schedule <machine><event> unless told otherwise: a second stack
    # in the account and region would collide with it.
    assert schedule["Properties"].get("OmitName") is True and "Name" not in schedule["Properties"]


# -- alerts ------------------------------------------------------------------------------------


def status_change(status: str, machine: str) -> dict[str, Any]:
    return {"source": "aws.states", "detail-type": "Step Functions Execution Status Change",
            "detail": {"status": status, "stateMachineArn": machine,
                       "executionArn": f"{machine.replace(':stateMachine:', ':execution:')}:x",
                       "input": json.dumps({"source": f"s3://{BUCKET}/incoming/a.csv"}),
                       "error": "ToleratedFailuresExceeded", "cause": "1 of 2 chunks failed"}}


@pytest.mark.parametrize("email", ["", "ops@example.com"])
def test_failed_runs_and_failed_chunks_reach_the_alert_topic_and_only_it(email: str) -> None:
    stack = Stack(TEMPLATE_DOC, AlertEmail=email)
    topic = stack.props("AlertTopic")
    assert topic.get("Subscription", []) == ([{"Protocol": "email", "Endpoint": email}]
                                             if email else [])
    rule = stack.props("RunFailedRule")
    machine = stack.ref("PipelineStateMachine")
    assert rule["EventPattern"]["detail"] == {"status": ["FAILED", "TIMED_OUT", "ABORTED"],
                                              "stateMachineArn": [machine]}
    (target,) = rule["Targets"]
    assert target["Arn"] == stack.ref("AlertTopic") and "RoleArn" not in target
    transformer = target["InputTransformer"]
    assert transformer["InputPathsMap"]["input"] == "$.detail.input"  # names the source
    assert "<input>" in transformer["InputTemplate"]
    alarm = stack.props("FailedChunksAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("s3split", "FailedChunks")
    env = stack.function_env("WorkerFunction")
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == alarm["Namespace"]
    # Powertools' only dimension is the service: this stack's name, so not another stack's.
    assert alarm["Dimensions"] == [{"Name": "service", "Value": STACK}]
    assert env["POWERTOOLS_SERVICE_NAME"] == STACK
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert alarm["AlarmActions"] == [stack.ref("AlertTopic")]
    policy = stack.props("AlertTopicPolicy")
    assert policy["Topics"] == [stack.ref("AlertTopic")]
    publishers = {(st["Principal"]["Service"], st["Action"], st["Resource"],
                   st["Condition"]["ArnEquals"]["aws:SourceArn"])
                  for st in policy["PolicyDocument"]["Statement"]}
    assert publishers == {
        ("events.amazonaws.com", "sns:Publish", "AlertTopic", stack.getatt("RunFailedRule", "Arn")),
        ("cloudwatch.amazonaws.com", "sns:Publish", "AlertTopic",
         stack.getatt("FailedChunksAlarm", "Arn"))}


def test_the_failure_rule_matches_bad_endings_of_this_machine_only(stack: Stack) -> None:
    pattern = EventPattern.load(json.dumps(stack.props("RunFailedRule")["EventPattern"]))
    machine = stack.ref("PipelineStateMachine")

    def matches(event: dict[str, Any]) -> bool:
        return bool(pattern.matches_event(event))  # type: ignore[arg-type]

    for status in ("FAILED", "TIMED_OUT", "ABORTED"):
        assert matches(status_change(status, machine)), status
    assert not matches(status_change("SUCCEEDED", machine))
    assert not matches(status_change("FAILED", machine + "-other"))


# -- the S3 event pattern, on moto's EventBridge (the eventbridge fixture) ---------------------


def s3_event(key: str, bucket: str = BUCKET, detail_type: str = "Object Created") -> dict[str, Any]:
    event = json.loads((EVENTS / "s3_object_created.json").read_text())
    event["detail"]["object"]["key"] = key
    event["detail"]["bucket"]["name"] = bucket
    event["detail-type"] = detail_type
    return dict(event)


def test_the_sample_upload_event_starts_a_run(eventbridge: Any) -> None:
    event = json.loads((EVENTS / "s3_object_created.json").read_text())
    assert event["detail"]["object"]["key"] == "incoming/orders.csv"
    assert eventbridge(event)


@pytest.mark.parametrize(("key", "starts"), [
    ("incoming/orders.csv", True),
    ("incoming/orders.csv.gz", True),
    ("incoming/orders.csv.zst", True),
    ("incoming/2026/11/orders.csv", True),
    ("other/orders.csv", False),  # outside the input prefix
    ("orders.csv", False),
    ("runs/incoming/orders.csv/chunks/part-00000.csv", False),  # our own chunks
    ("xincoming/orders.csv", False),
    ("incoming/orders.txt", False),
    ("incoming/orders.csv.bak", False),
    ("incoming/", False),
])
def test_the_pattern_matches_csv_keys_under_the_input_prefix_only(
        eventbridge: Any, key: str, starts: bool) -> None:
    assert eventbridge(s3_event(key)) is starts


def test_the_pattern_ignores_other_buckets_and_deletions(eventbridge: Any) -> None:
    assert not eventbridge(s3_event("incoming/orders.csv", bucket="elsewhere"))
    assert not eventbridge(s3_event("incoming/orders.csv", detail_type="Object Deleted"))
