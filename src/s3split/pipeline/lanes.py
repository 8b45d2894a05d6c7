"""The stepped iterator: lane k of ``step`` lanes visits chunks k, k+step, k+2*step, ...

Each lane also carries a budget of execution-history events. A Standard
execution fails at 25,000 events, so a lane stops (``continue`` false, ``more``
true) before its share would run out, and the run continues as a new execution.

The retry counts below must equal the sums of ``MaxAttempts`` over each state's
Retry blocks in statemachine/pipeline.asl.json (tests/unit/test_asl.py checks).
"""

from typing import Any

from s3split.errors import InvalidOption

TASK_EVENTS = 5  # a Lambda task: entered, scheduled, started, succeeded, exited
RETRY_EVENTS = 3  # each retry: scheduled, started, failed
LOOP_EVENTS = TASK_EVENTS + 2 + 2  # per iteration: the Iterator task, the Choice, the Wait
WORKER_EVENTS = TASK_EVENTS
ITERATOR_MAX_RETRIES = 6  # the Iterator state's Retry
WORKER_MAX_RETRIES = 6 + 35  # the Work state's Retry: transient errors, then ChunkInProgress
RECORD_FAILURE_MAX_RETRIES = 6  # the RecordFailure state's Retry
# The most one iteration can cost: every retry of every task used, then the failure recorded.
WORST_ITERATION = (LOOP_EVENTS + RETRY_EVENTS * ITERATOR_MAX_RETRIES
                   + 2 * WORKER_EVENTS
                   + RETRY_EVENTS * (WORKER_MAX_RETRIES + RECORD_FAILURE_MAX_RETRIES))


def first_lanes(count: int, lanes: int, event_budget: int) -> list[dict[str, Any]]:
    """The initial state of each lane; a lane starts one step before its first chunk."""
    used = min(lanes, count)
    share = event_budget // max(used, 1)
    if count and share < WORST_ITERATION:
        # A lane that cannot afford one iteration would continue as new for ever.
        raise InvalidOption(f"event budget {event_budget} gives each of {used} lanes {share} "
                            f"history events, fewer than one iteration may use "
                            f"({WORST_ITERATION}); raise S3SPLIT_EVENT_BUDGET or use fewer lanes")
    return [lane(k - lanes, lanes, count, share) for k in range(used)]


def lane(index: int, step: int, count: int, budget: int) -> dict[str, Any]:
    return {"index": index, "step": step, "count": count, "budget": budget, "cost": 0}


def advance(state: dict[str, Any], retries: int = 0) -> dict[str, Any]:
    """``{index, step, count, budget, cost}`` -> the next index and whether to process it.

    ``retries`` is how often this Iterator invocation was retried (its events count too).
    """
    index = state["index"] + state["step"]
    budget = state["budget"] - state.get("cost", 0) - LOOP_EVENTS - RETRY_EVENTS * retries
    more = index < state["count"]
    return {
        "index": index,
        "step": state["step"],
        "count": state["count"],
        "budget": budget,
        "cost": 0,
        "continue": more and budget >= WORST_ITERATION,
        "more": more,
    }


def worker_cost(retries: int) -> int:
    """History events a worker task used, given how often it was retried."""
    return WORKER_EVENTS + RETRY_EVENTS * retries


def failure_cost() -> int:
    """Upper bound for a chunk whose worker exhausted its retries, plus RecordFailure's."""
    return (2 * WORKER_EVENTS
            + RETRY_EVENTS * (WORKER_MAX_RETRIES + RECORD_FAILURE_MAX_RETRIES))
