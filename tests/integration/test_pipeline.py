"""The real ASL file on moto's interpreter, the real handlers in worker processes; storage on
local files and on S3 (a moto server on loopback). Assertions read the execution history as
well as the run's outputs.
"""


from s3split.storage import join
from tests.support.pipeline import Backend, Run, assert_accounted, max_overlap


def new_run(backend: Backend, name: str, rows: int = 20,
            control: dict[str, object] | None = None) -> Run:
    engine, storage, base = backend
    return Run(engine, storage, base, name, rows, control)


def test_happy_path_two_lanes_every_row_once(backend: Backend) -> None:
    run = new_run(backend, "happy", rows=40, control={"sleep": 0.3})
    outcome = run.start(lanes=2)
    assert outcome.succeeded, outcome
    report = run.report
    assert report["chunks"] == report["chunks_ok"] > 2
    assert report["rows_ok"] == 40
    assert_accounted(report, 40, run.manifest)
    assert run.result_rows() == run.source_rows()
    probes = run.probes()
    assert sorted(p["index"] for p in probes) == list(range(report["chunks"]))
    assert max_overlap(probes) == 2
    assert len({p["pid"] for p in probes}) == 2


def test_transient_failure_is_retried_then_succeeds(backend: Backend) -> None:
    run = new_run(backend, "transient", rows=20, control={"transient": {"1": 1}})
    outcome = run.start(lanes=1)
    assert outcome.succeeded, outcome
    failed = [e for e in run.events(outcome)[0] if e["type"] == "LambdaFunctionFailed"]
    assert [e["lambdaFunctionFailedEventDetails"]["error"] for e in failed] == ["TransientError"]
    assert run.report["chunks_failed"] == 0
    assert_accounted(run.report, 20, run.manifest)
    assert run.status(1)["state"] == "ok" and run.status(1)["attempt"] == 2


def test_permanent_failure_is_recorded_and_the_lane_goes_on(backend: Backend) -> None:
    run = new_run(backend, "permanent", rows=20, control={"invalid": [1]})
    outcome = run.start(lanes=1)
    assert not outcome.succeeded and outcome.error == "ToleratedFailuresExceeded"
    report = run.report
    assert report["chunks_failed"] == 1 and report["chunks_ok"] == report["chunks"] - 1
    assert report["failed"][0]["chunk"] == 1 and report["failed"][0]["error"] == "ChunkInvalid"
    assert report["failed"][0]["message"] == "injected bad chunk 1"
    assert_accounted(report, 20, run.manifest)


def test_a_processor_that_loses_a_row_fails_its_chunk(backend: Backend) -> None:
    """Its counts do not add up: the chunk fails (checked before anything is recorded, so
    the report still counts every record once) and what it wrote is removed, whatever the
    tolerance; a tolerance that allows the failed chunk lets the run succeed with it listed."""
    run = new_run(backend, "lost", rows=20, control={"lose": [1]})
    outcome = run.start(lanes=2, tolerate="100%")
    report = run.report
    assert outcome.succeeded and report["chunks_failed"] == 1, outcome
    failure = report["failed"][0]
    assert (failure["chunk"], failure["error"]) == (1, "ProcessorResultInvalid")
    assert "returned rows_in" in failure["message"] and "!= rows_out" in failure["message"]
    assert_accounted(report, 20, run.manifest)
    assert report["rows_in_failed_chunks"] == failure["rows"] > 0
    assert not run.storage.exists(join(run.location, "results", "part-00001.jsonl"))


def test_failures_within_tolerance_succeed(backend: Backend) -> None:
    run = new_run(backend, "tolerated", rows=20, control={"invalid": [0, 2]})
    assert run.start(lanes=2, tolerate="2").succeeded
    assert run.report["chunks_failed"] == 2 and run.report["succeeded"]
    assert_accounted(run.report, 20, run.manifest)


def test_resume_runs_only_chunks_without_success(backend: Backend) -> None:
    run = new_run(backend, "resume", rows=40, control={"invalid": [1, 3]})
    assert not run.start(lanes=2).succeeded
    chunks = run.report["chunks"]
    run.set_control({})  # "fix the code"
    before = {(p["index"], p["start"]) for p in run.probes()}
    outcome = run.resume()
    assert outcome.succeeded, outcome
    again = sorted(p["index"] for p in run.probes() if (p["index"], p["start"]) not in before)
    assert again == [1, 3]
    assert run.report["chunks_ok"] == chunks
    assert_accounted(run.report, 40, run.manifest)
    assert run.result_rows() == run.source_rows()


def test_wait_between_chunks_is_honoured(backend: Backend) -> None:
    run = new_run(backend, "wait", rows=20)
    outcome = run.start(lanes=1, wait_seconds=1)
    assert outcome.succeeded
    events = run.events(outcome)[0]
    entered = [e["timestamp"] for e in events if e["type"] == "WaitStateEntered"]
    exited = [e["timestamp"] for e in events if e["type"] == "WaitStateExited"]
    assert len(entered) == len(exited) == run.report["chunks"] > 1
    assert all((b - a).total_seconds() >= 0.9 for a, b in zip(entered, exited, strict=True))


def test_history_events_per_chunk(backend: Backend) -> None:
    """The marginal cost of a chunk in history events, measured from two run sizes."""
    counts = []
    for name, rows in (("events-small", 10), ("events-large", 50)):
        run = new_run(backend, name, rows=rows)
        outcome = run.start(lanes=2)
        assert outcome.succeeded
        counts.append((len(run.events(outcome)[0]), run.report["chunks"]))
    (events_small, chunks_small), (events_large, chunks_large) = counts
    per_chunk = (events_large - events_small) / (chunks_large - chunks_small)
    assert per_chunk <= 15, per_chunk


def test_bucket_outside_the_deployment_is_refused(backend: Backend) -> None:
    engine = backend[0]
    outcome = engine.wait(engine.start({"source": "s3://somebody-elses-bucket/data.csv"}),
                          timeout_s=60)
    assert outcome.error == "BucketNotAllowed"
    assert "somebody-elses-bucket" in (outcome.cause or "")


def test_malformed_input_fails_with_a_named_error(backend: Backend) -> None:
    engine = backend[0]
    outcome = engine.wait(engine.start({"sauce": "typo.csv"}), timeout_s=60)
    assert outcome.error == "InvalidInput"
    assert "sauce" in (outcome.cause or "")


def test_missing_source_fails_the_split_with_its_path(backend: Backend) -> None:
    engine, storage, base = backend
    missing, location = join(base, "nope.csv"), join(base, "nope")
    outcome = engine.wait(engine.start({"source": missing, "run": location}), timeout_s=60)
    assert outcome.error == "SourceNotFound" and missing in (outcome.cause or "")
    assert not storage.exists(join(location, "report.json"))


def test_a_second_run_of_the_same_source_reuses_its_split(backend: Backend) -> None:
    run = new_run(backend, "rerun", rows=30)
    assert run.start(lanes=2).succeeded
    _, storage, _ = backend
    part = join(run.location, "chunks", "part-00000.csv")
    with storage.open_read(part) as f:
        chunk = f.read()
    with storage.writer(part) as f:  # a re-split would overwrite this; a reuse processes it
        f.write(chunk.replace(b"x" * 80, b"y" * 80, 1))  # same size, same records
    assert run.start(lanes=2).succeeded
    assert {"y" * 80} <= {row["pad"] for row in run.result_rows()}


def test_a_resume_after_the_chunks_expired_splits_again(backend: Backend) -> None:
    run = new_run(backend, "expired", rows=30, control={"invalid": [1]})
    assert not run.start(lanes=2).succeeded
    _, storage, _ = backend
    chunks = join(run.location, "chunks")
    for name in storage.list(chunks):  # what the lifecycle rule does after ChunkRetentionDays
        if name.startswith("part-"):
            storage.delete(join(chunks, name))
    run.set_control({})
    outcome = run.resume()
    assert outcome.succeeded, outcome
    assert_accounted(run.report, 30, run.manifest)
    assert run.result_rows() == run.source_rows()
