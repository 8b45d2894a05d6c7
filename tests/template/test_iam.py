"""Least privilege, read from the template's IAM statements themselves and, through SAM's own
translator, from the roles SAM generates for the triggers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from tests.support.iam import Mapper, prove, sample_stack
from tests.support.template import (
    ACCOUNT,
    BUCKET,
    FUNCTIONS,
    REGION,
    SAM_PYTHON,
    STACK,
    TEMPLATE,
    TEMPLATE_DOC,
    Stack,
    grants,
)

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
        {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload",
         "s3:DeleteObject"}  # (a failed chunk's outputs: none may sit among the results)
    assert {a for a, r, _ in splitter if r == INPUT} == S3_READ  # never written
    # Listing the data bucket, unconditioned: S3 answers a GET of a missing key 404 (not 403)
    # only to a caller allowed s3:ListBucket, and that check carries no s3:prefix.
    assert on(splitter, {"s3:ListBucket"}) == {(BUCKET_ARN, no_condition)}
    assert on(worker, {"s3:ListBucket"}) == {(BUCKET_ARN, no_condition)}
    # Nothing else in S3, anywhere.
    for role, role_grants in (("SplitterRole", splitter), ("WorkerRole", worker)):
        s3_actions = {a for a, _, _ in role_grants if a.startswith("s3:")}
        assert s3_actions <= S3_READ | S3_WRITE | {"s3:ListBucket"}, role
    assert not [g for g in iterator if not g[0].startswith(("logs:", "xray:"))]
    # The state machine: only a batch's pending list (ItemReader) and result files (ResultWriter).
    machine = {(a, r) for a, r, _ in by_role["StateMachineRole"] if a.startswith("s3:")}
    assert machine == {(a, f"{BUCKET_ARN}/runs/_batches/*") for a in (
        "s3:GetObject", "s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload")}


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


# -- idempotency records -----------------------------------------------------------------------


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


def test_only_the_worker_may_touch_dynamodb() -> None:
    """The splitter knows the import table's name, for Plan's check; it is granted nothing."""
    stack = Stack(TEMPLATE_DOC, Processor="dynamodb", ImportTableName="orders",
                  Idempotency="Enabled")
    touching = {role for role, role_grants in grants(stack).items()
                for action, _, _ in role_grants if action.startswith("dynamodb:")}
    assert touching == {"WorkerRole"}


# What the range split asks S3 to do as the splitter (split/range_steps.py,
# split/s3_assembly.py), and the IAM actions each call needs: ranged GETs and HEADs of the
# pinned version, the chunks' multipart uploads with tags, UploadPartCopy (read permission on
# the source, write on the destination), and aborting an upload that failed.
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


# -- the calls, evaluated by an IAM policy evaluator (tests/support/iam.py) ----------------------


def call(function: str, operation: str, status: int = 200, service: str = "s3",
         **params: Any) -> dict[str, Any]:
    return {"function": function, "service": service, "operation": operation, "params": params,
            "status": status, "error": "", "env": {"S3SPLIT_WORK_LOCATION": "s3://data/runs"}}


def test_a_read_of_a_key_not_written_yet_is_a_404_not_a_403() -> None:
    """S3 answers a GET or HEAD of a missing key with 404 only to a caller allowed
    s3:ListBucket on the bucket, a request without s3:prefix: Plan's read of a lock not taken
    yet, the worker's of a status not written yet."""
    proof = prove([
        call("s3split-splitter", "GetObject", 404, Bucket="data", Key="runs/a.csv/lock.json"),
        call("s3split-worker", "HeadObject", 404, Bucket="data",
             Key="runs/a.csv/status/part-00000.json"),
    ])
    listing = {r for r in proof.outcome if r.action == "s3:ListBucket"}
    assert {(r.role, r.resource) for r in listing} == {("SplitterRole", BUCKET_ARN),
                                                       ("WorkerRole", BUCKET_ARN)}
    assert proof.refused == {}, proof.lines()


def test_the_evaluator_refuses_what_the_roles_do_not_grant() -> None:
    proof = prove([
        call("s3split-worker", "PutObject", Bucket="data", Key="incoming/a.csv"),
        call("s3split-iterator", "GetObject", Bucket="data", Key="runs/a.csv/lock.json"),
        call("s3split-splitter", "DeleteObject", Bucket="data", Key="incoming/a.csv"),
        call("s3split-worker", "DescribeExecution", service="stepfunctions",
             executionArn=f"arn:aws:states:{REGION}:{ACCOUNT}:execution:m:x"),
        call("state-machine", "Invoke", service="lambda",
             FunctionName=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:s3split-worker"),
    ])
    assert {(r.role, r.action) for r in proof.refused} == {
        ("WorkerRole", "s3:PutObject"), ("IteratorRole", "s3:GetObject"),
        ("SplitterRole", "s3:DeleteObject"), ("WorkerRole", "states:DescribeExecution")}
    assert all(result == "ImplicitlyDenied" for result in proof.refused.values())


def test_calls_map_to_the_actions_the_service_authorization_reference_names() -> None:
    mapper = Mapper(sample_stack())
    source = f"{BUCKET_ARN}/incoming/a.csv"
    chunk = f"{BUCKET_ARN}/runs/a.csv/chunks/part-00000.csv"

    def actions(record: dict[str, Any]) -> set[tuple[str, str]]:
        return {(r.action, r.resource) for r in mapper.requests(record)}

    assert actions(call("s3split-splitter", "HeadObject", Bucket="data", Key="a.csv",
                        VersionId="v1")) == {("s3:GetObjectVersion", source)}
    assert actions(call("s3split-splitter", "CreateMultipartUpload", Bucket="data",
                        Key="runs/a.csv/chunks/part-00000.csv", Tagging="s3split-object=chunk")
                   ) == {("s3:PutObject", chunk), ("s3:PutObjectTagging", chunk)}
    assert actions(call("s3split-splitter", "UploadPartCopy", Bucket="data",
                        Key="runs/a.csv/chunks/part-00000.csv",
                        CopySource={"Bucket": "data", "Key": "incoming/a.csv",
                                    "VersionId": "v1"})
                   ) == {("s3:PutObject", chunk), ("s3:GetObjectVersion", source)}
    assert actions(call("s3split-splitter", "GetObject", 404, Bucket="data", Key="runs/x")) == \
        {("s3:GetObject", f"{BUCKET_ARN}/runs/x"), ("s3:ListBucket", BUCKET_ARN)}
    (listing,) = mapper.requests(call("s3split-splitter", "ListObjectsV2", Bucket="data",
                                      Prefix="incoming/"))
    assert dict(listing.context)["s3:prefix"] == "incoming/"
    with pytest.raises(AssertionError, match="no IAM mapping for s3:PutBucketPolicy"):
        mapper.requests(call("s3split-splitter", "PutBucketPolicy", Bucket="data"))
