"""The stepped iterator: lane k of ``step`` lanes visits chunks k, k+step, k+2*step, ...

Each lane also carries a budget of execution-history events. A Standard
execution fails at 25,000 events, so a lane stops (``continue`` false, ``more``
true) before its share would run out, and the run continues as a new execution.
"""

from typing import Any

LOOP_EVENTS = 9  # per iteration: the Iterator task (5), the Choice (2) and the Wait (2)
WORKER_EVENTS = 5  # a Lambda task: entered, scheduled, started, succeeded, exited
RETRY_EVENTS = 3  # each retry: scheduled, started, failed
WORKER_MAX_ATTEMPTS = 6  # must match the Worker's Retry MaxAttempts in the ASL
# The most one iteration can cost: every retry used, then the failure recorded.
WORST_ITERATION = LOOP_EVENTS + 2 * WORKER_EVENTS + RETRY_EVENTS * WORKER_MAX_ATTEMPTS


def first_lanes(count: int, lanes: int, event_budget: int) -> list[dict[str, Any]]:
    """The initial state of each lane; a lane starts one step before its first chunk."""
    used = min(lanes, count)
    return [lane(k - lanes, lanes, count, event_budget // max(used, 1)) for k in range(used)]


def lane(index: int, step: int, count: int, budget: int) -> dict[str, Any]:
    return {"index": index, "step": step, "count": count, "budget": budget, "cost": 0}


def advance(state: dict[str, Any]) -> dict[str, Any]:
    """``{index, step, count, budget, cost}`` -> the next index and whether to process it."""
    index = state["index"] + state["step"]
    budget = state["budget"] - state.get("cost", 0) - LOOP_EVENTS
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
    """Upper bound for a chunk whose worker exhausted its retries, plus RecordFailure."""
    return 2 * WORKER_EVENTS + RETRY_EVENTS * WORKER_MAX_ATTEMPTS
