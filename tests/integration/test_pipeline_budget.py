"""Long runs: continue-as-new under a small event budget, and a split across invocations."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from s3split.engine.local import LocalEngine, local_engine
from s3split.pipeline.lanes import WORST_ITERATION
from s3split.storage import Storage
from tests.support.pipeline import PROBE, Run


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")


BUDGET = 2 * WORST_ITERATION + 20  # two lanes, each just over one worst-case iteration


@pytest.fixture(scope="module")
def budget_engine(work: Path) -> Iterator[LocalEngine]:
    env = {"S3SPLIT_PROCESSORS": PROBE, "S3SPLIT_EVENT_BUDGET": str(BUDGET),
           "S3SPLIT_SPLIT_SAFETY_MS": str(10**9)}
    with local_engine(str(work), workers=2, env=env) as started:
        yield started


def test_continue_as_new_and_split_across_invocations(budget_engine: LocalEngine,
                                                      work: Path) -> None:
    """A small event budget forces several executions; a huge safety margin makes every
    Split invocation stop after one chunk."""
    run = Run(budget_engine, Storage(), str(work), "continue", rows=200)
    outcome = run.start(lanes=2)
    assert outcome.succeeded, outcome
    histories = run.events(outcome)
    assert len(histories) >= 3
    chunks = run.report["chunks"]
    split_loop = 7 * (chunks + 1)  # Split task and its Choice, once per invocation
    assert len(histories[0]) < BUDGET + split_loop + 60
    assert all(len(events) < BUDGET + 60 for events in histories[1:])
    splits = [e for e in histories[0] if e["type"] == "TaskStateEntered"
              and e["stateEnteredEventDetails"]["name"] == "Split"]
    assert len(splits) == chunks  # one chunk per invocation
    assert sorted(p["index"] for p in run.probes()) == list(range(chunks))
    assert run.result_rows() == run.source_rows()
