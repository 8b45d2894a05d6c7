"""The stepped iterator: lane k of ``step`` lanes visits chunks k, k+step, k+2*step, ...

Each lane also carries a budget of execution-history events. A Standard
execution fails at 25,000 events, so a lane stops (``continue`` false, ``more``
true) before its share would run out, and the run continues as a new execution.

The retry counts below must equal the sums of ``MaxAttempts`` over each state's
Retry blocks in statemachine/pipeline.asl.json (tests/unit/test_asl.py checks).
"""

from typing import Any, cast

from s3split.deployment import MAX_LANES
from s3split.errors import InvalidInput, InvalidOption

TASK_EVENTS = 5  # a Lambda task: entered, scheduled, started, succeeded, exited
RETRY_EVENTS = 3  # each retry: scheduled, started, failed
LOOP_EVENTS = TASK_EVENTS + 2 + 2  # per iteration: the NextChunk task, the Choice, the Wait
WORKER_EVENTS = TASK_EVENTS
ITERATOR_MAX_RETRIES = 6  # the NextChunk state's Retry
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

    ``retries`` is how often this NextChunk invocation was retried (its events count too).
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


# The NextChunk task's input, checked without pydantic (the iterator function's cold start has
# 128 MB and a 10 s timeout): field -> (type, lowest, highest); bool is not an int here.
_LANE_FIELDS: dict[str, tuple[type, int | None, int | None]] = {
    "index": (int, -MAX_LANES, None), "step": (int, 1, MAX_LANES), "count": (int, 0, None),
    "budget": (int, None, None), "cost": (int, None, None),
    "continue": (bool, None, None), "more": (bool, None, None)}
_LANE_REQUIRED = ("index", "step", "count")


def lane_request(event: Any) -> tuple[dict[str, Any], int]:
    """``{"lane": {index, step, count, budget, cost[, continue, more]}, "retries": n}`` ->
    the lane's state and the retry count, or one InvalidInput naming the field."""
    def refuse(field: str, problem: str) -> InvalidInput:
        return InvalidInput(f"invalid execution input: {field}: {problem}")

    if not isinstance(event, dict):
        raise refuse("event", f"expected an object, got {type(event).__name__}")
    if unknown := sorted(set(event) - {"lane", "retries"}):
        raise refuse(unknown[0], "unexpected field")
    retries = event.get("retries", 0)
    if type(retries) is not int or retries < 0:
        raise refuse("retries", f"expected a whole number >= 0, got {retries!r}")
    lane_state = event.get("lane")
    if not isinstance(lane_state, dict):
        raise refuse("lane", f"expected an object, got {lane_state!r}")
    if unknown := sorted(set(lane_state) - set(_LANE_FIELDS)):
        raise refuse(f"lane.{unknown[0]}", "unexpected field")
    for name in _LANE_REQUIRED:
        if name not in lane_state:
            raise refuse(f"lane.{name}", "missing")
    for name, value in lane_state.items():
        kind, lowest, highest = _LANE_FIELDS[name]
        if value is None and kind is bool:
            continue
        if type(value) is not kind:
            raise refuse(f"lane.{name}", f"expected {kind.__name__}, got {value!r}")
        if kind is bool:
            continue
        number = cast(int, value)
        if (lowest is not None and number < lowest) or (highest is not None and number > highest):
            raise refuse(f"lane.{name}", f"{number} is outside {lowest}..{highest}")
    state = {"budget": 0, "cost": 0} | {k: v for k, v in lane_state.items()
                                         if k not in ("continue", "more")}
    return state, retries
