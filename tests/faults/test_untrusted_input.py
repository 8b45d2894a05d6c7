"""Untrusted execution inputs through the state machine, on an engine configured as the
deployment on AWS is in this respect: an input may not name its run location
(``S3SPLIT_RUN_FROM_INPUT`` unset), so a run's location is derived from its source under
the work location. Each refused input fails ``InvalidInput`` naming the field, before
anything is written or deleted.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3split.engine.local import LocalEngine, Outcome, local_engine
from s3split.pipeline.chunk import lambda_error_message


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalEngine, Path]]:
    work = tmp_path_factory.mktemp("work")
    with local_engine(str(work), workers=1, env={"S3SPLIT_RUN_FROM_INPUT": ""}) as engine:
        yield engine, work


def snapshot(*roots: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for root in roots for p in sorted(root.rglob("*"))
            if p.is_file()}


def earlier_run(work: Path, sources: Path, name: str, **changes: Any) -> Path:
    """A run of ``sources/name`` at its derived location, as an earlier run left it."""
    source = sources / name
    source.write_text("id\n1\n")
    location = work / name
    spec = {"run_id": "b-1a2b3c4d-5e6f7a8b", "source": str(source), "location": str(location),
            "chunk_size": 1000, "lanes": 1, "wait_seconds": 0, "processor": "jsonl",
            "tolerate": "0"} | changes
    (location / "status").mkdir(parents=True)
    (location / "results").mkdir()
    (location / "run.json").write_text(json.dumps(spec))
    (location / "status" / "part-00000.json").write_text('{"state": "ok"}')
    (location / "results" / "part-00000.jsonl").write_text('{"id": "1"}\n')
    return location


def refused(engine: LocalEngine, run_input: dict[str, Any], field: str) -> str:
    outcome: Outcome = engine.wait(engine.start(run_input), timeout_s=60)
    message = lambda_error_message(outcome.cause or "")
    assert outcome.error == "InvalidInput", outcome
    assert field in message, message
    return message


def test_an_input_naming_another_runs_location_is_refused(
        deployed: tuple[LocalEngine, Path], tmp_path: Path) -> None:
    """Today ``{"source": a, "run": <b's location>}`` overwrote run b."""
    engine, work = deployed
    b = earlier_run(work, tmp_path, "victim.csv")
    (tmp_path / "a.csv").write_text("id\n2\n")
    before = snapshot(work, tmp_path)
    refused(engine, {"source": str(tmp_path / "a.csv"), "run": str(b)}, "run")
    assert snapshot(work, tmp_path) == before


def test_a_resume_of_a_run_json_with_a_negative_wait_is_refused(
        deployed: tuple[LocalEngine, Path], tmp_path: Path) -> None:
    engine, work = deployed
    location = earlier_run(work, tmp_path, "negative.csv", wait_seconds=-7)
    before = snapshot(work, tmp_path)
    message = refused(engine, {"resume": str(location)}, "wait_seconds")
    assert "run.json" in message
    assert snapshot(work, tmp_path) == before  # no lock taken, nothing cleared


def test_a_continuation_with_an_unknown_field_is_invalid_input(
        deployed: tuple[LocalEngine, Path], tmp_path: Path) -> None:
    """Today this failed with a TypeError from ``RunSpec(**data)``."""
    engine, work = deployed
    location = earlier_run(work, tmp_path, "continued.csv")
    run = json.loads((location / "run.json").read_text()) | {"bogus": 1}
    lane = {"index": -1, "step": 1, "count": 1, "budget": 1000, "cost": 0}
    before = snapshot(work, tmp_path)
    refused(engine, {"continue": {"run": run, "lease": "x", "lanes": [lane],
                                  "generation": 1}}, "continue.run.bogus")
    assert snapshot(work, tmp_path) == before


def test_a_start_naming_an_unknown_processor_fails_in_plan(
        deployed: tuple[LocalEngine, Path], tmp_path: Path) -> None:
    """Today every chunk was split and then failed; a deployment without a schema or table
    has none for ``validate`` or ``dynamodb`` either."""
    engine, work = deployed
    (tmp_path / "a.csv").write_text("id\n2\n")
    before = snapshot(work, tmp_path)
    for processor, problem in (("nosuch", "unknown processor 'nosuch'"),
                               ("validate", "validate needs a schema"),
                               ("dynamodb", "dynamodb needs a table")):
        message = refused(engine, {"source": str(tmp_path / "a.csv"), "processor": processor},
                          "processor")
        assert problem in message, message
    assert snapshot(work, tmp_path) == before  # no split, no lock, no run.json


def test_a_resume_whose_processor_cannot_run_is_refused_before_the_lock(
        deployed: tuple[LocalEngine, Path], tmp_path: Path) -> None:
    engine, work = deployed
    location = earlier_run(work, tmp_path, "unschemed.csv", processor="validate")
    before = snapshot(work, tmp_path)
    message = refused(engine, {"resume": str(location)}, "processor")
    assert "validate needs a schema" in message
    assert snapshot(work, tmp_path) == before


def test_a_start_whose_source_is_gone_leaves_the_earlier_run_alone(
        deployed: tuple[LocalEngine, Path], tmp_path: Path) -> None:
    """An upload event delivered after the object was deleted (or a start naming a missing
    source) found no source only at Split, after Plan had deleted the earlier run's report,
    results and statuses."""
    engine, work = deployed
    source = tmp_path / "gone.csv"
    source.write_text("id\n1\n2\n")
    first = engine.wait(engine.start({"source": str(source)}), timeout_s=60)
    assert first.status == "SUCCEEDED", first
    source.unlink()
    before = snapshot(work)
    assert any(name.endswith("report.json") for name in before)
    outcome = engine.wait(engine.start({"source": str(source)}), timeout_s=60)
    assert outcome.error == "SourceNotFound", outcome
    assert str(source) in lambda_error_message(outcome.cause or "")
    assert snapshot(work) == before


def test_a_continuation_started_by_hand_cannot_carry_a_runs_lock(
        deployed: tuple[LocalEngine, Path], tmp_path: Path) -> None:
    """A continue input naming a run and the lease of its lock (an execution ARN, no secret)
    took the lock over from the running execution and ran lanes of its own choosing in the
    same location; at its end it released the lock under the real run."""
    engine, work = deployed
    location = earlier_run(work, tmp_path, "held.csv")
    lease = "arn:aws:states:us-east-1:123456789012:execution:pipeline:first"
    (location / "lock.json").write_text(json.dumps(
        {"lease": lease, "execution": lease, "since": "2026-01-01T00:00:00+00:00",
         "pid": None, "host": None}))
    run = json.loads((location / "run.json").read_text())
    lane = {"index": -1, "step": 1, "count": 1, "budget": 1000, "cost": 0}
    before = snapshot(work, tmp_path)
    message = refused(engine, {"continue": {"run": run, "lease": lease, "lanes": [lane],
                                            "generation": 1}}, "continue")
    assert "continue-as-new" in message
    assert snapshot(work, tmp_path) == before
