"""A record of the AWS calls a function makes, for checking them against its IAM role.

When ``S3SPLIT_AWS_CALL_LOG`` names a directory, every call made through boto3's default
session (all of the handlers' clients) is appended there as one JSON line: the function, the
operation, the parameters that decide its IAM action and resource, the HTTP status and error
code (a GET of a missing key needs s3:ListBucket too). Nothing is recorded otherwise, and
nothing is imported: the handlers call :func:`record_if_asked` when they are imported.
"""

from __future__ import annotations

import json
import os
from typing import Any

ENV = "S3SPLIT_AWS_CALL_LOG"
# What the IAM action, resource and condition keys of the calls the handlers make depend on.
# Never bodies or items: a record says which table or object, not what was in it.
_KEPT = ("Bucket", "Key", "Prefix", "Delimiter", "VersionId", "Tagging", "CopySource",
         "IfNoneMatch", "IfMatch", "TableName", "executionArn", "stateMachineArn", "Name")
_PARAMS = "s3split_recorded_params"


def record_if_asked() -> None:
    directory = os.environ.get(ENV)
    if not directory:
        return
    import boto3

    events = boto3.DEFAULT_SESSION.events if boto3.DEFAULT_SESSION else None
    if events is None:
        boto3.setup_default_session()
        events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
    events.register("before-parameter-build", _remember, unique_id=_PARAMS)
    events.register("after-call", _Writer(directory), unique_id="s3split-record-aws-calls")


def _remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    kept = {name: params[name] for name in _KEPT if name in params}
    if "RequestItems" in params:  # DynamoDB's batch calls name their tables here
        kept["TableName"] = sorted(params["RequestItems"])
    context[_PARAMS] = kept


class _Writer:
    def __init__(self, directory: str) -> None:
        self.directory = directory

    def __call__(self, http_response: Any, parsed: dict[str, Any], model: Any,
                 context: dict[str, Any], **_: Any) -> None:
        record = {
            "function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", ""),
            "service": model.service_model.service_name,
            "operation": model.name,
            "params": context.get(_PARAMS, {}),
            "status": getattr(http_response, "status_code", 0),
            "error": parsed.get("Error", {}).get("Code", ""),
            "env": {name: os.environ.get(name, "") for name in (
                "S3SPLIT_WORK_LOCATION", "S3SPLIT_DYNAMODB_TABLE", "S3SPLIT_IDEMPOTENCY_TABLE",
                "S3SPLIT_SCHEMA", "S3SPLIT_DYNAMODB_TYPES")},
        }
        # One line per write in append mode: lines from several processes do not interleave.
        path = os.path.join(self.directory, f"calls-{os.getpid()}.jsonl")
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record, default=str) + "\n")
