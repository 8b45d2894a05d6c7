"""The real ASL file on moto's interpreter, the real handlers in worker processes, local storage.

Assertions read the execution history as well as the run's outputs.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_support import PROBE, Run, max_overlap

from s3split.engine.local import LocalEngine, local_engine


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="module")
def engine(work: Path) -> Iterator[LocalEngine]:
    with local_engine(str(work), workers=2, env={"S3SPLIT_PROCESSORS": PROBE}) as started:
        yield started


def test_happy_path_two_lanes_every_row_once(engine: LocalEngine, work: Path) -> None:
    run = Run(engine, work, "happy", rows=40, control={"sleep": 0.3})
    outcome = run.start(lanes=2)
    assert outcome.succeeded, outcome
    report = run.report
    assert report["chunks"] == report["chunks_ok"] > 2
    assert report["rows_ok"] == report["source_rows"] == 40 and report["accounted"]
    assert run.result_rows() == run.source_rows()
    probes = run.probes()
    assert sorted(p["index"] for p in probes) == list(range(report["chunks"]))
    assert max_overlap(probes) == 2
    assert len({p["pid"] for p in probes}) == 2
    lane_of = {p["index"]: p["pid"] for p in probes}
    assert len(lane_of) == report["chunks"]


def test_transient_failure_is_retried_then_succeeds(engine: LocalEngine, work: Path) -> None:
    run = Run(engine, work, "transient", rows=20, control={"transient": {"1": 1}})
    outcome = run.start(lanes=1)
    assert outcome.succeeded, outcome
    failed = [e for e in run.events(outcome)[0] if e["type"] == "LambdaFunctionFailed"]
    assert [e["lambdaFunctionFailedEventDetails"]["error"] for e in failed] == ["TransientError"]
    assert run.report["chunks_failed"] == 0
    status = json.loads((run.location / "status" / "part-00001.json").read_text())
    assert status["state"] == "ok" and status["attempt"] == 2


def test_permanent_failure_is_recorded_and_the_lane_goes_on(engine: LocalEngine,
                                                             work: Path) -> None:
    run = Run(engine, work, "permanent", rows=20, control={"invalid": [1]})
    outcome = run.start(lanes=1)
    assert not outcome.succeeded and outcome.error == "ToleratedFailuresExceeded"
    report = run.report
    assert report["chunks_failed"] == 1 and report["chunks_ok"] == report["chunks"] - 1
    assert report["failed"][0]["chunk"] == 1 and report["failed"][0]["error"] == "ChunkInvalid"
    assert "injected bad chunk 1" in report["failed"][0]["message"]
    assert report["rows_ok"] + report["rows_in_failed_chunks"] == report["source_rows"]
    assert report["accounted"]


def test_failures_within_tolerance_succeed(engine: LocalEngine, work: Path) -> None:
    run = Run(engine, work, "tolerated", rows=20, control={"invalid": [0, 2]})
    assert run.start(lanes=2, tolerate="2").succeeded
    assert run.report["chunks_failed"] == 2 and run.report["succeeded"]


def test_resume_runs_only_chunks_without_success(engine: LocalEngine, work: Path) -> None:
    run = Run(engine, work, "resume", rows=40, control={"invalid": [1, 3]})
    assert not run.start(lanes=2).succeeded
    chunks = run.report["chunks"]
    (run.location / "control.json").write_text("{}")  # "fix the code"
    before = len(run.probes())
    outcome = run.resume()
    assert outcome.succeeded, outcome
    assert sorted(p["index"] for p in run.probes()[before:]) == [1, 3]
    assert run.report["chunks_ok"] == chunks
    assert run.result_rows() == run.source_rows()


def test_wait_between_chunks_is_honoured(engine: LocalEngine, work: Path) -> None:
    run = Run(engine, work, "wait", rows=10)
    outcome = run.start(lanes=1, wait_seconds=1)
    assert outcome.succeeded
    events = run.events(outcome)[0]
    entered = [e["timestamp"] for e in events if e["type"] == "WaitStateEntered"]
    exited = [e["timestamp"] for e in events if e["type"] == "WaitStateExited"]
    assert len(entered) == len(exited) == run.report["chunks"]
    assert all((b - a).total_seconds() >= 0.9 for a, b in zip(entered, exited, strict=True))


def test_history_events_per_chunk(engine: LocalEngine, work: Path) -> None:
    """The marginal cost of a chunk in history events, measured from two run sizes."""
    small, large = Run(engine, work, "events-small", rows=10), Run(engine, work, "events-large",
                                                                     rows=50)
    counts = []
    for run in (small, large):
        outcome = run.start(lanes=2)
        assert outcome.succeeded
        counts.append((len(run.events(outcome)[0]), run.report["chunks"]))
    (events_small, chunks_small), (events_large, chunks_large) = counts
    per_chunk = (events_large - events_small) / (chunks_large - chunks_small)
    assert per_chunk <= 15, per_chunk


def test_bucket_outside_the_deployment_is_refused(engine: LocalEngine) -> None:
    outcome = engine.wait(engine.start({"source": "s3://somebody-elses-bucket/data.csv"}),
                          timeout_s=60)
    assert outcome.error == "BucketNotAllowed"
    assert "somebody-elses-bucket" in (outcome.cause or "")


def test_malformed_input_fails_with_a_named_error(engine: LocalEngine) -> None:
    outcome = engine.wait(engine.start({"sauce": "typo.csv"}), timeout_s=60)
    assert outcome.error == "InvalidInput"
    assert "sauce" in (outcome.cause or "")


def test_missing_source_fails_the_split_with_its_path(engine: LocalEngine, work: Path) -> None:
    missing = work / "nope.csv"
    outcome = engine.wait(engine.start({"source": str(missing), "run": str(work / "nope")}),
                          timeout_s=60)
    assert outcome.error == "SourceNotFound" and str(missing) in (outcome.cause or "")
    assert not (work / "nope" / "report.json").exists()
