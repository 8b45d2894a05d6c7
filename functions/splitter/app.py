"""Splitter function: the run-level steps Plan, Split and Summarize, and Release on failure;
for a big source the range split's steps (PlanRanges, ScanRange, Combine, AssembleBatch,
FinishSplit, and RecordRangeFailure for a Map item that failed for good).

The state machine names the action in each Task's Parameters; the start input
only ever arrives nested under ``input``, so it cannot pick the action.
"""

import os
from collections.abc import Callable
from functools import cache, partial
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from s3split.aws_calls import record_if_asked
from s3split.deployment import Deployment
from s3split.holders import holder_alive
from s3split.pipeline import range_tasks
from s3split.pipeline.run_lock import release
from s3split.pipeline.spec import RunSpec, parse_event
from s3split.pipeline.steps import plan, split_step, summarize
from s3split.storage import Storage
from s3split.transient import transient_errors

record_if_asked()  # (tests: before any client is made)
logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "s3split"))
tracer = Tracer()
storage = Storage()
deployment = Deployment.from_env()
# Only asked whether a stale lock's holder still runs, so created on first use.
alive = partial(holder_alive, sfn=cache(lambda: boto3.client("stepfunctions")))
# Stop splitting this long before the invocation's end; the state machine calls again.
SAFETY_MS = int(os.environ.get("S3SPLIT_SPLIT_SAFETY_MS", "60000"))


class SplitterEvent(BaseModel):
    action: Literal["plan", "split", "summarize", "release", "plan_ranges", "scan_range",
                    "record_range_failure", "combine", "assemble", "finish_split"]
    execution: str
    machine: str = ""  # this state machine's ARN (Plan: a batch starts its runs on it)
    input: Any = None
    run: dict[str, Any] | None = None
    lease: str = ""
    token: dict[str, Any] | None = None
    lanes: list[dict[str, Any]] = []
    generation: int = 0
    index: int = 0  # a range (scan_range) or a batch of chunks (assemble)
    stage: Literal["scan", "assemble"] = "scan"
    error: dict[str, Any] | None = None


def plan_run(request: SplitterEvent, context: LambdaContext) -> dict[str, Any]:
    planned = plan(request.input, request.execution, deployment, storage, alive)
    if planned["mode"] == "batch":
        planned["machine"] = request.machine
    metrics.add_metric("RunsPlanned", MetricUnit.Count, planned.get("count", 1))
    logger.info("planned", extra={"mode": planned["mode"]})
    return planned


def split_source(request: SplitterEvent, context: LambdaContext) -> dict[str, Any]:
    spec = RunSpec.from_dict(request.run or {})
    result = split_step(spec, request.token, deployment, storage,
                        lambda: context.get_remaining_time_in_millis() < SAFETY_MS)
    if result["done"]:
        metrics.add_metric("Chunks", MetricUnit.Count, result["count"])
        metrics.add_metric("Rows", MetricUnit.Count, result["rows"])
    logger.info("split step", extra={"done": result["done"], "source": spec.source})
    return result


def summarize_run(request: SplitterEvent, context: LambdaContext) -> dict[str, Any]:
    spec = RunSpec.from_dict(request.run or {})
    summary = summarize(spec, request.lanes, request.generation, request.lease, deployment,
                        storage)
    if summary["more"]:
        metrics.add_metric("ContinuedAsNew", MetricUnit.Count, 1)
    else:  # the workers count failed chunks (FailedChunks); this counts runs
        metrics.add_metric("RunsFailed", MetricUnit.Count, 0 if summary["succeeded"] else 1)
    logger.info("summarized", extra=summary)
    return summary


def release_lock(request: SplitterEvent, context: LambdaContext) -> dict[str, Any]:
    spec = RunSpec.from_dict(request.run or {})
    release(spec.location, request.lease, storage)
    return {"released": spec.location}


def plan_ranges(request: SplitterEvent, context: LambdaContext) -> dict[str, Any]:
    return range_tasks.plan_ranges(RunSpec.from_dict(request.run or {}), deployment, storage)


def scan_range(request: SplitterEvent, context: LambdaContext) -> dict[str, Any]:
    return range_tasks.scan_one(RunSpec.from_dict(request.run or {}), request.index, storage)


def record_range_failure(request: SplitterEvent, context: LambdaContext) -> dict[str, Any]:
    return range_tasks.record_failure(RunSpec.from_dict(request.run or {}), request.stage,
                                 request.index, request.error, storage)


def combine(request: SplitterEvent, context: LambdaContext) -> dict[str, Any]:
    return range_tasks.combine_ranges(RunSpec.from_dict(request.run or {}), deployment, storage)


def assemble(request: SplitterEvent, context: LambdaContext) -> dict[str, Any]:
    return range_tasks.assemble_batch(RunSpec.from_dict(request.run or {}), request.index, storage)


def finish_split(request: SplitterEvent, context: LambdaContext) -> dict[str, Any]:
    result = range_tasks.finish_split(RunSpec.from_dict(request.run or {}), deployment, storage)
    metrics.add_metric("Chunks", MetricUnit.Count, result["count"])
    metrics.add_metric("Rows", MetricUnit.Count, result["rows"])
    return result


Action = Callable[[SplitterEvent, LambdaContext], dict[str, Any]]
ACTIONS: dict[str, Action] = {"plan": plan_run, "split": split_source,
                              "summarize": summarize_run, "release": release_lock,
                              "plan_ranges": plan_ranges, "scan_range": scan_range,
                              "record_range_failure": record_range_failure,
                              "combine": combine, "assemble": assemble,
                              "finish_split": finish_split}


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context(correlation_id_path="execution")
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(event, SplitterEvent)
    metrics.add_metric(f"{request.action.title()}Invocations", MetricUnit.Count, 1)
    with transient_errors(f"{request.action} step of execution {request.execution}"):
        return ACTIONS[request.action](request, context)
