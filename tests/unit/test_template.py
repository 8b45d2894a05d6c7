"""template.yaml: what `sam validate --lint` and cfn-lint cannot know.

- every ${Placeholder} of the ASL has a DefinitionSubstitutions entry and the reverse;
- the functions' environment is one the code accepts, and agrees with how runs are started;
- least privilege, read from the IAM statements themselves (and, through SAM's own translator,
  the roles SAM generates for the triggers);
- the S3 "Object Created" pattern, evaluated by moto's EventBridge;
- each Handler imports from the code and layer packaged as SAM packages them, in a clean
  interpreter that sees nothing else.

The template is read with a YAML loader that turns CloudFormation's short tags into their
long forms; ``Stack`` resolves them with the parameters' defaults and a bucket named ``data``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws
from moto.events.models import EventPattern

from s3split.config import Deployment, parse_tolerance
from s3split.engine.local import placeholders, render_definition
from s3split.pipeline.batch import result_writer_substitutions
from s3split.pipeline.inputs import BatchStart, normalize, parse_event
from s3split.processors.check import check_processor
from s3split.sizes import parse_size
from s3split.storage import Storage

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
EVENTS = REPO / "tests" / "events"
SAM_PYTHON = REPO / ".venv" / "sam-cli" / "bin" / "python"  # made by `make template-check`
LAYER_CACHE = REPO / ".aws-sam" / "handler-check"  # .aws-sam/ is gitignored
BUCKET, REGION, ACCOUNT, STACK = "data", "us-east-1", "123456789012", "s3split"
NO_VALUE = object()


# -- reading the template -----------------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt, !If, ...)."""


def _short_tag(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _short_tag)


def load_template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)  # CfnLoader is a SafeLoader


class Stack:
    """The template with parameters filled in, intrinsic functions resolved as CloudFormation
    would, and names for what only exists once deployed."""

    def __init__(self, template: dict[str, Any], **parameters: str) -> None:
        self.template = template
        self.params = {name: str(spec.get("Default", ""))
                       for name, spec in template["Parameters"].items()}
        unknown = set(parameters) - set(self.params)
        assert not unknown, f"no such parameters: {unknown}"
        self.params.update(parameters)
        self.conditions = {name: self.value(expr)
                           for name, expr in template.get("Conditions", {}).items()}

    def resources(self, kind: str | None = None) -> dict[str, dict[str, Any]]:
        """Resources that exist with these parameters (their Condition holds)."""
        return {name: res for name, res in self.template["Resources"].items()
                if (kind is None or res["Type"] == kind)
                and self.conditions.get(res.get("Condition", ""), True)}

    def props(self, name: str) -> dict[str, Any]:
        return dict(self.value(self.template["Resources"][name].get("Properties", {})))

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in map(self.value, node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition":
                return self.conditions[arg]
            if key == "Fn::GetAtt":
                return self.getatt(*arg)
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::If":
                name, then, otherwise = arg
                return self.value(then if self.conditions[name] else otherwise)
            if key == "Fn::Equals":
                return self.value(arg[0]) == self.value(arg[1])
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key.startswith("Fn::"):
                raise NotImplementedError(key)
        resolved = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def ref(self, name: str) -> Any:
        pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                  "AWS::StackName": STACK, "AWS::NoValue": NO_VALUE}
        if name in pseudo:
            return pseudo[name]
        if name in self.params:
            return self.params[name]
        kind = self.template["Resources"][name]["Type"]
        if kind == "AWS::S3::Bucket":
            return BUCKET
        if kind == "AWS::Serverless::StateMachine":
            return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
        if kind == "AWS::DynamoDB::Table":
            return self.props(name)["TableName"]
        return name

    def getatt(self, name: str, attribute: str) -> str:
        kind = self.template["Resources"][name]["Type"]
        if (kind, attribute) == ("AWS::Serverless::StateMachine", "Name"):
            return name
        assert attribute == "Arn", attribute
        arns = {
            "AWS::S3::Bucket": f"arn:aws:s3:::{BUCKET}",
            "AWS::Serverless::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{name}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{self.ref(name)}",
            "AWS::Events::Rule": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}",
            "AWS::CloudWatch::Alarm": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
        }
        return arns[kind]

    def sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else arg

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.value(variables[name]))
            if "." in name:
                return self.getatt(*name.split(".", 1))
            return str(self.ref(name))

        return re.sub(r"\$\{([^!}][^}]*)\}", one, text)

    def function_env(self, name: str) -> dict[str, str]:
        """Globals' variables overlaid by the function's own, as SAM merges them."""
        globals_env = self.value(self.template["Globals"]["Function"]["Environment"]["Variables"])
        own = self.props(name).get("Environment", {}).get("Variables", {})
        return {k: str(v) for k, v in (globals_env | own).items()}


TEMPLATE_DOC = load_template()
FUNCTIONS = sorted(name for name, res in TEMPLATE_DOC["Resources"].items()
                   if res["Type"] == "AWS::Serverless::Function")


@pytest.fixture
def stack() -> Stack:
    return Stack(TEMPLATE_DOC)


# -- shape -------------------------------------------------------------------------------------


def test_functions_run_on_a_current_python_on_arm64(stack: Stack) -> None:
    function_globals = TEMPLATE_DOC["Globals"]["Function"]
    match = re.fullmatch(r"python3\.(\d+)", function_globals["Runtime"])
    assert match and int(match.group(1)) >= 12
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Tracing"] == "Active"
    assert FUNCTIONS == ["IteratorFunction", "SplitterFunction", "WorkerFunction"]
    for name in FUNCTIONS:
        props = stack.props(name)
        assert "Runtime" not in props and "Architectures" not in props  # one runtime for all
        env = stack.function_env(name)
        assert env["POWERTOOLS_SERVICE_NAME"] == "s3split"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "s3split"
        assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"
    splitter, iterator = stack.props("SplitterFunction"), stack.props("IteratorFunction")
    assert splitter["Timeout"] == 900  # the maximum; the split resumes in the next invocation
    assert int(stack.function_env("SplitterFunction")["S3SPLIT_SPLIT_SAFETY_MS"]) < 900_000
    assert iterator["Timeout"] <= 30 and iterator["MemorySize"] <= 256


def test_each_handler_names_a_module_in_its_code(stack: Stack) -> None:
    for name in FUNCTIONS:
        props = stack.props(name)
        module, _, function = props["Handler"].rpartition(".")
        code = REPO / props["CodeUri"]
        assert (code / f"{module.replace('.', '/')}.py").is_file(), props
        assert f"def {function}(" in (code / f"{module}.py").read_text()


def test_parameters_have_sane_defaults(stack: Stack) -> None:
    params = stack.params
    assert parse_size(params["ChunkSize"]) == 64 * 1024 * 1024
    assert 1 <= int(params["Lanes"]) <= 40
    assert params["WaitSeconds"] == "0"
    assert params["Processor"] == "jsonl"
    assert parse_tolerance(f"{params['ToleratedFailurePercent']}%") == (None, 0.0)
    assert params["InputPrefix"] == "incoming/"
    assert params["ScheduleState"] == "DISABLED"
    assert params["ScheduleExpression"].startswith(("cron(", "rate("))
    assert params["ImportTableName"] == ""  # no table unless asked for
    assert stack.resources("AWS::DynamoDB::Table") == {}
    assert "ImportTable" in Stack(TEMPLATE_DOC, ImportTableName="orders").resources()


def test_the_range_split_settings_reach_the_splitter_only() -> None:
    """RangeSplitFrom and RangeConcurrency become the splitter's Deployment (Plan chooses the
    range split, PlanRanges and Combine hand the Maps their MaxConcurrency)."""
    assert TEMPLATE_DOC["Parameters"]["RangeSplitFrom"]["AllowedPattern"] == \
        TEMPLATE_DOC["Parameters"]["ChunkSize"]["AllowedPattern"]
    default = Deployment.from_env(Stack(TEMPLATE_DOC).function_env("SplitterFunction"))
    assert (default.range_split_from, default.range_concurrency) == (1024 ** 3, 100)
    stack = Stack(TEMPLATE_DOC, RangeSplitFrom="5GB", RangeConcurrency="7")
    chosen = Deployment.from_env(stack.function_env("SplitterFunction"))
    assert (chosen.range_split_from, chosen.range_concurrency) == (5 * 10 ** 9, 7)
    for name in ("WorkerFunction", "IteratorFunction"):
        assert not {k for k in stack.function_env(name) if k.startswith("S3SPLIT_RANGE")}


@pytest.mark.parametrize(("value", "ok"), [
    ("64MiB", True), ("500KB", True), ("97", True), ("1.5G", True), ("2gib", True),
    ("64 MiB", False), ("MiB", False), ("-1", False), ("64XB", False), ("", False)])
def test_the_chunk_size_pattern_admits_what_the_code_parses(value: str, ok: bool) -> None:
    pattern = TEMPLATE_DOC["Parameters"]["ChunkSize"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is ok
    if ok:
        assert parse_size(value) > 0


@pytest.mark.parametrize(("prefix", "ok"), [
    ("incoming/", True), ("data/in/", True), ("in.coming/", True),
    ("runs/", False), ("runs/x/", False), ("incoming", False), ("", False), ("/", False),
    ("in*/", False), ("in\\x/", False), ("in coming/", False)])
def test_the_input_prefix_is_a_folder_outside_the_work_prefix(prefix: str, ok: bool) -> None:
    pattern = TEMPLATE_DOC["Parameters"]["InputPrefix"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, prefix)) is ok


def test_the_data_bucket_is_private_encrypted_and_sends_events(stack: Stack) -> None:
    bucket = stack.props("DataBucket")
    sse = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["NotificationConfiguration"]["EventBridgeConfiguration"] == \
        {"EventBridgeEnabled": True}
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    chunks = rules["ExpireChunks"]
    assert chunks["Status"] == "Enabled" and chunks["Prefix"] == "runs/"
    assert chunks["ExpirationInDays"] == stack.params["ChunkRetentionDays"]
    assert chunks["TagFilters"] == [{"Key": "s3split-object", "Value": "chunk"}]
    assert rules["AbortIncompleteUploads"]["AbortIncompleteMultipartUpload"]
    policy = stack.props("DataBucketPolicy")
    assert policy["Bucket"] == BUCKET
    (deny,) = policy["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert sorted(deny["Resource"]) == [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_data_bucket_is_versioned_and_expires_earlier_versions(stack: Stack) -> None:
    """A split reads the version it started from (VersionId), so an upload over its key cannot
    mix two versions; what versioning keeps expires after NoncurrentVersionDays, bucket-wide."""
    bucket = stack.props("DataBucket")
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    noncurrent = rules["ExpireNoncurrentVersions"]
    assert noncurrent == {"Id": "ExpireNoncurrentVersions", "Status": "Enabled",
                          "NoncurrentVersionExpiration": {"NoncurrentDays": "7"},
                          "ExpiredObjectDeleteMarker": True}
    shorter = Stack(TEMPLATE_DOC, NoncurrentVersionDays="2").props("DataBucket")
    assert {"NoncurrentDays": "2"} in [rule.get("NoncurrentVersionExpiration") for rule in
                                       shorter["LifecycleConfiguration"]["Rules"]]
    assert TEMPLATE_DOC["Parameters"]["NoncurrentVersionDays"]["MinValue"] == 1


def test_the_state_machine_is_standard_logged_and_traced(stack: Stack) -> None:
    machine = stack.props("PipelineStateMachine")
    assert machine["Type"] == "STANDARD"
    assert machine["Logging"]["Level"] in ("ALL", "ERROR", "FATAL")
    (destination,) = machine["Logging"]["Destinations"]
    assert destination["CloudWatchLogsLogGroup"]["LogGroupArn"].endswith(
        ":log-group:StateMachineLogGroup:*")
    assert stack.props("StateMachineLogGroup")["LogGroupName"].startswith("/aws/vendedlogs/")
    assert machine["Tracing"] == {"Enabled": True}
    outputs = stack.value(TEMPLATE_DOC["Outputs"])
    assert outputs["DataBucketName"]["Value"] == BUCKET
    assert outputs["StateMachineArn"]["Value"] == stack.ref("PipelineStateMachine")


def test_every_placeholder_has_a_substitution_and_every_substitution_is_used(
        stack: Stack) -> None:
    machine = stack.props("PipelineStateMachine")
    asl = (REPO / machine["DefinitionUri"]).read_text()
    substitutions = machine["DefinitionSubstitutions"]
    assert placeholders(asl) == set(substitutions)
    assert substitutions == {
        f"{name.removesuffix('Function')}FunctionArn": stack.getatt(name, "Arn")
        for name in FUNCTIONS} | result_writer_substitutions(f"s3://{BUCKET}/runs")
    resources = set()

    def tasks(states: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for state in states.values():
            if state["Type"] == "Task":
                yield state
            if "ItemProcessor" in state:
                yield from tasks(state["ItemProcessor"]["States"])

    for task in tasks(json.loads(render_definition(substitutions, asl))["States"]):
        resources.add(task["Resource"])
    functions = {v for k, v in substitutions.items() if k.endswith("FunctionArn")}
    assert resources == {*functions, "arn:aws:states:::states:startExecution"}


def test_a_chunk_in_progress_is_retried_past_the_workers_timeout(stack: Stack) -> None:
    """An attempt killed mid-chunk holds its idempotency record until its time limit."""
    asl = json.loads((REPO / stack.props("PipelineStateMachine")["DefinitionUri"]).read_text())
    work = asl["States"]["Lanes"]["ItemProcessor"]["States"]["Work"]
    (retrier,) = [r for r in work["Retry"] if "ChunkInProgress" in r["ErrorEquals"]]
    assert retrier["ErrorEquals"] == ["ChunkInProgress"]
    waited = sum(retrier["IntervalSeconds"] * retrier.get("BackoffRate", 2.0) ** attempt
                 for attempt in range(retrier["MaxAttempts"]))
    assert waited > stack.props("WorkerFunction")["Timeout"], waited


def test_the_layer_is_built_once_for_the_runtime_and_architecture(stack: Stack) -> None:
    function_globals = TEMPLATE_DOC["Globals"]["Function"]
    assert function_globals["Layers"] == [{"Ref": "SharedLayer"}]
    layer = TEMPLATE_DOC["Resources"]["SharedLayer"]
    assert layer["Properties"]["CompatibleRuntimes"] == [function_globals["Runtime"]]
    assert layer["Properties"]["CompatibleArchitectures"] == function_globals["Architectures"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^build-SharedLayer:", makefile, re.MULTILINE)
    flags = re.search(r"^LAYER_PIP_FLAGS \?=((?:.*\\\n)*.*)$", makefile, re.MULTILINE)
    assert flags, "Makefile: LAYER_PIP_FLAGS"
    assert "--platform manylinux2014_aarch64" in flags.group(1)
    assert f"--python-version {function_globals['Runtime'].removeprefix('python')}" in \
        flags.group(1)


# -- the environment the functions run with ---------------------------------------------------


def test_the_functions_environment_is_one_the_code_accepts(stack: Stack) -> None:
    for name in FUNCTIONS:
        deployment = Deployment.from_env(stack.function_env(name))
        assert deployment.work_location == f"s3://{BUCKET}/runs"
        assert deployment.allowed_buckets == {BUCKET}
        assert not deployment.allow_local
        assert not deployment.run_from_input  # an input never chooses where a run writes
        assert deployment.chunk_size == parse_size(stack.params["ChunkSize"])
        parse_tolerance(deployment.tolerate)
    worker = stack.function_env("WorkerFunction")
    assert worker["S3SPLIT_DYNAMODB_TABLE"] == ""
    with_table = Stack(TEMPLATE_DOC, ImportTableName="orders").function_env("WorkerFunction")
    assert with_table["S3SPLIT_DYNAMODB_TABLE"] == "orders"


PROCESSOR_CONFIG = ("S3SPLIT_DYNAMODB_TABLE", "S3SPLIT_DYNAMODB_TYPES", "S3SPLIT_SCHEMA")
SCHEMA_PARAMETER = json.dumps({"columns": {"id": {"type": "int", "required": True}}})


@pytest.mark.parametrize("parameters", [
    {},
    {"Processor": "validate", "ValidateSchema": SCHEMA_PARAMETER},
    {"Processor": "dynamodb", "ImportTableName": "orders",
     "ImportTableColumnTypes": '{"price": "N"}'},
])
def test_plan_sees_the_processor_configuration_the_worker_runs_with(
        parameters: dict[str, str]) -> None:
    """Plan (the splitter function) checks the processor's configuration before splitting:
    it must see exactly what the worker will, and the stack's processor must pass."""
    stack = Stack(TEMPLATE_DOC, **parameters)
    splitter, worker = (stack.function_env(name) for name in ("SplitterFunction",
                                                               "WorkerFunction"))
    assert {k: splitter[k] for k in PROCESSOR_CONFIG} == {k: worker[k] for k in PROCESSOR_CONFIG}
    check_processor(Deployment.from_env(splitter).processor, splitter)
    assert "S3SPLIT_IDEMPOTENCY_TABLE" not in splitter  # the worker's alone


def test_only_the_worker_may_touch_dynamodb() -> None:
    """The splitter knows the import table's name, for Plan's check; it is granted nothing."""
    stack = Stack(TEMPLATE_DOC, Processor="dynamodb", ImportTableName="orders",
                  Idempotency="Enabled")
    touching = {role for role, role_grants in grants(stack).items()
                for action, _, _ in role_grants if action.startswith("dynamodb:")}
    assert touching == {"WorkerRole"}


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


# -- the S3 event pattern, on moto's EventBridge ------------------------------------------------


def s3_event(key: str, bucket: str = BUCKET, detail_type: str = "Object Created") -> dict[str, Any]:
    event = json.loads((EVENTS / "s3_object_created.json").read_text())
    event["detail"]["object"]["key"] = key
    event["detail"]["bucket"]["name"] = bucket
    event["detail-type"] = detail_type
    return dict(event)


@pytest.fixture(scope="module")
def eventbridge() -> Iterator[Any]:
    """A rule with the template's pattern on moto's EventBridge, delivering to a queue; the
    fixture's value tells whether an event reached the queue."""
    rule = Stack(TEMPLATE_DOC).props("PipelineStateMachine")["Events"]["ObjectCreated"]
    assert rule["Type"] == "EventBridgeRule"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": REGION}
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
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


# -- least privilege ---------------------------------------------------------------------------

# Actions AWS grants on no narrower resource than "*".
STAR_ONLY = {
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    # Step Functions' log delivery to CloudWatch Logs
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
}
S3_READ = {"s3:GetObject", "s3:GetObjectVersion"}
S3_WRITE = {"s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject", "s3:AbortMultipartUpload"}
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
INPUT = f"{BUCKET_ARN}/incoming/*"
RUNS = f"{BUCKET_ARN}/runs/*"
EXECUTIONS = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:PipelineStateMachine:*"
CHILDREN = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:PipelineStateMachine/*"  # a Map Run's


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants(stack: Stack) -> dict[str, list[tuple[str, str, str]]]:
    """(action, resource, condition as JSON) of every Allow, by role; Deny statements refuse."""
    raw: dict[str, list[Any]] = {}
    for name, res in stack.resources().items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            assert "ManagedPolicyArns" not in props, f"{name}: managed policies are opaque"
            assert "PermissionsBoundary" not in props
            raw.setdefault(name, [])
            for policy in props.get("Policies", []):
                raw[name].append(policy["PolicyDocument"])
        elif res["Type"] in ("AWS::IAM::RolePolicy", "AWS::IAM::Policy"):
            roles = [props["RoleName"]] if "RoleName" in props else props["Roles"]
            for role in roles:
                raw.setdefault(role["Ref"], []).append(props["PolicyDocument"])
        elif res["Type"].startswith("AWS::Serverless::"):
            assert "Policies" not in props, f"{name}: give it an explicit role"
    result: dict[str, list[tuple[str, str, str]]] = {}
    for role, documents in raw.items():
        result[role] = []
        for document in stack.value(documents):
            for statement in document["Statement"]:
                assert "NotAction" not in statement and "NotResource" not in statement
                if statement["Effect"] != "Allow":
                    continue
                condition = json.dumps(statement.get("Condition"), sort_keys=True)
                result[role].extend((action, resource, condition)
                                    for action in _as_list(statement["Action"])
                                    for resource in _as_list(statement["Resource"]))
    return result


@pytest.fixture(params=["no table", "with table"])
def granted(request: pytest.FixtureRequest) -> tuple[Stack, dict[str, list[tuple[str, str, str]]]]:
    parameters = {"ImportTableName": "orders"} if request.param == "with table" else {}
    stack = Stack(TEMPLATE_DOC, **parameters)
    return stack, grants(stack)


def on(role_grants: list[tuple[str, str, str]], actions: set[str]) -> set[tuple[str, str]]:
    return {(resource, condition) for action, resource, condition in role_grants
            if action in actions}


def test_each_principal_has_a_role_of_its_own(stack: Stack) -> None:
    assert stack.props("SplitterFunction")["Role"] == stack.getatt("SplitterRole", "Arn")
    assert stack.props("IteratorFunction")["Role"] == stack.getatt("IteratorRole", "Arn")
    assert stack.props("WorkerFunction")["Role"] == stack.getatt("WorkerRole", "Arn")
    assert stack.props("PipelineStateMachine")["Role"] == stack.getatt("StateMachineRole", "Arn")
    for name in ("SplitterRole", "IteratorRole", "WorkerRole"):
        (trust,) = stack.props(name)["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
    (trust,) = stack.props("StateMachineRole")["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "states.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_no_wildcard_actions_and_star_resources_only_where_aws_has_no_narrower(
        granted: tuple[Stack, dict[str, list[tuple[str, str, str]]]]) -> None:
    _, by_role = granted
    for role, role_grants in by_role.items():
        for action, resource, _ in role_grants:
            assert "*" not in action, (role, action)
            assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9]+", action), (role, action)
            if resource == "*":
                assert action in STAR_ONLY, (role, action)
            elif "*" in resource:  # object prefixes, log streams, this machine's executions
                allowed = rf"{BUCKET_ARN}/[\w./-]+/\*|arn:aws:logs:.*:log-group:\w+:\*"
                assert re.fullmatch(allowed, resource) or resource in (EXECUTIONS, CHILDREN), \
                    (role, resource)


def test_functions_read_only_the_input_prefix_and_write_only_the_work_prefix(
        granted: tuple[Stack, dict[str, list[tuple[str, str, str]]]]) -> None:
    _, by_role = granted
    no_condition = "null"
    splitter, worker, iterator = by_role["SplitterRole"], by_role["WorkerRole"], \
        by_role["IteratorRole"]
    assert on(splitter, S3_READ) == {(INPUT, no_condition), (RUNS, no_condition)}
    assert on(worker, S3_READ) == {(RUNS, no_condition)}  # chunks, never the source
    for role in (splitter, worker):
        assert {resource for resource, _ in on(role, S3_WRITE)} == {RUNS}
    assert {a for a, r, _ in splitter if r == RUNS} == {"s3:GetObject", *S3_WRITE}
    assert {a for a, r, _ in worker if r == RUNS} == \
        {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}  # no deletes
    assert {a for a, r, _ in splitter if r == INPUT} == S3_READ  # never written
    # Listing (and a 404 rather than a 403 for a missing key) only under those prefixes.
    listing = {"StringLike": {"s3:prefix": ["incoming/*", "runs/*"]}}
    assert on(splitter, {"s3:ListBucket"}) == {(BUCKET_ARN, json.dumps(listing, sort_keys=True))}
    listing = {"StringLike": {"s3:prefix": "runs/*"}}
    assert on(worker, {"s3:ListBucket"}) == {(BUCKET_ARN, json.dumps(listing, sort_keys=True))}
    # Nothing else in S3, anywhere.
    for role, role_grants in (("SplitterRole", splitter), ("WorkerRole", worker)):
        s3_actions = {a for a, _, _ in role_grants if a.startswith("s3:")}
        assert s3_actions <= S3_READ | S3_WRITE | {"s3:ListBucket"}, role
    assert not [g for g in iterator if not g[0].startswith(("logs:", "xray:"))]
    # The state machine: only a batch's pending list (ItemReader) and result files (ResultWriter).
    machine = {(a, r) for a, r, _ in by_role["StateMachineRole"] if a.startswith("s3:")}
    assert machine == {(a, f"{BUCKET_ARN}/runs/_batches/*") for a in (
        "s3:GetObject", "s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload")}


# What the range split asks S3 to do as the splitter (split/staged.py, split/s3_assembly.py), and
# the IAM actions each call needs: ranged GETs and HEADs of the pinned version, the chunks'
# multipart uploads with tags, UploadPartCopy (read permission on the source, write on the
# destination), and aborting an upload that failed.
RANGE_SPLIT_CALLS = {
    "GetObject (VersionId, Range) of the source": {(a, INPUT) for a in S3_READ},
    "HeadObject (VersionId) of the source": {(a, INPUT) for a in S3_READ},
    "CreateMultipartUpload / PutObject with Tagging": {("s3:PutObject", RUNS),
                                                       ("s3:PutObjectTagging", RUNS)},
    "UploadPart, CompleteMultipartUpload": {("s3:PutObject", RUNS)},
    "UploadPartCopy (source VersionId)": {*((a, INPUT) for a in S3_READ), ("s3:PutObject", RUNS)},
    "AbortMultipartUpload": {("s3:AbortMultipartUpload", RUNS)},
    "the scratch under runs/: get, put, delete": {("s3:GetObject", RUNS), ("s3:PutObject", RUNS),
                                                  ("s3:DeleteObject", RUNS)},
}


def test_the_splitter_may_make_the_calls_of_a_range_split(
        granted: tuple[Stack, dict[str, list[tuple[str, str, str]]]]) -> None:
    """No new grants: what the range split needs is what the splitter had (and the test above
    says it has nothing more)."""
    _, by_role = granted
    splitter = {(action, resource) for action, resource, _ in by_role["SplitterRole"]}
    for call, needs in RANGE_SPLIT_CALLS.items():
        assert needs <= splitter, (call, needs - splitter)


def test_logs_go_only_to_each_functions_own_log_group(
        granted: tuple[Stack, dict[str, list[tuple[str, str, str]]]]) -> None:
    stack, by_role = granted
    for function in FUNCTIONS:
        role = function.replace("Function", "Role")
        group = function.replace("Function", "LogGroup")
        assert stack.props(function)["LoggingConfig"] == {"LogGroup": group}
        writes = {(a, r) for a, r, _ in by_role[role] if a.startswith("logs:")}
        assert writes == {("logs:CreateLogStream", stack.getatt(group, "Arn")),
                          ("logs:PutLogEvents", stack.getatt(group, "Arn"))}


def test_the_state_machine_invokes_only_its_functions_and_starts_only_itself(
        granted: tuple[Stack, dict[str, list[tuple[str, str, str]]]]) -> None:
    stack, by_role = granted
    machine = by_role["StateMachineRole"]
    assert on(machine, {"lambda:InvokeFunction"}) == {
        (stack.getatt(name, "Arn"), "null") for name in FUNCTIONS}
    assert on(machine, {"states:StartExecution"}) == {(stack.ref("PipelineStateMachine"), "null")}
    for role, role_grants in by_role.items():
        if role != "StateMachineRole":
            assert not on(role_grants, {"lambda:InvokeFunction", "states:StartExecution"}), role
    # Attached by a policy of its own: the role does not name the state machine that names it.
    assert "PipelineStateMachine" not in json.dumps(TEMPLATE_DOC["Resources"]["StateMachineRole"])
    policy = TEMPLATE_DOC["Resources"]["StateMachineStartSelfPolicy"]["Properties"]
    assert policy["RoleName"] == {"Ref": "StateMachineRole"}


def test_only_the_splitter_describes_executions_and_only_this_machines(
        granted: tuple[Stack, dict[str, list[tuple[str, str, str]]]]) -> None:
    _, by_role = granted
    describing = {(role, resource) for role, role_grants in by_role.items()
                  for resource, _ in on(role_grants, {"states:DescribeExecution"})}
    # The state machine: only its batch Map's child workflow executions (which it may stop).
    assert describing == {("SplitterRole", EXECUTIONS), ("StateMachineRole", CHILDREN)}
    stopping = {(role, resource) for role, role_grants in by_role.items()
                for resource, _ in on(role_grants, {"states:StopExecution"})}
    assert stopping == {("StateMachineRole", CHILDREN)}
    # Attached by a policy of its own: the role does not name the state machine.
    assert "PipelineStateMachine" not in json.dumps(TEMPLATE_DOC["Resources"]["SplitterRole"])


def test_dynamodb_only_for_the_worker_and_only_on_the_import_table(
        granted: tuple[Stack, dict[str, list[tuple[str, str, str]]]]) -> None:
    stack, by_role = granted
    dynamodb = {(role, a, r) for role, role_grants in by_role.items()
                for a, r, _ in role_grants if a.startswith("dynamodb:")}
    if stack.params["ImportTableName"] == "":
        assert dynamodb == set()
        return
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/orders"
    assert dynamodb == {("WorkerRole", "dynamodb:DescribeTable", table),
                        ("WorkerRole", "dynamodb:BatchWriteItem", table)}


def sam_transformed() -> dict[str, Any]:
    """The CloudFormation SAM makes of the template, from SAM's own translator (in the venv
    `make template-check` builds); local code locations replaced as `sam package` would."""
    if not SAM_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{SAM_PYTHON} is missing: `make test` runs template-check first")
        pytest.skip("run `make template-check` first: it installs SAM's translator")
    script = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class NoManagedPolicies:
    def load(self):
        raise SystemExit("the template names a managed policy")

template = yaml_parse(open(sys.argv[1]).read())
for name, resource in template["Resources"].items():
    for key in ("CodeUri", "ContentUri", "DefinitionUri"):
        if isinstance(resource.get("Properties", {}).get(key), str):
            resource["Properties"][key] = "s3://bucket/" + name
print(json.dumps(transform(template, {}, NoManagedPolicies()), default=str))
"""
    env = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": REGION,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # nothing may leave the machine
    done = subprocess.run([str(SAM_PYTHON), "-c", script, str(TEMPLATE)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_the_roles_sam_generates_for_the_triggers_only_start_this_state_machine() -> None:
    transformed = sam_transformed()
    ours = {name for name, res in TEMPLATE_DOC["Resources"].items()
            if res["Type"] == "AWS::IAM::Role"}
    generated = {name: res for name, res in transformed["Resources"].items()
                 if res["Type"] == "AWS::IAM::Role" and name not in ours}
    assert generated, "SAM made no role for the EventBridge rule and the schedule"
    services = set()
    for name, role in generated.items():
        props = role["Properties"]
        assert "ManagedPolicyArns" not in props, name
        (trust,) = props["AssumeRolePolicyDocument"]["Statement"]
        services.update(trust["Principal"]["Service"])
        for policy in props["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                assert statement == {"Action": "states:StartExecution", "Effect": "Allow",
                                     "Resource": {"Ref": "PipelineStateMachine"}}, name
    assert services == {"events.amazonaws.com", "scheduler.amazonaws.com"}
    for name in ours:  # SAM added nothing to the roles we wrote
        props = transformed["Resources"][name]["Properties"]
        assert "ManagedPolicyArns" not in props, name
        assert len(props["Policies"]) == len(TEMPLATE_DOC["Resources"][name]["Properties"][
            "Policies"]), name
    for name in FUNCTIONS:
        function = transformed["Resources"][name]["Properties"]
        assert function["Role"] == {"Fn::GetAtt": [name.replace("Function", "Role"), "Arn"]}
    rule = next(res for name, res in transformed["Resources"].items()
                if res["Type"] == "AWS::Events::Rule" and name != "RunFailedRule")
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Ref": "PipelineStateMachine"}
    assert rule["Properties"]["Targets"][0]["DeadLetterConfig"]
    schedules = [res for res in transformed["Resources"].values()
                 if res["Type"] == "AWS::Scheduler::Schedule"]
    assert schedules and all("Name" not in res["Properties"] for res in schedules)  # generated


# -- each Handler resolves with only what SAM packages -----------------------------------------


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


def _layer_key(python: str, constraints: str) -> str:
    digest = hashlib.sha256()
    version = subprocess.run([python, "-c", "import sys; print(sys.version)"],
                             capture_output=True, text=True, check=True).stdout
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile[makefile.index("LAYER_PIP ?="):]
    for part in (version, constraints, recipe, (REPO / "pyproject.toml").read_text()):
        digest.update(part.encode())
    for path in sorted((REPO / "src" / "s3split").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(REPO)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def layer() -> tuple[str, Path]:
    """The layer as `sam build` makes it (the Makefile's build-SharedLayer), for this machine's
    platform and the runtime's Python when there is one; dependencies pinned to the versions
    this venv tests with. Cached under .aws-sam/handler-check/ by what goes into it."""
    python = runtime_python(TEMPLATE_DOC["Globals"]["Function"]["Runtime"].removeprefix("python"))
    constraints = "".join(sorted(
        f"{dist.metadata['Name']}=={dist.version}\n" for dist in importlib.metadata.distributions()
        if dist.metadata["Name"] and dist.metadata["Name"].lower() != "s3split"))
    built = LAYER_CACHE / _layer_key(python, constraints)
    if (built / "python").is_dir():
        return python, built / "python"
    LAYER_CACHE.mkdir(parents=True, exist_ok=True)
    for old in LAYER_CACHE.iterdir():  # keep one
        shutil.rmtree(old, ignore_errors=True)
    building = LAYER_CACHE / f"building-{os.getpid()}"
    building.mkdir()
    (building / "constraints.txt").write_text(constraints)
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", "build-SharedLayer", f"ARTIFACTS_DIR={building}",
         f"LAYER_PIP={python} -m pip",
         f"LAYER_PIP_FLAGS=--disable-pip-version-check -c {building / 'constraints.txt'}"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"building the layer failed:\n{done.stdout}\n{done.stderr}"
    building.rename(built)
    return python, built / "python"


CHECK_IMPORT = """
import importlib, json, sys
task, layer, handler = sys.argv[1:4]
sys.path[:0] = [task, layer]          # /var/task, then /opt/python, as in Lambda
module, _, name = handler.rpartition(".")
function = getattr(importlib.import_module(module), name)
assert callable(function), handler
outside = sorted({m.__name__ for m in list(sys.modules.values())
                  if (getattr(m, "__file__", None) or "").find("site-packages") >= 0})
print(json.dumps({"outside": outside, "version": sys.version}))
"""


@pytest.mark.timeout(900)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_handler_imports_with_only_the_packaged_code(
        layer: tuple[str, Path], function: str, tmp_path: Path) -> None:
    python, layer_python = layer
    stack = Stack(TEMPLATE_DOC)
    props = stack.props(function)
    task = tmp_path / "task"  # what SAM copies from CodeUri
    shutil.copytree(REPO / props["CodeUri"], task,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {
        "PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "TZ": ":UTC",
        "AWS_LAMBDA_FUNCTION_NAME": function, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(props["MemorySize"]),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{TEMPLATE_DOC['Globals']['Function']['Runtime']}",
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "LAMBDA_TASK_ROOT": str(task),
        "_HANDLER": props["Handler"], "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # an import must not call AWS; if it does,
    } | stack.function_env(function)               # it fails here, not somewhere real
    # -I: no user site, no PYTHON* variables, no script directory; -S: no site-packages.
    done = subprocess.run([python, "-I", "-S", "-c", CHECK_IMPORT, str(task), str(layer_python),
                           props["Handler"]],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, (
        f"{function} ({props['Handler']}) does not import from its code and the layer "
        f"(python {python}):\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    assert report["outside"] == [], report


def test_the_layer_holds_no_command_line_or_engine_dependencies(
        layer: tuple[str, Path]) -> None:
    """The layer is s3split and what the functions need: the `cli` and `local` extras (click,
    rich, moto and what they pull in) and the engine's bundled copies stay out."""
    _, layer_python = layer
    distributions = {dist.metadata["Name"].lower().replace("_", "-")
                     for dist in importlib.metadata.distributions(path=[str(layer_python)])}
    assert "s3split" in distributions and "boto3" in distributions
    assert distributions.isdisjoint({"click", "rich", "moto", "pygments", "markdown-it-py",
                                     "antlr4-python3-runtime", "jsonpath-ng", "werkzeug",
                                     "responses"}), sorted(distributions)
    assert not (layer_python / "s3split" / "_bundled").exists()


# -- idempotency of custom processors (src/s3split/processors/idempotency.py) ---------------


def test_the_idempotency_table_exists_only_when_enabled_and_fits_powertools(stack: Stack) -> None:
    from s3split.processors import ProcessorConfig
    from s3split.processors.idempotency import ChunkIdempotency

    assert stack.params["Idempotency"] == "Disabled"
    assert "IdempotencyTable" not in stack.resources()
    assert ProcessorConfig.from_env(stack.function_env("WorkerFunction")).idempotency_table \
        is None
    enabled = Stack(TEMPLATE_DOC, Idempotency="Enabled")
    assert set(enabled.resources("AWS::DynamoDB::Table")) == {"IdempotencyTable"}
    table = enabled.props("IdempotencyTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    client = boto3.client("dynamodb", region_name=REGION, aws_access_key_id="testing",
                          aws_secret_access_key="testing")  # made, never called
    persistence = ChunkIdempotency(table["TableName"], client).persistence
    assert table["KeySchema"] == [{"AttributeName": persistence.key_attr, "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [
        {"AttributeName": persistence.key_attr, "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": persistence.expiry_attr,
                                                "Enabled": True}
    env = enabled.function_env("WorkerFunction")
    assert ProcessorConfig.from_env(env).idempotency_table == table["TableName"] == \
        enabled.ref("IdempotencyTable")
    for name in ("SplitterFunction", "IteratorFunction"):
        assert "S3SPLIT_IDEMPOTENCY_TABLE" not in enabled.function_env(name)


def test_the_worker_idempotency_env_var_is_conditional() -> None:
    variables = TEMPLATE_DOC["Resources"]["WorkerFunction"]["Properties"]["Environment"][
        "Variables"]
    assert variables["S3SPLIT_IDEMPOTENCY_TABLE"] == {
        "Fn::If": ["HasIdempotency", {"Ref": "IdempotencyTable"}, ""]}
    assert TEMPLATE_DOC["Conditions"]["HasIdempotency"] == {
        "Fn::Equals": [{"Ref": "Idempotency"}, "Enabled"]}
    assert TEMPLATE_DOC["Resources"]["IdempotencyTable"]["Condition"] == "HasIdempotency"


IDEMPOTENCY_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                       "dynamodb:DeleteItem"}


@pytest.mark.parametrize("parameters", [
    {}, {"Idempotency": "Enabled"}, {"Idempotency": "Enabled", "ImportTableName": "orders"}])
def test_only_the_worker_reads_and_writes_idempotency_records_on_that_table_only(
        parameters: dict[str, str]) -> None:
    stack = Stack(TEMPLATE_DOC, **parameters)
    by_role = grants(stack)
    idempotency = {(role, a, r, c) for role, role_grants in by_role.items()
                   for a, r, c in role_grants if a in IDEMPOTENCY_ACTIONS}
    if "Idempotency" not in parameters:
        assert idempotency == set()
        return
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{STACK}-idempotency"
    assert stack.getatt("IdempotencyTable", "Arn") == table
    assert idempotency == {("WorkerRole", a, table, "null") for a in IDEMPOTENCY_ACTIONS}
    on_table = {a for role_grants in by_role.values() for a, r, _ in role_grants if r == table}
    assert on_table == IDEMPOTENCY_ACTIONS  # no scans, queries or batches on it
    import_table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/orders"
    dynamodb = {(a, r) for a, r, _ in by_role["WorkerRole"] if a.startswith("dynamodb:")}
    expected = {(a, table) for a in IDEMPOTENCY_ACTIONS}
    if "ImportTableName" in parameters:
        expected |= {("dynamodb:DescribeTable", import_table),
                     ("dynamodb:BatchWriteItem", import_table)}
    assert dynamodb == expected
