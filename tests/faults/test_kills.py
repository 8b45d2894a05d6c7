"""Processes killed mid-work: a worker in the engine, and ``s3split run`` itself."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.pipeline import Backend, Run, assert_accounted, local_results

S3SPLIT = str(Path(sys.executable).parent / "s3split")


def test_worker_killed_mid_chunk_is_retried_and_its_partial_output_never_counts(
        local_backend: Backend) -> None:
    engine, storage, base = local_backend
    run = Run(engine, storage, base, "killed", rows=30, control={"kill": {"1": 1}})
    outcome = run.start(lanes=2)
    assert outcome.succeeded, outcome
    failures = [e["lambdaFunctionFailedEventDetails"]["error"] for e in run.events(outcome)[0]
                if e["type"] == "LambdaFunctionFailed"]
    assert failures == ["Runtime.ExitError"]
    assert run.status(1)["attempt"] == 2
    assert run.result_rows() == run.source_rows()  # the half-written output is not there
    report = run.report
    assert_accounted(report, 30, run.manifest)
    assert report["rows_ok"] == 30 and report["chunks_ok"] == report["chunks"]


def test_run_killed_mid_run_then_resumed_gives_the_same_results(tmp_path: Path) -> None:
    lines = ["id,city,note\n"] + [f'{i},"Kraków, PL","a\nb ""{i}"""\n' for i in range(3000)]
    text = "".join(lines)
    (tmp_path / "data.csv").write_text(text)
    args = [S3SPLIT, "run", "data.csv", "--out", "out", "--chunk-size", "2KiB", "--wait", "0"]
    cli = subprocess.Popen(args, cwd=tmp_path, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status = tmp_path / "out" / "status"
    deadline = time.monotonic() + 120
    while not (status.exists() and len(list(status.glob("*.json"))) >= 5):
        assert cli.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "no chunk finished within 120 s"
        time.sleep(0.05)
    os.killpg(cli.pid, signal.SIGKILL)
    cli.wait(timeout=30)
    manifest = json.loads((tmp_path / "out" / "chunks" / "manifest.json").read_text())
    done_before = len(list(status.glob("*.json")))
    assert not (tmp_path / "out" / "report.json").exists()
    assert done_before < manifest["count"], "the run finished before it was killed"

    resumed = subprocess.run([S3SPLIT, "run", "--resume", "out"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    expected = list(csv.DictReader(io.StringIO(text, newline="")))
    assert local_results(tmp_path / "out") == expected
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert_accounted(report, 3000, manifest)
    assert report["chunks_ok"] == manifest["count"] and report["rows_ok"] == 3000
