"""The range split through the real ASL on the embedded engine, on local files and on S3 (a moto
server): a source over the (lowered) threshold takes PlanRanges -> ScanRanges -> Combine ->
Assemble -> FinishSplit and ends with the chunks, manifest (but its ``assembly`` record) and
report of the sequential Split, which an engine with the default threshold runs on the same
source first. Faults (a failed range task, a rewritten source, a killed run): see
tests/faults/test_range_split_faults.py."""

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from s3split.engine.local import LocalEngine, Outcome, local_engine
from s3split.errors import MalformedCsv
from s3split.split.manifest import SplitSettings
from s3split.split.splitter import split
from s3split.storage import Storage, basename, join
from tests.support.pipeline import (
    PROBE,
    RANGED,
    Run,
    assert_accounted,
    work_storage,
)

pytestmark = pytest.mark.timeout(600)

ROWS = 60  # ~110 bytes a record: 7 KB, chunks of 1000 bytes
RANGE_STATES = ["PlanRanges", "ScanRanges", "Combine", "Assemble", "FinishSplit"]
VARYING = ("run_id", "location", "duration_s", "finished_at")  # of one run, not of its split


@dataclass
class Backend:
    engine: LocalEngine
    storage: Storage
    base: str
    kind: str
    reference: Run  # its source split by the sequential Split, and processed
    reference_outcome: Outcome


@pytest.fixture(scope="module", params=["local", "s3"])
def backend(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    with ExitStack() as stack:
        base, storage, env = stack.enter_context(
            work_storage(request.param, tmp_path_factory.mktemp("work")))
        env = env | {"S3SPLIT_PROCESSORS": PROBE}
        with local_engine(base, workers=2, env=env) as sequential:
            reference = Run(sequential, storage, base, "reference", rows=ROWS)
            outcome = reference.start(lanes=2)
            assert outcome.succeeded, outcome
            assert "PlanRanges" not in entered(sequential, outcome)
        engine = stack.enter_context(local_engine(base, workers=2, env=env | RANGED))
        yield Backend(engine, storage, base, request.param, reference, outcome)


def entered(engine: LocalEngine, outcome: Outcome) -> list[str]:
    """The states the first execution entered, in order (a Map's items not included)."""
    return [e[key]["name"] for e in engine.history(outcome.executions[0])
            for key in ("stateEnteredEventDetails",) if key in e]


def ranged_run(backend: Backend, name: str, rows: int = ROWS, **control: Any) -> Run:
    return Run(backend.engine, backend.storage, backend.base, name, rows, control or None)


def chunks(storage: Storage, manifest: dict[str, Any]) -> list[bytes]:
    out = []
    for entry in manifest["chunks"]:
        with storage.open_read(entry["uri"]) as f:
            out.append(f.read())
    return out


def without_uris(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest | {"chunks": [c | {"uri": basename(c["uri"])} for c in manifest["chunks"]]}


def test_a_big_source_is_split_in_ranges_into_the_sequential_chunks_manifest_and_report(
        backend: Backend) -> None:
    reference = backend.reference
    run = ranged_run(backend, "same-source")
    outcome = run.start(lanes=2, source=reference.source)
    assert outcome.succeeded, outcome
    states = entered(backend.engine, outcome)
    assert "Split" not in states
    assert [s for s in states if s in RANGE_STATES] == RANGE_STATES
    manifest, expected = run.manifest, reference.manifest
    assembly = manifest.pop("assembly")
    assert without_uris(manifest) == without_uris(expected) and expected["count"] > 4
    assert chunks(backend.storage, manifest) == chunks(backend.storage, expected)
    method = "read_write" if backend.kind == "local" else "upload"  # (chunks < 5 MiB)
    assert assembly == {"scan": "ranges", "ranges": 5, "batches": (expected["count"] + 1) // 2,
                        "chunks": [method] * expected["count"]}
    report, reference_report = run.report, reference.report
    for document in (report, reference_report):
        for key in VARYING:
            document.pop(key)
    assert report == reference_report
    assert_accounted(run.report, ROWS, run.manifest)
    assert backend.storage.list(join(run.location, "ranges")) == []
    assert not backend.storage.exists(join(run.location, "lock.json"))


def test_a_strict_error_in_a_middle_range_fails_as_the_single_pass_does(
        backend: Backend) -> None:
    run = ranged_run(backend, "strict")
    bad = run.text.replace('45,"name, 45"', "45,5'10\" name", 1)
    with backend.storage.writer(run.source) as f:
        f.write(bad.encode())
    settings = SplitSettings(chunk_size=1000, strict=True)
    with pytest.raises(MalformedCsv) as single:
        split(run.source, join(run.location, "sequential"), settings, backend.storage)
    at = int(str(single.value).split("at byte ")[1].split()[0])
    # Past the first 4 KiB (the header's scan) and in neither the first nor the last range.
    assert 4096 < at < len(bad) - 1500
    outcome = run.start(lanes=2, strict=True)
    assert outcome.error == "MalformedCsv"
    assert json.loads(outcome.cause or "")["errorMessage"] == str(single.value)
    states = entered(backend.engine, outcome)
    assert states[-3:] == ["Combine", "Release", "Failed"]
    assert not backend.storage.exists(join(run.location, "chunks", "manifest.json"))
    assert not backend.storage.exists(join(run.location, "lock.json"))  # released
    assert not backend.storage.exists(join(run.location, "report.json"))


def test_a_resume_reuses_the_range_split_and_runs_only_the_failed_chunks(
        backend: Backend) -> None:
    run = ranged_run(backend, "resume", invalid=[1, 3])
    assert not run.start(lanes=2).succeeded
    manifest = run.manifest
    run.set_control({})
    before = {(p["index"], p["start"]) for p in run.probes()}
    outcome = run.resume()
    assert outcome.succeeded, outcome
    assert "ScanRanges" not in entered(backend.engine, outcome)  # PlanRanges reused it
    assert run.manifest == manifest
    again = sorted(p["index"] for p in run.probes() if (p["index"], p["start"]) not in before)
    assert again == [1, 3]
    assert_accounted(run.report, ROWS, run.manifest)
    assert run.result_rows() == run.source_rows()


def test_a_resume_whose_manifest_is_gone_splits_in_ranges_again(backend: Backend) -> None:
    run = ranged_run(backend, "regone", invalid=[2])
    assert not run.start(lanes=2).succeeded
    manifest = run.manifest
    backend.storage.delete(join(run.location, "chunks", "manifest.json"))
    run.set_control({})
    outcome = run.resume()
    assert outcome.succeeded, outcome
    assert [s for s in entered(backend.engine, outcome) if s in RANGE_STATES] == RANGE_STATES
    assert without_uris(run.manifest) == without_uris(manifest)
    assert_accounted(run.report, ROWS, run.manifest)
    assert run.result_rows() == run.source_rows()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local"], indirect=True)  # the same states on S3
def test_a_thousand_range_split_fits_the_quotas(backend: Backend) -> None:
    """The engine enforces AWS's quotas (25,000 history events, 256 KiB states): a split of
    1,000 ranges costs the execution a few dozen events and carries a few KiB of state (the
    Maps' children have histories of their own on AWS; moto keeps one per Map run)."""
    rows = 11_700  # ~1.5 MB: over 1,000 ranges of 1,500 bytes
    run = ranged_run(backend, "thousand", rows=rows)
    started = time.monotonic()
    outcome = run.engine.wait(run.engine.start(
        {"source": run.source, "run": run.location, "chunk_size": 64 * 1024,
         "processor": "probe", "lanes": 2}), timeout_s=900)
    elapsed = time.monotonic() - started
    assert outcome.succeeded, outcome
    assert 1000 <= run.manifest["assembly"]["ranges"] < 1010
    events = backend.engine.history(outcome.executions[0])
    lanes = next(n for n, e in enumerate(events)
                 if e.get("stateEnteredEventDetails", {}).get("name") == "Lanes")
    assert len(outcome.executions) == 1 and lanes < 60, lanes  # the split's events
    biggest = max(len(json.dumps(e.get(key, {}).get("input", e.get(key, {}).get("output", "")))
                      .encode()) for e in events for key in e if key.endswith("EventDetails"))
    assert biggest < 64 * 1024, biggest
    assert_accounted(run.report, rows, run.manifest)
    print(f"1,000 ranges: {elapsed:.1f} s, {lanes} events before the lanes, largest state "
          f"{biggest} bytes")

