"""statemachine/pipeline.asl.json against AWS's limits: Retry on every task for the errors AWS
documents, deterministic names for every StartExecution, and the event budget in
src/s3split/pipeline/lanes.py equal to what the Retry blocks allow."""

import itertools
import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3split.errors import InvalidInput, InvalidOption
from s3split.pipeline import lanes as iterator
from s3split.pipeline.batch import MAX_NAME, child_name, continuation_name

ASL = json.loads((Path(__file__).resolve().parents[2] / "statemachine" /
                  "pipeline.asl.json").read_text())
# What AWS recommends retrying for every Lambda task (Step Functions developer guide, "Handle
# transient Lambda service exceptions"), plus throttling.
LAMBDA_SERVICE_ERRORS = {"Lambda.ServiceException", "Lambda.AWSLambdaException",
                         "Lambda.SdkClientException", "Lambda.ClientExecutionTimeoutException",
                         "Lambda.TooManyRequestsException"}
START_EXECUTION = "arn:aws:states:::states:startExecution"
NAME_CHARS = set(string.ascii_letters + string.digits + "-_")


def states(within: dict[str, Any] = ASL) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in within["States"].items():
        yield name, state
        if "ItemProcessor" in state:
            yield from states(state["ItemProcessor"])


STATES = dict(states())


def retried(state: dict[str, Any]) -> set[str]:
    """Errors some retrier with MaxAttempts > 0 retries."""
    return {e for r in state.get("Retry", []) if r.get("MaxAttempts", 3) > 0
            for e in r["ErrorEquals"]}


def retries_of(state: dict[str, Any], error: str) -> int:
    """How often ``error`` is retried: the first retrier naming it (or States.ALL) decides."""
    for retrier in state.get("Retry", []):
        if error in retrier["ErrorEquals"] or "States.ALL" in retrier["ErrorEquals"]:
            return int(retrier.get("MaxAttempts", 3))
    return 0


def max_retries(state: dict[str, Any]) -> int:
    """Each retrier counts its own attempts: the most retries a state can make."""
    return sum(r.get("MaxAttempts", 3) for r in state.get("Retry", []))


def test_a_named_error_that_retrying_cannot_fix_is_never_retried() -> None:
    """A corrupt file in the run location fails at once (it took 68 s of RecordFailure's
    States.ALL retries), wherever a handler reads one; so does a processor's invalid result."""
    retrying = {name: retries_of(state, "RunFileCorrupt") for name, state in STATES.items()
                if state["Type"] == "Task" and state["Resource"].startswith("${")}
    assert {name: n for name, n in retrying.items() if n} == {}
    assert retries_of(STATES["Work"], "ProcessorResultInvalid") == 0


def test_every_lambda_task_retries_the_lambda_service_errors() -> None:
    lambda_tasks = {name: s for name, s in STATES.items()
                    if s["Type"] == "Task" and s["Resource"].startswith("${")}
    assert set(lambda_tasks) == {"Plan", "Split", "NextChunk", "Work", "RecordFailure",
                                 "Summarize", "Release", *RANGE_TASKS, *RANGE_RECORDS}
    # A timed-out invocation (Sandbox.Timedout: a cold start that missed the NextChunk task's
    # 10 s, a stalled S3 read) is retried like a crash.
    expected = LAMBDA_SERVICE_ERRORS | {"Runtime.ExitError", "Sandbox.Timedout"}
    for name, state in lambda_tasks.items():
        errors = retried(state)
        assert "States.ALL" in errors or errors >= expected, (name, expected - errors)


@pytest.mark.parametrize("name", ["StartOne", "ContinueAsNew"])
def test_each_start_execution_is_retried_under_a_name_of_its_own(name: str) -> None:
    state = STATES[name]
    assert state["Resource"] == START_EXECUTION
    assert "Name.$" in state["Parameters"]  # the same name on a retry: AWS starts it once
    assert "States.ALL" in retried(state)
    (last,) = [r for r in state["Retry"] if "States.ALL" in r["ErrorEquals"]]
    assert last is state["Retry"][-1] and last["MaxAttempts"] >= 3
    # A name that exists already is not retried: the run was started (or has ended).
    (first,) = [r for r in state["Retry"]
                if "StepFunctions.ExecutionAlreadyExistsException" in r["ErrorEquals"]]
    assert first["MaxAttempts"] == 0


def test_a_batch_starts_its_runs_on_the_arn_read_at_the_top_level() -> None:
    """In a Distributed Map's child, $$.StateMachine.Id is the child workflow's ARN, not this
    state machine's: Plan reads it at the top level and StartEach passes it down."""
    assert STATES["Plan"]["Parameters"]["machine.$"] == "$$.StateMachine.Id"
    selector = STATES["StartEach"]["ItemSelector"]
    assert selector["machine.$"] == "$.machine"
    assert STATES["StartOne"]["Parameters"]["StateMachineArn.$"] == "$.machine"
    for name, state in STATES.items():
        if name not in ("Plan", "ContinueAsNew"):  # (both run in the top-level execution)
            assert "$$.StateMachine" not in json.dumps(state), name


def test_every_start_execution_task_is_covered() -> None:
    starts = {n for n, s in STATES.items() if s.get("Resource") == START_EXECUTION}
    assert starts == {"StartOne", "ContinueAsNew"}


def test_a_continuation_that_cannot_start_releases_the_lock() -> None:
    catchers = STATES["ContinueAsNew"]["Catch"]
    assert catchers[-1]["ErrorEquals"] == ["States.ALL"]
    for catch in catchers:
        assert catch["Next"] == "Release"
        assert catch["ResultPath"] == "$.failure"  # what Failed reports after Release


def test_a_batch_keeps_neither_its_list_nor_its_results_in_the_state() -> None:
    each = STATES["StartEach"]
    assert each["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert each["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    assert "ItemsPath" not in each
    assert each["ResultWriter"]["Resource"] == "arn:aws:states:::s3:putObject"


def test_the_event_budget_counts_every_retry_the_asl_allows() -> None:
    assert max_retries(STATES["NextChunk"]) == iterator.ITERATOR_MAX_RETRIES
    assert max_retries(STATES["Work"]) == iterator.WORKER_MAX_RETRIES
    assert max_retries(STATES["RecordFailure"]) == iterator.RECORD_FAILURE_MAX_RETRIES
    # The iterator is told how often it was retried; the worker too.
    assert STATES["NextChunk"]["Parameters"]["retries.$"] == "$$.State.RetryCount"
    assert STATES["Work"]["Parameters"]["retries.$"] == "$$.State.RetryCount"
    worst_work = iterator.worker_cost(max_retries(STATES["Work"]))
    worst_record = iterator.worker_cost(max_retries(STATES["RecordFailure"]))
    assert iterator.failure_cost() == worst_work + worst_record
    worst_loop = iterator.LOOP_EVENTS + iterator.RETRY_EVENTS * max_retries(STATES["NextChunk"])
    assert worst_loop + worst_work + worst_record == iterator.WORST_ITERATION


def test_an_iterator_retry_is_charged_to_the_lane() -> None:
    state = iterator.lane(0, 1, 10, 1000)
    assert iterator.advance(state, 4)["budget"] == \
        iterator.advance(state)["budget"] - 4 * iterator.RETRY_EVENTS


def test_the_next_chunk_task_reads_the_state_it_wrote_and_refuses_anything_else() -> None:
    """Checked without pydantic (the iterator's cold start), as strictly as the models check
    the other inputs: a bool is not a number, no unknown fields, numbers in range."""
    state = iterator.lane(-2, 2, 5, 1000)
    step = iterator.advance(state)
    assert iterator.lane_request({"lane": step, "retries": 1}) == (
        {k: v for k, v in step.items() if k not in ("continue", "more")}, 1)
    assert iterator.lane_request({"lane": {"index": 0, "step": 1, "count": 0}}) == (
        {"index": 0, "step": 1, "count": 0, "budget": 0, "cost": 0}, 0)
    for event, field in [
            ({"lane": {**state, "step": True}}, "lane.step"),
            ({"lane": {**state, "step": 0}}, "lane.step"),
            ({"lane": {**state, "step": 41}}, "lane.step"),
            ({"lane": {**state, "index": -41}}, "lane.index"),
            ({"lane": {**state, "count": "5"}}, "lane.count"),
            ({"lane": {**state, "count": 5.0}}, "lane.count"),
            ({"lane": {**state, "continue": 1}}, "lane.continue"),
            ({"lane": {**state, "module": "os"}}, "lane.module"),
            ({"lane": {"index": 0, "step": 1}}, "lane.count"),
            ({"lane": state, "retries": -1}, "retries"),
            ({"lane": state, "retries": False}, "retries"),
            ({"lane": state, "extra": 1}, "extra"),
            ({"lane": [1]}, "lane"),
            ([state], "event")]:
        with pytest.raises(InvalidInput) as refused:
            iterator.lane_request(event)
        message = str(refused.value)
        assert message.startswith(f"invalid execution input: {field}: ") and "\n" not in message


def test_a_budget_too_small_for_one_iteration_is_refused_not_looped() -> None:
    lanes = iterator.first_lanes(10, 2, 2 * iterator.WORST_ITERATION)
    assert [lane["budget"] for lane in lanes] == [iterator.WORST_ITERATION] * 2
    with pytest.raises(InvalidOption, match="event budget"):
        iterator.first_lanes(10, 2, 2 * iterator.WORST_ITERATION - 1)


LONGEST_ARN = "arn:aws-us-gov:states:us-gov-west-1:123456789012:execution:" + "m" * 80 + \
    ":" + "e" * 80


def test_names_are_valid_execution_names_for_the_longest_inputs() -> None:
    source = "s3://" + "b" * 63 + "/" + "ü k/" * 250 + "x" * 200 + ".csv"
    names = [child_name(LONGEST_ARN, source), child_name("a", "s3://b/.csv"),
             continuation_name("r" * 300, LONGEST_ARN, 10**12), continuation_name("", "x", 1)]
    for name in names:
        assert 1 <= len(name) <= MAX_NAME and set(name) <= NAME_CHARS, name


def test_names_are_deterministic_and_distinct_where_they_must_be() -> None:
    assert child_name("batch", "s3://b/a.csv") == child_name("batch", "s3://b/a.csv")
    assert child_name("batch", "s3://b/a.csv") != child_name("batch", "s3://b/x/a.csv")
    assert child_name("batch", "s3://b/a.csv") != child_name("batch-2", "s3://b/a.csv")
    first = continuation_name("run-1", "arn:...:start-1", 1)
    assert first == continuation_name("run-1", "arn:...:start-1", 1)
    assert first != continuation_name("run-1", "arn:...:start-1", 2)
    assert first != continuation_name("run-1", "arn:...:resume-1", 1)  # a resume's own chain


def test_errors_a_catch_all_does_not_catch_are_caught_by_name() -> None:
    """States.ALL does not catch States.DataLimitExceeded (AWS, and the engine, which enforces
    it): every catch-all also names it, with the same handling, so a too-large state still
    records its chunk or releases the run's lock. States.Runtime is caught by nothing, named
    or not: naming it would only look as if it were (a run that fails with it keeps its lock
    until the next start finds its execution ended and takes the lock over)."""
    checked = 0
    for name, state in STATES.items():
        catchers = state.get("Catch", [])
        catch_all = [c for c in catchers if c["ErrorEquals"] == ["States.ALL"]]
        if not catch_all or name == "Release":  # Release's own failure ends in Fail anyway
            continue
        named = [c for c in catchers if "States.DataLimitExceeded" in c["ErrorEquals"]]
        assert named and named[0]["Next"] == catch_all[0]["Next"], name
        assert catchers.index(named[0]) < catchers.index(catch_all[0]), name
        checked += 1
    assert checked == 12
    assert "States.Runtime" not in json.dumps(ASL)


# -- the range split ------------------------------------------------------------------------------

RANGE_TASKS = {"PlanRanges", "ScanRange", "Combine", "AssembleBatch", "FinishSplit"}
RANGE_RECORDS = {"RecordScanFailure", "RecordAssemblyFailure"}
RANGE_MAPS = {"ScanRanges": ("ScanRange", "RecordScanFailure", "scan"),
              "Assemble": ("AssembleBatch", "RecordAssemblyFailure", "assemble")}


def test_a_big_source_takes_the_range_split_and_comes_back_to_the_lanes() -> None:
    route = ASL["States"]["Route"]["Choices"]
    (ranges,) = [c for c in route if c["Next"] == "PlanRanges"]
    assert route.index(ranges) == len(route) - 1  # after batch and continue: Plan set it
    assert {"Variable": "$.split.ranges", "IsPresent": True} in ranges["And"]
    assert ASL["States"]["Route"]["Default"] == "Split"
    path = ["PlanRanges", "RangesPlanned", "ScanRanges", "Combine", "Assemble", "FinishSplit"]
    for state, following in itertools.pairwise(path):
        assert STATES[state].get("Next", STATES[state].get("Default")) == following, state
    assert STATES["FinishSplit"]["Next"] == "Lanes"
    # A manifest that still describes the source is reused, as the Split task reuses it.
    assert STATES["RangesPlanned"]["Choices"] == [
        {"Variable": "$.split.done", "BooleanEquals": True, "Next": "Lanes"}]


def test_every_range_split_task_retries_as_split_does_and_releases_the_lock() -> None:
    for name in RANGE_TASKS:
        assert STATES[name]["Retry"] == STATES["Split"]["Retry"], name
    for name in (*RANGE_TASKS - {"ScanRange", "AssembleBatch"}, *RANGE_MAPS):
        assert STATES[name]["Catch"] == STATES["Split"]["Catch"], name  # -> Release, $.failure


@pytest.mark.parametrize("name", sorted(RANGE_MAPS))
def test_range_maps_are_distributed_with_small_results(name: str) -> None:
    """Their children have histories of their own (a 1,000-range split stays far from the
    25,000 events of the parent); the item list is numbers, and each child returns what its
    task returns ({}), which the Map drops: the state stays within 256 KiB."""
    state = STATES[name]
    task, record, stage = RANGE_MAPS[name]
    processor = state["ItemProcessor"]
    assert processor["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert state["ItemsPath"].startswith("$.split.") and "ItemReader" not in state
    assert state["MaxConcurrencyPath"] == "$.split.concurrency"  # the template's parameter
    assert state["ItemSelector"] == {"run.$": "$.run", "index.$": "$$.Map.Item.Value"}
    assert state["ResultPath"] is None
    assert processor["StartAt"] == task and set(processor["States"]) == {task, record}
    for child in (task, record):
        assert "ResultPath" not in processor["States"][child]  # the result is the output
        assert processor["States"][child]["End"] is True
    # A child that fails for good keeps its error for the next step and ends: neither AWS
    # (which would fail the Map with its own error) nor moto (which ignores it) loses it.
    for catch in processor["States"][task]["Catch"]:
        assert (catch["Next"], catch["ResultPath"]) == (record, "$.error")
    recording = processor["States"][record]
    assert recording["Parameters"]["stage"] == stage
    assert recording["Parameters"]["error.$"] == "$.error"
    assert "States.ALL" in retried(recording)


def test_the_range_list_for_the_most_ranges_fits_the_state() -> None:
    from s3split.split.range_steps import MAX_RANGES

    items = json.dumps({"items": list(range(MAX_RANGES)), "concurrency": 1000})
    assert len(items.encode()) < 100 * 1024  # of 256 KiB, beside the run's settings
