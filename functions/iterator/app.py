"""Iterator function: ``{index, step, count}`` in, the lane's next index and ``continue`` out."""

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from s3split.iterator import advance
from s3split.runinput import LaneState, parse_event

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return advance(parse_event(event, LaneState).state())
