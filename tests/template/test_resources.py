"""template.yaml's resources: the functions' runtime and environment, the parameters, the data
bucket, the state machine and its substitutions, the idempotency table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from s3split.deployment import Deployment, parse_tolerance
from s3split.engine.local import FUNCTIONS as ENGINE_FUNCTIONS
from s3split.engine.local import placeholders, render_definition
from s3split.pipeline.batch import result_writer_substitutions
from s3split.processors.check import check_processor
from s3split.processors.dynamodb import TYPES
from s3split.processors.idempotency import TABLE as IDEMPOTENCY_TABLE
from s3split.processors.registry import BUILTINS, declared_settings
from s3split.processors.validate import SCHEMA
from s3split.sizes import parse_size
from tests.support.template import BUCKET, FUNCTIONS, REGION, REPO, TEMPLATE_DOC, Stack

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


def test_the_engine_runs_each_function_with_the_templates_code_and_timeout(
        stack: Stack) -> None:
    """The local engine's stand-in for each function (the ASL placeholder it fills, the handler
    it runs, the time it allows) is the template's: a handler slower than the template's
    Timeout fails Sandbox.Timedout on AWS, so it must time out locally too."""
    substitutions = stack.props("PipelineStateMachine")["DefinitionSubstitutions"]
    by_arn = {json.dumps(stack.getatt(name, "Arn")): name for name in FUNCTIONS}
    default = TEMPLATE_DOC["Globals"]["Function"].get("Timeout", 3)  # (Lambda's default)
    deployed = {}
    for function in ENGINE_FUNCTIONS.values():
        props = stack.props(by_arn[json.dumps(substitutions[function.placeholder])])
        module, _, handler = props["Handler"].rpartition(".")
        code = props["CodeUri"].strip("/").replace("/", ".")
        deployed[function.placeholder] = (f"{code}.{module}:{handler}",
                                          props.get("Timeout", default))
    assert deployed == {f.placeholder: (f.handler, f.timeout_s)
                        for f in ENGINE_FUNCTIONS.values()}
    assert len(deployed) == len(FUNCTIONS)


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


# -- the environment the functions run with ----------------------------------------------------


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


# -- idempotency of custom processors (src/s3split/processors/idempotency.py) ------------------


def test_the_idempotency_table_exists_only_when_enabled_and_fits_powertools(stack: Stack) -> None:
    from s3split.processors.idempotency import ChunkIdempotency

    assert stack.params["Idempotency"] == "Disabled"
    assert "IdempotencyTable" not in stack.resources()
    assert ChunkIdempotency.from_env(stack.function_env("WorkerFunction")) is None
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
    worker_store = ChunkIdempotency.from_env(env, client)
    assert worker_store is not None
    assert worker_store.table == table["TableName"] == enabled.ref("IdempotencyTable")
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


# Every setting a built-in processor declares (its own module's ``Setting`` values).
PROCESSOR_SETTINGS = {setting.variable: setting for name in BUILTINS
                      for setting in declared_settings(name)}
PROCESSOR_CONFIG = tuple(PROCESSOR_SETTINGS)
# The splitter function's variables that are not a processor's: its own and the range split's.
SPLITTER_OWN = {"S3SPLIT_SPLIT_SAFETY_MS", "S3SPLIT_RANGE_SPLIT_FROM", "S3SPLIT_RANGE_CONCURRENCY"}


def own_variables(name: str) -> set[str]:
    """The variables a function sets itself (beyond Globals': the deployment's)."""
    return set(TEMPLATE_DOC["Resources"][name]["Properties"]["Environment"]["Variables"])


def test_the_functions_set_every_declared_processor_setting_and_no_other() -> None:
    """A processor's setting is declared in its module and set on the functions by the
    template: a declared one the template lacks would never reach a deployed worker, and a
    variable the template sets that no processor declares is read by nothing."""
    assert own_variables("WorkerFunction") == {*PROCESSOR_SETTINGS, IDEMPOTENCY_TABLE.variable}
    assert own_variables("SplitterFunction") == {*PROCESSOR_SETTINGS, *SPLITTER_OWN}
    assert "S3SPLIT_PROCESSORS" not in own_variables("WorkerFunction")  # code: the user's own
    # the stack's processor is any built-in, and only those
    assert set(TEMPLATE_DOC["Parameters"]["Processor"]["AllowedValues"]) == set(BUILTINS)
    # a file's path is for a local run: a deployment gives the text itself
    assert not {setting.file_variable for setting in PROCESSOR_SETTINGS.values()} & (
        own_variables("WorkerFunction") | set(TEMPLATE_DOC["Globals"]["Function"]["Environment"][
            "Variables"]))


SCHEMA_PARAMETER = json.dumps({"columns": {"id": {"type": "int", "required": True}}})


@pytest.mark.parametrize("parameters", [
    {},
    {"Processor": "validate", "ValidateSchema": SCHEMA_PARAMETER},
    {"Processor": "parquet", "ValidateSchema": SCHEMA_PARAMETER},
    {"Processor": "sql", "SqlQuery": "SELECT id FROM chunk", "SqlFormat": "parquet"},
    {"Processor": "dynamodb", "ImportTableName": "orders",
     "ImportTableColumnTypes": '{"price": "N"}'},
])
def test_plan_sees_the_processor_configuration_the_worker_runs_with(
        parameters: dict[str, str]) -> None:
    """Plan (the splitter function) checks the processor's configuration before splitting:
    it must see exactly what the worker will, and the stack's processor must pass (the
    schema and column types are what their SSM parameters hold; reading ``ssm:NAME`` is
    tests/unit/test_processor_check.py's)."""
    stack = Stack(TEMPLATE_DOC, **parameters)
    splitter, worker = (stack.function_env(name) for name in ("SplitterFunction",
                                                               "WorkerFunction"))
    assert {k: splitter[k] for k in PROCESSOR_CONFIG} == {k: worker[k] for k in PROCESSOR_CONFIG}
    stored = {f"ssm:{stack.ref(name)}": stack.props(name)["Value"]
              for name in stack.resources("AWS::SSM::Parameter")}
    deployed = {k: stored.get(v, v) for k, v in splitter.items()}
    config = check_processor(Deployment.from_env(deployed).processor, deployed)
    if "ValidateSchema" in parameters:
        assert splitter["S3SPLIT_SCHEMA"] == "ssm:ValidateSchemaParameter"
        assert config.get(SCHEMA) == json.loads(SCHEMA_PARAMETER)
    if "ImportTableColumnTypes" in parameters:
        assert config.get(TYPES) == {"price": "N"}
    assert "S3SPLIT_IDEMPOTENCY_TABLE" not in splitter  # the worker's alone


LAMBDA_ENVIRONMENT_LIMIT = 4096  # bytes, all of a function's variables (Lambda quotas)
NAME_LIMITS = {"AWS::StackName": 128, "AWS::S3::Bucket": 63, "AWS::SSM::Parameter": 128}


class Longest(Stack):
    """The stack with every parameter and every generated name at its longest."""

    def __init__(self) -> None:
        super().__init__(TEMPLATE_DOC, **{
            name: longest(spec) for name, spec in TEMPLATE_DOC["Parameters"].items()})

    def ref(self, name: str) -> Any:
        if name == "AWS::StackName":
            return "s" * NAME_LIMITS[name]
        kind = self.template["Resources"].get(name, {}).get("Type")
        if kind in NAME_LIMITS:
            return "n" * NAME_LIMITS[kind]
        return super().ref(name)


def longest(spec: dict[str, Any]) -> str:
    if "AllowedValues" in spec:
        return max(map(str, spec["AllowedValues"]), key=len)
    if spec["Type"] == "Number":
        return str(spec.get("MaxValue", "9" * 20))
    return "x" * int(spec.get("MaxLength", 4096))  # CloudFormation's limit on any value


def test_each_functions_environment_fits_lambdas_4_kb_at_the_parameters_longest() -> None:
    """CreateFunction refuses an environment above 4 KB: a 4 KB schema or column types
    there failed the deploy. They live in SSM parameters; the environment names them."""
    stack = Longest()
    assert len(stack.params["ValidateSchema"]) == 4096
    for name in FUNCTIONS:
        environment = stack.function_env(name)
        size = len(json.dumps(environment, separators=(",", ":")))
        assert size <= LAMBDA_ENVIRONMENT_LIMIT, (name, size, {
            k: len(v) for k, v in environment.items() if len(v) > 100})


def test_the_range_split_settings_reach_the_splitter_only() -> None:
    """RangeSplitFrom and RangeConcurrency become the splitter's Deployment (Plan chooses the
    range split, PlanRanges and Combine hand the Maps their MaxConcurrency)."""
    assert TEMPLATE_DOC["Parameters"]["RangeSplitFrom"]["AllowedPattern"] == \
        TEMPLATE_DOC["Parameters"]["ChunkSize"]["AllowedPattern"]
    default = Deployment.from_env(Stack(TEMPLATE_DOC).function_env("SplitterFunction"))
    assert (default.range_split_from, default.range_concurrency) == (1024 ** 3, 8)
    stack = Stack(TEMPLATE_DOC, RangeSplitFrom="5GB", RangeConcurrency="7")
    chosen = Deployment.from_env(stack.function_env("SplitterFunction"))
    assert (chosen.range_split_from, chosen.range_concurrency) == (5 * 10 ** 9, 7)
    for name in ("WorkerFunction", "IteratorFunction"):
        assert not {k for k in stack.function_env(name) if k.startswith("S3SPLIT_RANGE")}
