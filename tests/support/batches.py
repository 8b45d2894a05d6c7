"""Batch imports on the engine with a stub for the runs they start: what the batch tests and
the account-limit tests share."""

from __future__ import annotations

import json
from typing import Any

from s3split.engine.local import ACCOUNT, FUNCTIONS, LocalEngine, function_arn, render_definition
from s3split.pipeline.batch import result_writer_substitutions
from tests.support.pipeline import BUCKET

WORK = f"s3://{BUCKET}/runs"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/s3split-local"


def stubbed_pipeline(engine: LocalEngine, name: str) -> tuple[str, str]:
    """The real definition whose batch starts a one-state machine: (pipeline, stub) ARNs."""
    stub = engine.sfn.create_state_machine(
        name=f"{name}-run", roleArn=ROLE,
        definition=json.dumps({"StartAt": "Run", "States": {"Run": {"Type": "Succeed"}}}),
    )["stateMachineArn"]
    definition = json.loads(render_definition(
        {f.placeholder: function_arn(fn) for fn, f in FUNCTIONS.items()}
        | result_writer_substitutions(WORK)))
    parameters = definition["States"]["Plan"]["Parameters"]  # (StartEach's selector as is)
    del parameters["machine.$"]
    parameters["machine"] = stub
    pipeline = engine.sfn.create_state_machine(name=name, roleArn=ROLE,
                                               definition=json.dumps(definition))
    return pipeline["stateMachineArn"], stub


def started_runs(engine: LocalEngine, stub: str) -> list[dict[str, Any]]:
    """The executions of ``stub``: the runs a batch started."""
    pages = engine.sfn.get_paginator("list_executions").paginate(stateMachineArn=stub)
    return [e for page in pages for e in page["executions"]]
