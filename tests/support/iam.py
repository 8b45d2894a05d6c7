"""The AWS calls the functions and the state machine make, as IAM requests of a sample
deployment of template.yaml, evaluated by an IAM policy evaluator (@cloud-copilot/iam-simulate,
tools/aws-checks/, installed by the Makefile with ``npm ci``).

A call becomes one or more requests (action, resource ARN, condition keys) as the Service
Authorization Reference and the S3 API reference say: HeadObject is s3:GetObject, with a
VersionId s3:GetObjectVersion; a Tagging header adds s3:PutObjectTagging; UploadPartCopy reads
its source (s3:GetObject) and writes its target (s3:PutObject); a GET or HEAD of a missing key
answers 404 only to a caller allowed s3:ListBucket on the bucket (a request without s3:prefix),
403 otherwise. The test's buckets, keys, tables and names are mapped onto the sample
deployment's: the data bucket ``data``, the work location ``runs/``, sources under the input
prefix ``incoming/``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tests.support.template import (
    ACCOUNT,
    BUCKET,
    REGION,
    REPO,
    TEMPLATE_DOC,
    Stack,
    grants,
    policy_documents,
)

CHECKS = REPO / "tools" / "aws-checks"
EVALUATOR = CHECKS / "iam-evaluate.mjs"
STATE_MACHINE = "state-machine"  # the records of the state machine's own calls
ROLES = {"s3split-splitter": "SplitterRole", "s3split-iterator": "IteratorRole",
         "s3split-worker": "WorkerRole", STATE_MACHINE: "StateMachineRole"}
FUNCTIONS = {"s3split-splitter": "SplitterFunction", "s3split-iterator": "IteratorFunction",
             "s3split-worker": "WorkerFunction"}
INPUT_PREFIX = "incoming/"


def sample_stack() -> Stack:
    """The deployment the calls are checked against: every optional resource on."""
    return Stack(TEMPLATE_DOC, ImportTableName="orders", Idempotency="Enabled",
                 ValidateSchema='{"columns": {}}', ImportTableColumnTypes='{"price": "N"}')


@dataclass(frozen=True)
class Request:
    role: str
    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()
    call: str = field(default="", compare=False)  # what asked, for the failure message


# -- mapping a recorded call --------------------------------------------------------------------


class Mapper:
    """Calls recorded in a test's world -> requests in the sample deployment."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.bucket_arn = stack.getatt("DataBucket", "Arn")

    def key(self, key: str, record: dict[str, Any]) -> str:
        work = record.get("env", {}).get("S3SPLIT_WORK_LOCATION", "")
        work_key = work.removeprefix("s3://").partition("/")[2].strip("/") if \
            work.startswith("s3://") else ""
        if work_key and (key == work_key or key.startswith(work_key + "/")):
            return "runs" + key[len(work_key):]
        if key.startswith(("runs/", INPUT_PREFIX)):
            return key
        return INPUT_PREFIX + key

    def object_arn(self, key: str, record: dict[str, Any]) -> str:
        return f"{self.bucket_arn}/{self.key(key, record)}"

    def requests(self, record: dict[str, Any]) -> list[Request]:
        role = ROLES.get(record["function"])
        if role is None:
            raise AssertionError(f"a call made outside the functions: {record}")
        service, operation = record["service"], record["operation"]
        mapping = getattr(self, f"_{service.replace('-', '_')}", None)
        actions = mapping(operation, record["params"], record) if mapping else None
        if actions is None:
            raise AssertionError(f"no IAM mapping for {service}:{operation} (tests/support/"
                                 f"iam.py): add one from the Service Authorization Reference")
        call = f"{record['function']}: {service}.{operation} {json.dumps(record['params'])}"
        return [Request(role, action, resource, tuple(sorted(context.items())), call)
                for action, resource, context in actions]

    def _s3(self, operation: str, params: dict[str, Any],
            record: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]] | None:
        secure = {"aws:SecureTransport": "true"}
        obj = self.object_arn(params["Key"], record) if "Key" in params else ""
        versioned = "VersionId" in params
        if operation in ("GetObject", "HeadObject"):
            actions = [("s3:GetObjectVersion" if versioned else "s3:GetObject", obj, secure)]
            if record["status"] == 404:  # (403 for a caller without s3:ListBucket)
                actions.append(("s3:ListBucket", self.bucket_arn, secure))
            return actions
        if operation in ("PutObject", "CreateMultipartUpload"):
            actions = [("s3:PutObject", obj, secure)]
            if params.get("Tagging"):
                actions.append(("s3:PutObjectTagging", obj, secure))
            return actions
        if operation in ("UploadPart", "CompleteMultipartUpload"):
            return [("s3:PutObject", obj, secure)]
        if operation in ("UploadPartCopy", "CopyObject"):
            source, version = self._copy_source(params["CopySource"])
            read = "s3:GetObjectVersion" if version else "s3:GetObject"
            return [("s3:PutObject", obj, secure),
                    (read, self.object_arn(source.partition("/")[2], record), secure)]
        if operation == "AbortMultipartUpload":
            return [("s3:AbortMultipartUpload", obj, secure)]
        if operation == "ListParts":
            return [("s3:ListMultipartUploadParts", obj, secure)]
        if operation == "DeleteObject":
            return [("s3:DeleteObjectVersion" if versioned else "s3:DeleteObject", obj, secure)]
        if operation in ("ListObjectsV2", "ListObjects"):
            context = dict(secure)
            if params.get("Prefix"):
                context["s3:prefix"] = self.key(params["Prefix"], record)
            if params.get("Delimiter"):
                context["s3:delimiter"] = params["Delimiter"]
            return [("s3:ListBucket", self.bucket_arn, context)]
        return None

    @staticmethod
    def _copy_source(source: Any) -> tuple[str, str]:
        if isinstance(source, dict):
            return f"{source['Bucket']}/{source['Key']}", source.get("VersionId", "")
        path, _, query = str(source).partition("?versionId=")
        return unquote(path.lstrip("/")), query

    def _dynamodb(self, operation: str, params: dict[str, Any],
                  record: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]] | None:
        if operation not in ("DescribeTable", "BatchWriteItem", "GetItem", "PutItem",
                             "UpdateItem", "DeleteItem"):
            return None
        env = record.get("env", {})
        tables = {env.get("S3SPLIT_DYNAMODB_TABLE"): "ImportTable",
                  env.get("S3SPLIT_IDEMPOTENCY_TABLE"): "IdempotencyTable"}
        names = params["TableName"]
        return [(f"dynamodb:{operation}",
                 self.stack.getatt(tables[name], "Arn") if name in tables else
                 f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}", {})
                for name in ([names] if isinstance(names, str) else names)]

    def _stepfunctions(self, operation: str, params: dict[str, Any],
                       record: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]] | None:
        machine = self.stack.ref("PipelineStateMachine")
        name = self.stack.getatt("PipelineStateMachine", "Name")
        if operation in ("DescribeExecution", "StopExecution"):
            arn = params["executionArn"].split(":")
            arn[6] = name if "/" not in arn[6] else f"{name}/{arn[6].partition('/')[2]}"
            return [(f"states:{operation}", ":".join(arn), {})]
        if operation == "StartExecution":
            return [("states:StartExecution", machine, {})]
        return None

    def _ssm(self, operation: str, params: dict[str, Any],
             record: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]] | None:
        if operation != "GetParameter":
            return None
        env = record.get("env", {})
        names = {env.get("S3SPLIT_SCHEMA"): "ValidateSchemaParameter",
                 env.get("S3SPLIT_DYNAMODB_TYPES"): "ColumnTypesParameter"}
        name = names.get(f"ssm:{params['Name']}")
        name = self.stack.ref(name) if name else params["Name"]
        return [("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name}", {})]

    def _lambda(self, operation: str, params: dict[str, Any],
                record: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]] | None:
        if operation != "Invoke":
            return None
        function = params["FunctionName"].rsplit(":", 1)[-1]
        return [("lambda:InvokeFunction", self.stack.getatt(FUNCTIONS[function], "Arn"), {})]


# -- the state machine's own calls, from its executions' histories -----------------------------


def state_machine_calls(sfn: Any) -> Iterator[dict[str, Any]]:
    """What every execution of every state machine on ``sfn`` asked AWS to do: invoke a
    function, start an execution, and a Distributed Map's: start and follow its children, read
    its ItemReader's object, write its ResultWriter's files."""
    for machine in sfn.list_state_machines()["stateMachines"]:
        definition = json.loads(sfn.describe_state_machine(
            stateMachineArn=machine["stateMachineArn"])["definition"])
        if '"Task"' not in json.dumps(definition):
            continue  # (a test's stub machine: no calls, maybe thousands of executions)
        maps = dict(_distributed_maps(definition["States"]))
        for page in sfn.get_paginator("list_executions").paginate(
                stateMachineArn=machine["stateMachineArn"]):
            for execution in page["executions"]:
                yield from _execution_calls(sfn, execution["executionArn"], maps)


def _distributed_maps(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        processor = state.get("ItemProcessor") or state.get("Iterator") or {}
        if state.get("Type") == "Map":
            if processor.get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED":
                yield name, state
            yield from _distributed_maps(processor.get("States", {}))


def _execution_calls(sfn: Any, execution: str,
                     maps: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    entered: dict[str, Any] = {}
    events = [e for page in sfn.get_paginator("get_execution_history").paginate(
        executionArn=execution) for e in page["events"]]
    for event in events:
        kind = event["type"]
        if kind == "MapStateEntered":
            details = event["stateEnteredEventDetails"]
            entered = {"name": details["name"], "input": json.loads(details.get("input") or "{}")}
        elif kind == "LambdaFunctionScheduled":
            arn = event["lambdaFunctionScheduledEventDetails"]["resource"]
            yield _call("lambda", "Invoke", {"FunctionName": arn})
        elif kind == "TaskScheduled":
            details = event["taskScheduledEventDetails"]
            if (details["resourceType"], details["resource"]) != ("states", "startExecution"):
                raise AssertionError(f"no IAM mapping for the task {details}")
            parameters = json.loads(details["parameters"])
            yield _call("stepfunctions", "StartExecution",
                        {"stateMachineArn": parameters["StateMachineArn"]})
        elif kind == "MapRunStarted":
            map_run = event["mapRunStartedEventDetails"]["mapRunArn"]
            yield from _map_run_calls(map_run, maps[entered["name"]], entered["input"])


def _map_run_calls(map_run: str, state: dict[str, Any],
                   state_input: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A Distributed Map's calls (Step Functions developer guide, "IAM policies for using
    Distributed Map states"; ItemReader, ResultWriter)."""
    machine = map_run.replace(":mapRun:", ":stateMachine:").rsplit("/", 1)[0]
    child = map_run.replace(":mapRun:", ":execution:") + ":child"
    yield _call("stepfunctions", "StartExecution", {"stateMachineArn": machine})
    yield _call("stepfunctions", "DescribeExecution", {"executionArn": child})
    yield _call("stepfunctions", "StopExecution", {"executionArn": child})
    reader = state.get("ItemReader")
    if reader:
        assert reader["Resource"] == "arn:aws:states:::s3:getObject", reader
        parameters = {name.removesuffix(".$"): _path(state_input, value)
                      if name.endswith(".$") else value
                      for name, value in reader["Parameters"].items()}
        yield _call("s3", "GetObject", {"Bucket": parameters["Bucket"],
                                        "Key": parameters["Key"]}, work=parameters["Bucket"])
    writer = state.get("ResultWriter")
    if writer:
        assert writer["Resource"] == "arn:aws:states:::s3:putObject", writer
        bucket, prefix = writer["Parameters"]["Bucket"], writer["Parameters"]["Prefix"]
        run = map_run.rsplit(":", 1)[-1]
        for name in ("manifest.json", "SUCCEEDED_0.json", "FAILED_0.json", "PENDING_0.json"):
            key = f"{prefix.rstrip('/')}/{run}/{name}".lstrip("/")
            yield _call("s3", "PutObject", {"Bucket": bucket, "Key": key}, work=bucket)
            # Result files above 5 GB are multipart: the policy grants what that needs too.


def _path(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.removeprefix("$.").split("."):
        value = value[part]
    return value


def _call(service: str, operation: str, params: dict[str, Any],
          work: str = "") -> dict[str, Any]:
    # The ResultWriter's Prefix and the pending list are under the work location's runs/.
    env = {"S3SPLIT_WORK_LOCATION": f"s3://{work}/runs"} if work else {}
    return {"function": STATE_MACHINE, "service": service, "operation": operation,
            "params": params, "status": 200, "error": "", "env": env}


def record_state_machine_calls(sfn: Any, directory: str | None = None) -> None:
    """Append the state machine's calls to the call log (``S3SPLIT_AWS_CALL_LOG``)."""
    directory = directory or os.environ.get("S3SPLIT_AWS_CALL_LOG")
    if not directory:
        return
    with open(Path(directory) / f"state-machine-{os.getpid()}.jsonl", "a") as out:
        for call in state_machine_calls(sfn):
            out.write(json.dumps(call) + "\n")


# -- evaluating --------------------------------------------------------------------------------


def read_calls(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(directory.glob("*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]


def evaluate(requests: Iterable[Request], stack: Stack) -> dict[Request, str]:
    """Each distinct request's outcome: Allowed, ImplicitlyDenied, ExplicitlyDenied or Error
    (the evaluator refused the request itself: a wrong ARN or condition key), in one node
    process."""
    unique = list(dict.fromkeys(requests))
    if not unique:
        return {}
    documents = policy_documents(stack)
    bucket_policy = stack.props("DataBucketPolicy")["PolicyDocument"]
    bucket_arn = stack.getatt("DataBucket", "Arn")
    # Requests that match the same Resource patterns of every policy, with the same principal,
    # action and context, have the same answer: one of each is evaluated (a run's keys differ
    # from another's only where no policy looks).
    every = [document for role_documents in documents.values() for document in role_documents]
    patterns = sorted({resource for document in [*every, bucket_policy]
                       for statement in document["Statement"]
                       for resource in _as_list(statement["Resource"])})

    def signature(r: Request) -> tuple[Any, ...]:
        matched = frozenset(p for p in patterns if fnmatch.fnmatchcase(r.resource, p))
        return (r.role, r.action, r.context, matched)

    representative: dict[tuple[Any, ...], Request] = {}
    for request in unique:
        representative.setdefault(signature(request), request)
    answers = _evaluate(list(representative.values()), documents, bucket_policy, bucket_arn)
    return {r: answers[representative[signature(r)]] for r in unique}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _evaluate(unique: list[Request], documents: dict[str, list[dict[str, Any]]],
              bucket_policy: dict[str, Any], bucket_arn: str) -> dict[Request, str]:
    payload = {
        "account": ACCOUNT,
        "principals": {role: f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/session"
                       for role in documents},
        "policies": documents,
        "resourcePolicies": {bucket_arn: bucket_policy},
        "requests": [{"principal": r.role, "action": r.action, "resource": r.resource,
                      "context": dict(r.context),
                      "resourcePolicy": bucket_arn if r.action.startswith("s3:") else ""}
                     for r in unique],
    }
    node = shutil.which("node")
    assert node, "node is needed for the IAM evaluator (tools/aws-checks)"
    assert (CHECKS / "node_modules").is_dir(), "run `make node-checks` (npm ci in tools/aws-checks)"
    done = subprocess.run([node, str(EVALUATOR)], input=json.dumps(payload), cwd=CHECKS,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    outcome = {}
    for request, result in zip(unique, results, strict=True):
        outcome[request] = result["result"] if result["result"] != "Error" else \
            f"Error {json.dumps(result['errors'])}"
    return outcome


def unused_grants(stack: Stack, allowed: Iterable[Request]) -> list[tuple[str, str, str]]:
    """(role, action, resource) granted that no allowed request used."""
    used = list(allowed)
    unused = []
    for role, role_grants in grants(stack).items():
        for action, resource, _ in role_grants:
            if not any(r.role == role and r.action == action
                       and fnmatch.fnmatchcase(r.resource, resource) for r in used):
                unused.append((role, action, resource))
    return sorted(set(unused))


@dataclass
class Proof:
    calls: int
    outcome: dict[Request, str]
    unused: list[tuple[str, str, str]]

    @property
    def refused(self) -> dict[Request, str]:
        return {r: result for r, result in self.outcome.items() if result != "Allowed"}

    def lines(self) -> list[str]:
        lines = [f"IAM: {self.calls} recorded AWS calls, {len(self.outcome)} distinct requests "
                 f"evaluated against template.yaml's policies (bucket {BUCKET})"]
        for request, result in sorted(self.refused.items(), key=lambda item: item[0].call):
            context = f" with {dict(request.context)}" if request.context else ""
            lines.append(f"  DENIED {request.role} {request.action} on {request.resource}"
                         f"{context}: {result}; made by {request.call}")
        if self.unused:
            lines.append("  granted but used by no recorded call:")
            lines.extend(f"    {role}: {action} on {resource}"
                         for role, action, resource in self.unused)
        return lines


def prove(calls: list[dict[str, Any]], stack: Stack | None = None) -> Proof:
    stack = stack or sample_stack()
    mapper = Mapper(stack)
    requests = [request for call in calls for request in mapper.requests(call)]
    outcome = evaluate(requests, stack)
    allowed = [r for r, result in outcome.items() if result == "Allowed"]
    return Proof(len(calls), outcome, unused_grants(stack, allowed))
