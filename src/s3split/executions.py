"""Following a run's Step Functions executions: the continue-as-new chain and paged histories.

A run that nears the history limit continues as a new execution; the one that ends
succeeds with ``{"execution": <the next one's ARN>}`` as its output. Used by the local
engine and by ``s3split start``/``status`` on AWS.
"""

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

MAX_CHAIN = 10_000  # continue-as-new generations followed before giving up


def json_or_none(text: Any) -> Any:
    """A JSON text Step Functions returned (an input or an output), or None if it is not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def continued_as(described: dict[str, Any]) -> str | None:
    """The execution a finished one continued as, or None."""
    if described.get("status") != "SUCCEEDED":
        return None
    output = json_or_none(described.get("output"))
    following = output.get("execution") if isinstance(output, dict) else None
    return following if isinstance(following, str) else None


def follow(sfn: "SFNClient", executions: list[str],
           limit: int = MAX_CHAIN) -> Iterator[dict[str, Any]]:
    """Describe the newest of ``executions``; while it continued as new, append the next one
    and describe that. Yields each description, so the last one yielded is the newest."""
    while True:
        described = dict(sfn.describe_execution(executionArn=executions[-1]))
        yield described
        following = continued_as(described)
        if following is None or len(executions) >= limit:
            return
        executions.append(following)


def history(sfn: "SFNClient", execution_arn: str, page_size: int = 1000,
            max_pages: int | None = None) -> Iterator[dict[str, Any]]:
    """The events of one execution, oldest first, a page at a time."""
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": page_size}
    pages = 0
    while max_pages is None or pages < max_pages:
        page = sfn.get_execution_history(**kwargs)
        pages += 1
        yield from page["events"]  # type: ignore[misc]
        if not page.get("nextToken"):
            return
        kwargs["nextToken"] = page["nextToken"]
