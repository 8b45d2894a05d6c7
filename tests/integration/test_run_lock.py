"""Two runs on one location: the run lock through the real ASL on the embedded engine, with
local files and with S3 on a moto server."""

import subprocess
import sys
from dataclasses import asdict
from typing import Any

from s3split.holders import Holder
from s3split.pipeline.chunk import lambda_error_message
from s3split.pipeline.run_lock import lock_uri
from tests.support.pipeline import Backend, Run, assert_accounted


def new_run(backend: Backend, name: str, control: dict[str, Any] | None = None) -> Run:
    engine, storage, base = backend
    return Run(engine, storage, base, name, rows=20, control=control)


def test_a_second_run_started_at_once_is_refused_and_the_first_is_intact(
        backend: Backend) -> None:
    engine, storage, _ = backend
    run = new_run(backend, "twice", control={"sleep": 0.3})
    run_input = {"source": run.source, "run": run.location, "chunk_size": 1000,
                 "processor": "probe", "lanes": 1}
    first, second = engine.start(run_input), engine.start(run_input)
    outcomes = {arn: engine.wait(arn, timeout_s=120) for arn in (first, second)}

    won = [arn for arn, outcome in outcomes.items() if outcome.succeeded]
    refused = [outcome for outcome in outcomes.values() if not outcome.succeeded]
    assert len(won) == 1 and len(refused) == 1, outcomes
    assert refused[0].error == "RunInProgress", refused[0]
    message = lambda_error_message(refused[0].cause or "")
    assert run.location in message and won[0] in message, message
    assert_accounted(run.report, 20, run.manifest)
    assert run.result_rows() == run.source_rows()
    assert sorted(p["index"] for p in run.probes()) == list(range(run.manifest["count"]))
    assert not storage.exists(lock_uri(run.location))


def test_a_failed_run_unlocks_and_keeps_its_error(backend: Backend) -> None:
    storage = backend[1]
    run = new_run(backend, "fails")
    with storage.writer(run.source) as f:
        f.write(b'id,note\n1,"never closed\n')
    outcome = run.start()
    assert outcome.error == "UnterminatedQuote", outcome
    assert "byte 10 (line 2)" in lambda_error_message(outcome.cause or "")
    assert not storage.exists(lock_uri(run.location))
    assert run.start(processor="noop").error == "UnterminatedQuote"  # not RunInProgress


def test_the_lock_of_an_engine_that_died_is_taken_over(backend: Backend) -> None:
    _, storage, _ = backend
    run = new_run(backend, "stale")
    crashed = subprocess.Popen([sys.executable, "-c", "pass"])
    crashed.wait(timeout=30)
    stale = Holder.new("arn:aws:states:us-east-1:123456789012:execution:s3split-pipeline:gone",
                       engine_pid=crashed.pid)
    storage.write_json(lock_uri(run.location), asdict(stale))
    outcome = run.start()
    assert outcome.succeeded, outcome
    assert_accounted(run.report, 20, run.manifest)
    assert not storage.exists(lock_uri(run.location))
