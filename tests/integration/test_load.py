"""The load test: 2,000 chunks (``S3SPLIT_LOAD_RECORDS`` for more; 10,000 was measured) on the
embedded engine, continuing as new as often as needed, with no execution over Step Functions'
25,000 history events.

One record per chunk (``chunk_size`` 1 byte), the noop processor, 2 lanes, the default event
budget. Every execution of the run is followed and its history counted. Run with ``-s`` to see
the wall time, executions and events per chunk.
"""

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from s3split.engine.local import local_engine
from s3split.storage import Storage
from tests.support.pipeline import assert_accounted, tiny_csv

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]

# The default event budget (20,000 per execution) holds about 1,400 chunks: 2,000 continue as
# new, which is what the test shows, in a fifth of the time of 10,000 chunks.
RECORDS = int(os.environ.get("S3SPLIT_LOAD_RECORDS", "2000"))
HISTORY_LIMIT = 25_000  # a Standard execution fails at 25,000 events


def test_thousands_of_chunks_continue_as_new_within_the_history_limit(tmp_path: Path) -> None:
    source = tiny_csv(tmp_path / "in.csv", RECORDS)
    location = tmp_path / "run"
    run_input = {"source": str(source), "run": str(location), "chunk_size": 1,
                 "processor": "noop", "lanes": 2}
    with local_engine(str(tmp_path), workers=2) as engine:
        started = time.monotonic()
        outcome = engine.wait(engine.start(run_input), timeout_s=840)
        wall = time.monotonic() - started
        assert outcome.succeeded, outcome
        fetching = time.monotonic()
        histories = {arn: engine.history(arn) for arn in outcome.executions}
        fetched = time.monotonic() - fetching
        statuses = [engine.sfn.describe_execution(executionArn=arn)["status"]
                    for arn in outcome.executions]

    report: dict[str, Any] = Storage().read_json(str(location / "report.json"))
    chunks = report["chunks"]
    assert chunks >= RECORDS
    assert_accounted(report, RECORDS, Storage().read_json(str(location / "chunks" /
                                                               "manifest.json")))
    assert report["succeeded"] and report["rows_ok"] == RECORDS
    assert report["chunks_ok"] == chunks and report["chunks_failed"] == 0

    # One status record per chunk, nothing else; chunk i holds exactly record i.
    names = sorted(p.name for p in (location / "status").iterdir())
    assert names == [f"part-{i:05d}.json" for i in range(chunks)]
    for i, name in enumerate(names):
        status = json.loads((location / "status" / name).read_text())
        assert (status["index"], status["state"]) == (i, "ok"), status
        assert (status["rows"], status["rows_out"], status["source_line"]) == (1, 1, i + 2), status

    # Continued as new, every execution ended on its own, none near the history limit.
    assert len(outcome.executions) > 1
    assert len(set(outcome.executions)) == len(outcome.executions)
    assert statuses == ["SUCCEEDED"] * len(statuses)
    counts = [len(events) for events in histories.values()]
    assert max(counts) < HISTORY_LIMIT, counts
    for events in histories.values():
        assert events[0]["type"] == "ExecutionStarted"
        assert events[-1]["type"] == "ExecutionSucceeded"
    total = sum(counts)
    print(f"\nload: {chunks:,} chunks in {wall:.1f} s ({wall / chunks * 1000:.1f} ms/chunk), "
          f"{len(counts)} executions, events per execution {counts}, max {max(counts):,}, "
          f"total {total:,}, {total / chunks:.2f} events per chunk, histories fetched in "
          f"{fetched:.1f} s")
