"""Faults in the range split on the engine (the real ASL): a range task failing with a Lambda
service error is retried; one failing for good fails the run with its error; a source rewritten
between PlanRanges and Assemble fails ``SourceChanged`` (local and S3); ``s3split run`` killed
after ScanRanges resumes and succeeds. Each failure leaves no manifest and the lock released."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from s3split.engine.faults import (
    LAMBDA_SERVICE_EXCEPTION,
    LAMBDA_TOO_MANY_REQUESTS,
    FaultPlan,
    LambdaFault,
)
from s3split.engine.local import LocalEngine, local_engine
from s3split.split.manifest import SplitSettings
from s3split.split.splitter import split
from s3split.storage import Storage, join
from tests.support.pipeline import (
    PROBE,
    Run,
    assert_accounted,
    local_results,
    work_storage,
)
from tests.support.processes import signal_when

pytestmark = pytest.mark.timeout(600)

S3SPLIT = str(Path(sys.executable).parent / "s3split")
RANGED = {"S3SPLIT_RANGE_SPLIT_FROM": "1", "S3SPLIT_RANGE_SIZE": "1500",
          "S3SPLIT_ASSEMBLE_CHUNKS": "2", "S3SPLIT_PROCESSORS": PROBE}
SPLITTER = "s3split-splitter"


@contextmanager
def ranged_engine(kind: str, tmp: Path, faults: FaultPlan, retry_interval_scale: float = 1.0,
                  ) -> Iterator[tuple[LocalEngine, Storage, str]]:
    with ExitStack() as stack:
        base, storage, env = stack.enter_context(work_storage(kind, tmp))
        engine = stack.enter_context(local_engine(
            base, workers=2, env=env | RANGED, faults=faults,
            retry_interval_scale=retry_interval_scale))
        yield engine, storage, base


def assert_failed_cleanly(run: Run, storage: Storage) -> None:
    """No manifest, no report, the run location unlocked."""
    for name in ("chunks/manifest.json", "report.json", "lock.json"):
        assert not storage.exists(join(run.location, name)), name


def test_a_range_task_failing_with_a_service_error_is_retried(tmp_path: Path) -> None:
    faults = FaultPlan(lambda_faults=[LambdaFault(LAMBDA_SERVICE_EXCEPTION, function=SPLITTER,
                                                  action="scan_range", index=2, calls=(1, 2))])
    with ranged_engine("local", tmp_path, faults, retry_interval_scale=0) as (engine, storage,
                                                                              base):
        run = Run(engine, storage, base, "retried", rows=60)
        outcome = run.start(lanes=2)
        assert outcome.succeeded, outcome
    assert [(i.error, i.action, i.index, i.call) for i in faults.injected] == [
        (LAMBDA_SERVICE_EXCEPTION, "scan_range", 2, 1),
        (LAMBDA_SERVICE_EXCEPTION, "scan_range", 2, 2)]
    expected = split(run.source, str(tmp_path / "sequential"), SplitSettings(chunk_size=1000),
                     Storage()).manifest
    assert expected is not None
    manifest = run.manifest
    assert [(c["source_offset"], c["bytes"], c["rows"], c["source_line"])
            for c in manifest["chunks"]] == [
        (c.source_offset, c.bytes, c.rows, c.source_line) for c in expected.chunks]
    assert manifest["assembly"]["ranges"] == 5
    assert_accounted(run.report, 60, manifest)
    assert run.result_rows() == run.source_rows()


def test_a_range_task_failing_for_good_fails_the_run_with_its_error(tmp_path: Path) -> None:
    faults = FaultPlan(lambda_faults=[LambdaFault(LAMBDA_SERVICE_EXCEPTION, function=SPLITTER,
                                                  action="scan_range", index=3, calls=None)])
    with ranged_engine("local", tmp_path, faults, retry_interval_scale=0) as (engine, storage,
                                                                              base):
        run = Run(engine, storage, base, "failed", rows=60)
        outcome = run.start(lanes=2)
    assert outcome.error == "SplitTaskFailed", outcome
    assert json.loads(outcome.cause or "")["errorMessage"].startswith(
        f"range scan 3 of {run.source} failed: Lambda.ServiceException: ")
    assert len(faults.injected) == 7  # the first attempt and the Retry's 6
    assert_failed_cleanly(run, storage)


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_source_rewritten_between_plan_ranges_and_assemble_fails_source_changed(
        tmp_path: Path, kind: str) -> None:
    """The first assembly task is throttled (retried 3 s later); meanwhile, once Combine has
    written the chunk table, the source is rewritten: the assembly reads (or copies) only the
    version PlanRanges pinned, so it fails SourceChanged instead of mixing two versions."""
    faults = FaultPlan(lambda_faults=[LambdaFault(LAMBDA_TOO_MANY_REQUESTS, function=SPLITTER,
                                                  action="assemble", index=0)])
    with ranged_engine(kind, tmp_path, faults) as (engine, storage, base):
        run = Run(engine, storage, base, "rewritten", rows=60)
        execution = engine.start({"source": run.source, "run": run.location, "chunk_size": 1000,
                                  "processor": "probe", "lanes": 2})
        table = join(run.location, "ranges", "table.json")
        deadline = time.monotonic() + 60
        while not storage.exists(table):
            assert time.monotonic() < deadline, "Combine did not write the chunk table"
            time.sleep(0.02)
        with storage.writer(run.source) as f:
            f.write(run.text.replace("name", "NAME").encode() + b"61,late,row,x\r\n")
        outcome = engine.wait(execution, timeout_s=120)
        assert outcome.error == "SourceChanged", outcome
        assert f"{run.source} changed" in json.loads(outcome.cause or "")["errorMessage"]
        assert [i.action for i in faults.injected] == ["assemble"]
        assert_failed_cleanly(run, storage)


def _start_ranged_run(tmp_path: Path) -> tuple[str, dict[str, str], subprocess.Popen[str]]:
    """``s3split run`` of 6,000 records split in ranges: the source text, the environment
    that makes the split ranged, the running command."""
    lines = ["id,city,note\n"] + [f'{i},"Kraków, PL","a\nb ""{i}"""\n' for i in range(6000)]
    text = "".join(lines)
    (tmp_path / "data.csv").write_text(text)
    env = os.environ | {"S3SPLIT_RANGE_SPLIT_FROM": "1", "S3SPLIT_RANGE_SIZE": "1KiB",
                        "S3SPLIT_ASSEMBLE_CHUNKS": "1"}
    args = [S3SPLIT, "run", "data.csv", "--out", "out", "--chunk-size", "1KiB"]
    return text, env, subprocess.Popen(args, cwd=tmp_path, env=env, start_new_session=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)


def test_a_run_killed_after_scan_ranges_resumes_and_succeeds(tmp_path: Path) -> None:
    text, env, cli = _start_ranged_run(tmp_path)
    ranges = tmp_path / "out" / "ranges"
    deadline = time.monotonic() + 120
    while not (ranges / "table.json").exists():  # Combine has read every range's summary
        assert cli.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "no chunk table within 120 s"
        time.sleep(0.01)
    os.killpg(cli.pid, signal.SIGKILL)
    cli.wait(timeout=30)
    assert not (tmp_path / "out" / "chunks" / "manifest.json").exists(), \
        "the split finished before the run was killed"
    assert any(ranges.glob("range-*.json"))

    resumed = subprocess.run([S3SPLIT, "run", "--resume", "out"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    manifest = json.loads((tmp_path / "out" / "chunks" / "manifest.json").read_text())
    assert manifest["assembly"]["scan"] == "ranges"  # the resume split it in ranges again
    assert not ranges.exists()
    expected = list(csv.DictReader(io.StringIO(text, newline="")))
    assert local_results(tmp_path / "out") == expected
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert_accounted(report, 6000, manifest)
    assert report["chunks_ok"] == manifest["count"] and report["rows_ok"] == 6000


def _stop_after_range_plan(work: Path) -> tuple[str, str, int | None]:
    """SIGTERM to a ranged run once its ranges are planned: the source, stderr, exit status."""
    text, _, cli = _start_ranged_run(work)
    plan = work / "out" / "ranges" / "plan.json"  # ~190 ranges to scan after it
    _, stderr = signal_when(cli, plan.exists, signal.SIGTERM, group=False, every=0.002)
    return text, stderr, cli.returncode


def test_a_run_stopped_mid_range_split_then_resumed_sequentially_leaves_no_scratch(
        tmp_path: Path) -> None:
    """SIGTERM (``kill``) while the ranges are scanned: the lock is released, one line, exit
    143. A resume that splits the source sequentially (here: run where ranges do not apply)
    removes the range split's scratch folder, which nothing would read again."""
    for attempt in range(6):  # (a loaded machine may scan every range before the signal)
        work = tmp_path / f"attempt-{attempt}"
        work.mkdir()
        text, stderr, returncode = _stop_after_range_plan(work)
        ranges, out = work / "out" / "ranges", work / "out"
        if ranges.is_dir():
            break
    assert returncode == 143, stderr
    assert stderr.splitlines() == [f"s3split: stopped by SIGTERM; the run at {out} stopped "
                                   f"part-way: continue it with: s3split run --resume {out}"]
    assert not (out / "lock.json").exists() and ranges.is_dir()
    assert not (out / "chunks" / "manifest.json").exists(), "stopped after the split ended"

    resumed = subprocess.run([S3SPLIT, "run", "--resume", "out"], cwd=work,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    manifest = json.loads((out / "chunks" / "manifest.json").read_text())
    assert "assembly" not in manifest  # split sequentially
    assert not ranges.exists()
    assert local_results(out) == list(csv.DictReader(io.StringIO(text, newline="")))
