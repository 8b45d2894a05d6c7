"""The failure paths under load: 2,000 one-record chunks, a tenth failing for good and a tenth
throttled twice, on the engine with AWS's 25,000-event history limit in force.

Processor ``failing_noop`` (tests/support/pipeline_processors.py): chunks with
``index % 10 == 3`` raise ChunkInvalid, those with ``index % 10 == 7`` raise TransientError on
their first two attempts.
Retry intervals are skipped (``retry_interval_scale=0``); the tolerance is exactly the 200
failures. Run with ``-s`` to see the wall time and the events per execution.
"""

import json
import time
from pathlib import Path
from typing import Any

import pytest

from s3split.engine.local import local_engine
from s3split.engine.quotas import AWS_QUOTAS
from s3split.storage import Storage
from tests.support.pipeline import assert_accounted, tiny_csv

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]

RECORDS = 2_000
FAILING = RECORDS // 10
PROCESSORS = "failing_noop=tests.support.pipeline_processors:failing_noop"


def test_two_thousand_chunks_with_failures_stay_within_the_history_limit(
        tmp_path: Path) -> None:
    source = tiny_csv(tmp_path / "in.csv", RECORDS)
    location = tmp_path / "run"
    run_input = {"source": str(source), "run": str(location), "chunk_size": 1,
                 "processor": "failing_noop", "lanes": 2, "tolerate": str(FAILING)}
    assert AWS_QUOTAS.history_events == 25_000  # the engine's default, enforced
    with local_engine(str(tmp_path), workers=2, env={"S3SPLIT_PROCESSORS": PROCESSORS},
                      retry_interval_scale=0) as engine:
        started = time.monotonic()
        outcome = engine.wait(engine.start(run_input), timeout_s=840)
        wall = time.monotonic() - started
        histories = {arn: engine.history(arn) for arn in outcome.executions}
    assert outcome.succeeded, outcome

    counts = [len(events) for events in histories.values()]
    assert max(counts) < AWS_QUOTAS.history_events, counts
    for events in histories.values():
        assert events[-1]["type"] == "ExecutionSucceeded", events[-1]
    assert len(outcome.executions) > 1  # a tenth retried twice: more than one budget's worth

    report: dict[str, Any] = Storage().read_json(str(location / "report.json"))
    manifest = Storage().read_json(str(location / "chunks" / "manifest.json"))
    assert_accounted(report, RECORDS, manifest)
    assert report["chunks"] == RECORDS
    assert report["chunks_failed"] == FAILING
    assert report["rows_ok"] + report["rows_in_failed_chunks"] == RECORDS
    assert report["rows_in_failed_chunks"] == FAILING and report["rows_rejected"] == 0
    assert report["succeeded"] is True  # 200 failures, 200 tolerated

    states = {}
    for path in (location / "status").iterdir():
        status = json.loads(path.read_text())
        states[status["index"]] = status["state"]
    assert sorted(states) == list(range(RECORDS))
    assert {i for i, state in states.items() if state != "ok"} == set(range(3, RECORDS, 10))
    attempts = [p.name for p in (location / "attempts").iterdir()]
    assert len(attempts) == 3 * FAILING  # every throttled chunk: two failures, one success

    retried = sum(e["type"] == "LambdaFunctionFailed"
                  and e["lambdaFunctionFailedEventDetails"]["error"] == "TransientError"
                  for events in histories.values() for e in events)
    assert retried == 2 * FAILING
    print(f"\nload-failures: {RECORDS:,} chunks ({FAILING} failed, {FAILING} throttled twice) "
          f"in {wall:.1f} s, {len(counts)} executions, events per execution {counts}, "
          f"max {max(counts):,}")
