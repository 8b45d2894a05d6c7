"""Iterator function (the NextChunk task): a lane's ``{index, step, count, budget, cost}`` and
the task's retry count in, the lane's next index and ``continue`` out.

Pure arithmetic with no AWS calls, on 128 MB with a 10 s timeout: it imports only what it uses
(no pydantic, numpy or X-Ray SDK; tests/unit/test_cold_start.py holds it to a budget). The
function's traces come from Lambda's active tracing.
"""

from typing import Any

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from s3split.aws_calls import record_if_asked
from s3split.pipeline.lanes import advance, lane_request

record_if_asked()  # (tests: before any client is made)
logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state, retries = lane_request(event)
    return advance(state, retries)
