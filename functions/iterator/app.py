"""Iterator function: a lane's ``{index, step, count, budget, cost}`` and the Iterator task's
retry count in, the lane's next index and ``continue`` out."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from s3split.aws_calls import record_if_asked
from s3split.pipeline.inputs import LaneState, parse_event
from s3split.pipeline.lanes import advance

record_if_asked()  # (tests: before any client is made)
logger = Logger()
tracer = Tracer()


class IteratorEvent(BaseModel):
    lane: LaneState
    retries: int = Field(default=0, ge=0)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = parse_event(event, IteratorEvent)
    return advance(request.lane.state(), request.retries)
