"""Worker function: process one chunk with the deployment's processor, or record its failure."""

import os
from typing import Any, Literal

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from s3split.aws_calls import record_if_asked
from s3split.deployment import Deployment
from s3split.pipeline.chunk import load_manifest, process_chunk, record_failure
from s3split.pipeline.lanes import failure_cost, worker_cost
from s3split.pipeline.spec import RunSpec, parse_event
from s3split.processors.idempotency import ChunkIdempotency
from s3split.processors.registry import get_processor
from s3split.split.manifest import Manifest
from s3split.storage import Storage
from s3split.transient import transient_errors

record_if_asked()  # (tests: before any client is made)
logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "s3split"))
tracer = Tracer()
storage = Storage()
deployment = Deployment.from_env()
idempotency = ChunkIdempotency.from_env()  # None unless the table is set
manifests: dict[tuple[str, str | None], Manifest] = {}  # read once per version, when warm


class WorkerEvent(BaseModel):
    action: Literal["process", "record_failure"]
    execution: str
    run: dict[str, Any]
    index: int = Field(ge=0)
    retries: int = 0
    error: dict[str, str] = {}


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context(correlation_id_path="execution")
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> int:
    """Returns the history events this step used, for the lane's event budget."""
    request = parse_event(event, WorkerEvent)
    metrics.add_metric(f"{request.action.title().replace('_', '')}Invocations",
                       MetricUnit.Count, 1)
    spec = RunSpec.from_dict(request.run)
    with transient_errors(f"reading the manifest of {spec.location}"):
        manifest = load_manifest(spec, storage, manifests)
    logger.append_keys(chunk=request.index, run=spec.run_id)
    if request.action == "record_failure":
        error, cause = request.error.get("Error", "Unknown"), request.error.get("Cause", "")
        record_failure(spec, request.index, error, cause, storage, manifest)
        logger.error("chunk failed", extra={"error": error, "cause": cause[:500]})
        metrics.add_metric("FailedChunks", MetricUnit.Count, 1)
        return failure_cost()
    # Read again (a setting kept in SSM is cached for a minute): a changed schema reaches warm
    # workers too.
    processor = get_processor(spec.processor)
    if idempotency is not None:  # custom processors only; built-ins are idempotent already
        processor = idempotency.guard(spec.processor, processor, context)
    with transient_errors(f"chunk {request.index} of {spec.location}"):
        status = process_chunk(spec, request.index, request.retries + 1, storage, processor,
                               manifest)
    metrics.add_metric("ChunksProcessed", MetricUnit.Count, 1)
    metrics.add_metric("Rows", MetricUnit.Count, status["rows_in"])
    metrics.add_metric("Bytes", MetricUnit.Bytes, status["bytes"])
    return worker_cost(request.retries)
