"""``s3split start`` and ``s3split status`` against moto's Step Functions and S3 APIs.

Executions are created with the real ASL (moto does not run it) to check what is
started; state machines of Pass states stand in for a run that moto does run, to
check what ``status`` reads back: the Plan step's output from the history, the
chain of continue-as-new executions, status records and report.json.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result
from moto import mock_aws

from s3split.cli import aws as remote
from s3split.cli.commands import main
from s3split.engine.local import render_definition
from s3split.errors import InvalidInput, InvalidOption
from s3split.pipeline.batch import result_writer_substitutions
from s3split.storage import Storage
from tests.support.pipeline import CREDENTIALS, moto_s3_server

pytestmark = pytest.mark.timeout(120)

REGION, ACCOUNT = "us-east-1", "123456789012"
BUCKET = "data"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/s3split-pipeline"
SOURCE = f"s3://{BUCKET}/incoming/orders.csv"
LOCATION = f"s3://{BUCKET}/runs/incoming/orders.csv"  # the template's <work>/<key>
NAME = re.compile(r"^orders-\d{8}T\d{6}-[0-9a-f]{4}$")


@pytest.fixture
def aws(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, one region, nothing pointing at a real endpoint (``aws_env``), and no
    state machine named by the environment."""
    monkeypatch.delenv("S3SPLIT_STATE_MACHINE", raising=False)


def _moto(execute: bool) -> Iterator[tuple[Any, Any]]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": execute}}):
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield boto3.client("stepfunctions", region_name=REGION), s3


@pytest.fixture
def idle(aws: None) -> Iterator[tuple[Any, Any]]:
    """moto that records executions without running them (they stay RUNNING)."""
    yield from _moto(execute=False)


@pytest.fixture
def running(aws: None) -> Iterator[tuple[Any, Any]]:
    """moto that runs the (Pass-state) state machines it is given."""
    yield from _moto(execute=True)


def pipeline(sfn: Any) -> str:
    """The real state machine definition, as the template deploys it."""
    definition = render_definition({
        name: f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:s3split-{name[:-11].lower()}"
        for name in ("SplitterFunctionArn", "IteratorFunctionArn", "WorkerFunctionArn")}
        | result_writer_substitutions(f"s3://{BUCKET}/runs"))
    created = sfn.create_state_machine(name="s3split-pipeline", definition=definition,
                                       roleArn=ROLE, type="STANDARD")
    return str(created["stateMachineArn"])


def pass_machine(sfn: Any, name: str, states: list[tuple[str, Any]],
                 fail: tuple[str, str] | None = None) -> str:
    """Pass states in a row, each replacing the state with its Result; a Fail at the end."""
    definition: dict[str, Any] = {"StartAt": states[0][0], "States": {}}
    for i, (state, result) in enumerate(states):
        step: dict[str, Any] = {"Type": "Pass", "Result": result}
        if i + 1 < len(states):
            step["Next"] = states[i + 1][0]
        elif fail:
            step["Next"] = "Failed"
        else:
            step["End"] = True
        definition["States"][state] = step
    if fail:
        definition["States"]["Failed"] = {"Type": "Fail", "Error": fail[0], "Cause": fail[1]}
    created = sfn.create_state_machine(name=name, definition=json.dumps(definition),
                                       roleArn=ROLE)
    return str(created["stateMachineArn"])


def plan(location: str = LOCATION, source: str = SOURCE) -> dict[str, Any]:
    """What the splitter's Plan step returns for a single run."""
    return {"mode": "run", "run": {
        "run_id": "orders-0a1b2c3d", "source": source, "location": location,
        "chunk_size": 1024, "lanes": 2, "wait_seconds": 0, "processor": "jsonl", "tolerate": "0"}}


def finished(sfn: Any, arn: str) -> dict[str, Any]:
    for _ in range(200):
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return dict(described)
        time.sleep(0.02)
    raise AssertionError(f"{arn} did not finish")


def put_json(s3: Any, uri: str, document: Any) -> None:
    bucket, _, key = uri[len("s3://"):].partition("/")
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(document).encode())


def put_run(s3: Any, location: str, ok: int, failed: int, chunks: int,
            report: dict[str, Any] | None = None) -> None:
    """A run's manifest, status records for its first ok + failed chunks, and its report."""
    put_json(s3, f"{location}/chunks/manifest.json", {"count": chunks})
    for index in range(ok + failed):
        if index < ok:
            record = {"state": "ok", "index": index, "rows_in": 10, "bytes": 100}
        else:
            record = {"state": "failed", "index": index, "error": "ChunkInvalid",
                      "message": "bad UTF-8"}
        put_json(s3, f"{location}/status/part-{index:05d}.json", record)
    if report is not None:
        put_json(s3, f"{location}/report.json", report)


def report(succeeded: bool, failed: int = 0, chunks: int = 4) -> dict[str, Any]:
    return {
        "succeeded": succeeded, "chunks": chunks, "chunks_ok": chunks - failed,
        "chunks_failed": failed, "tolerate": "0", "source_rows": 40,
        "rows_ok": 10 * (chunks - failed), "rows_rejected": 0,
        "rows_in_failed_chunks": 10 * failed, "accounted": True,
        "failed": [{"chunk": chunks - 1 - i, "rows": 10, "source_line": 31 + i,
                    "error": "ChunkInvalid", "message": "bad UTF-8"} for i in range(failed)],
    }


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# -- start -------------------------------------------------------------------------------------


def test_start_creates_a_named_execution_with_the_manual_input(idle: tuple[Any, Any]) -> None:
    sfn, _ = idle
    machine = pipeline(sfn)
    result = cli("start", SOURCE, "--state-machine", machine, "--lanes", "4",
                 "--chunk-size", "32KiB", "--tolerate", "5%")
    assert result.exit_code == 0, result.output
    arn = result.output.strip()
    executions = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert [e["executionArn"] for e in executions] == [arn]
    described = sfn.describe_execution(executionArn=arn)
    assert NAME.match(described["name"]), described["name"]
    assert json.loads(described["input"]) == {
        "source": SOURCE, "lanes": 4, "chunk_size": "32KiB", "tolerate": "5%"}


def test_start_takes_the_csv_options_run_takes(idle: tuple[Any, Any]) -> None:
    """A TSV without a header, started on AWS as ``run`` would split it."""
    sfn, _ = idle
    machine = pipeline(sfn)
    result = cli("start", SOURCE, "--state-machine", machine, "--delimiter", "tab",
                 "--no-header", "--chunk-rows", "1000", "--quotechar", "'", "--strict")
    assert result.exit_code == 0, result.output
    described = sfn.describe_execution(executionArn=result.output.strip())
    assert json.loads(described["input"]) == {
        "source": SOURCE, "delimiter": "\t", "header": False, "chunk_rows": 1000,
        "quotechar": "'", "strict": True}


def test_start_reads_the_state_machine_from_the_environment(
        idle: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    sfn, _ = idle
    monkeypatch.setenv("S3SPLIT_STATE_MACHINE", pipeline(sfn))
    result = cli("start", f"s3://{BUCKET}/incoming/", "--json")
    assert result.exit_code == 0, result.output
    started = json.loads(result.output)
    assert started["input"] == {"prefix": f"s3://{BUCKET}/incoming/"}
    described = sfn.describe_execution(executionArn=started["executionArn"])
    assert json.loads(described["input"]) == {"prefix": f"s3://{BUCKET}/incoming/"}
    assert described["name"].startswith("incoming-")


@pytest.mark.parametrize(("args", "message"), [
    (["./orders.csv"], "not an s3://bucket/key URI"),
    ([SOURCE, "--processor", "no spaces"], "processor"),
    ([SOURCE, "--tolerate", "many"], "invalid tolerance"),
    ([SOURCE, "--chunk-size", "huge"], "huge"),
    ([f"s3://{BUCKET}/incoming/", "--lanes", "3"], "a batch over a prefix"),
])
def test_start_refuses_bad_input_before_starting_anything(
        idle: tuple[Any, Any], args: list[str], message: str) -> None:
    sfn, _ = idle
    machine = pipeline(sfn)
    result = cli("start", *args, "--state-machine", machine)
    assert result.exit_code == 1
    assert "s3split: error:" in result.output and message in result.output
    assert sfn.list_executions(stateMachineArn=machine)["executions"] == []


def test_start_reports_a_missing_state_machine(idle: tuple[Any, Any]) -> None:
    missing = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:nope"
    result = cli("start", SOURCE, "--state-machine", missing)
    assert result.exit_code == 1
    assert "StateMachineDoesNotExist" in result.output


def test_execution_names_are_readable_and_valid() -> None:
    when = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
    assert remote.execution_name(SOURCE, when, "1a2b") == "orders-20261123T100000-1a2b"
    assert remote.execution_name("s3://b/x/Sales Q3 (final).csv.gz", when, "ffff") == \
        "Sales-Q3-final-20261123T100000-ffff"
    assert remote.execution_name("s3://b/ünïcode.csv.zst", when, "0000") == \
        "n-code-20261123T100000-0000"
    assert remote.execution_name("s3://b/%%%.csv", when, "0000") == "run-20261123T100000-0000"
    long = remote.execution_name(f"s3://b/{'x' * 300}.csv", when, "abcd")
    assert len(long) == 80 and long.endswith("-20261123T100000-abcd")
    names = {remote.execution_name(SOURCE) for _ in range(20)}
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,80}", n) for n in names)
    assert len(names) > 1  # the random part keeps same-second starts apart


def test_run_input_is_checked_like_the_plan_step() -> None:
    assert remote.run_input(SOURCE, {"lanes": None, "wait_seconds": 0}) == \
        {"source": SOURCE, "wait_seconds": 0}
    with pytest.raises(InvalidInput, match="lanes"):
        remote.run_input(SOURCE, {"lanes": 41})
    with pytest.raises(InvalidOption, match="s3://"):
        remote.run_input("s3:///key.csv")


# -- status ------------------------------------------------------------------------------------


def test_status_of_a_running_run_counts_its_status_records(idle: tuple[Any, Any]) -> None:
    sfn, s3 = idle
    arn = remote.start(SOURCE, pipeline(sfn), {}, sfn)
    put_run(s3, LOCATION, ok=2, failed=1, chunks=5, report=report(False, 1))  # an older report
    summary = remote.status(arn, sfn, Storage(s3))
    assert summary["state"] == "RUNNING"
    assert summary["executions"] == [arn]
    assert summary["location"] == LOCATION  # Plan has not run: the template's convention
    assert summary["progress"] == {"chunks": 5, "done": 2, "failed": 1, "rows": 20, "bytes": 200}
    assert summary["report"] == f"{LOCATION}/report.json"
    assert summary["succeeded"] is None and summary["failures"] == []  # not final yet
    assert summary["stopped"] is None

    result = cli("status", arn)
    assert result.exit_code == 0, result.output
    assert "RUNNING" in result.output
    assert "2 of 5 chunks done, 1 failed, 20 rows" in result.output
    assert f"{LOCATION}/report.json (when the run ends)" in result.output

    other = cli("status", arn, "--work-location", f"s3://{BUCKET}/elsewhere", "--json")
    assert json.loads(other.output)["location"] == f"s3://{BUCKET}/elsewhere/incoming/orders.csv"


def test_status_of_an_aborted_run_without_report(idle: tuple[Any, Any]) -> None:
    sfn, s3 = idle
    arn = remote.start(SOURCE, pipeline(sfn), {}, sfn)
    put_run(s3, LOCATION, ok=1, failed=0, chunks=3)
    sfn.stop_execution(executionArn=arn, error="Stopped", cause="by hand")
    summary = remote.status(arn, sfn, Storage(s3))
    assert summary["state"] == "ABORTED"
    assert summary["stopped"] is not None
    assert summary["report"] is None and summary["succeeded"] is False
    result = cli("status", arn)
    assert "none: the run ended before writing one" in result.output
    assert "result       failed" in result.output


def test_status_reads_the_plan_and_the_report(running: tuple[Any, Any]) -> None:
    sfn, s3 = running
    location = f"s3://{BUCKET}/runs/planned/orders.csv"  # not the convention: from history
    done = {"more": False, "succeeded": True, "report": f"{location}/report.json",
            "chunks_failed": 0, "message": ""}
    machine = pass_machine(sfn, "ok", [("Plan", plan(location)), ("Done", done)])
    put_run(s3, location, ok=4, failed=0, chunks=4, report=report(True))
    arn = remote.start(SOURCE, machine, {}, sfn)
    finished(sfn, arn)

    result = cli("status", arn, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["state"] == "SUCCEEDED" and summary["succeeded"] is True
    assert summary["location"] == location
    assert summary["report"] == f"{location}/report.json"
    assert summary["progress"]["done"] == 4 and summary["progress"]["chunks"] == 4
    assert summary["report_summary"]["accounted"] is True
    assert summary["started"] and summary["stopped"]


def test_status_lists_failures_of_a_failed_run(running: tuple[Any, Any]) -> None:
    sfn, s3 = running
    machine = pass_machine(sfn, "failing", [("Plan", plan())],
                           fail=("ToleratedFailuresExceeded", "2 of 4 chunks failed"))
    put_run(s3, LOCATION, ok=2, failed=2, chunks=4, report=report(False, failed=2))
    arn = remote.start(SOURCE, machine, {}, sfn)
    finished(sfn, arn)
    summary = remote.status(arn, sfn, Storage(s3))
    assert summary["state"] == "FAILED"
    assert summary["error"] == "ToleratedFailuresExceeded"
    assert summary["succeeded"] is False
    assert [f["chunk"] for f in summary["failures"]] == [3, 2]
    text = cli("status", arn).output
    assert "FAILED (ToleratedFailuresExceeded: 2 of 4 chunks failed)" in text
    assert "failed chunk 3 (line 31, 10 rows): ChunkInvalid: bad UTF-8" in text


def test_status_follows_continue_as_new_to_the_last_execution(running: tuple[Any, Any]) -> None:
    sfn, s3 = running
    done = {"more": False, "succeeded": True, "report": f"{LOCATION}/report.json",
            "chunks_failed": 0, "message": ""}
    last_machine = pass_machine(sfn, "last", [("Summarize", done)])
    continuation = {"continue": {"run": plan()["run"], "lanes": [], "generation": 2}}
    last = sfn.start_execution(stateMachineArn=last_machine, name="orders-gen2",
                               input=json.dumps(continuation))["executionArn"]
    middle_machine = pass_machine(sfn, "middle", [("ContinueAsNew", {"execution": last})])
    middle = sfn.start_execution(stateMachineArn=middle_machine,
                                 input=json.dumps(continuation))["executionArn"]
    first_machine = pass_machine(sfn, "first", [("Plan", plan()),
                                                ("ContinueAsNew", {"execution": middle})])
    first = remote.start(SOURCE, first_machine, {}, sfn)
    for arn in (first, middle, last):
        finished(sfn, arn)
    put_run(s3, LOCATION, ok=3, failed=0, chunks=3, report=report(True, chunks=3))

    summary = remote.status(first, sfn, Storage(s3))
    assert summary["executions"] == [first, middle, last]
    assert summary["execution"] == first
    assert summary["state"] == "SUCCEEDED" and summary["succeeded"] is True
    assert summary["location"] == LOCATION
    assert "continued as" in cli("status", first).output

    # Asked about a continuation, status reads the run from its input.
    assert remote.status(middle, sfn, Storage(s3))["location"] == LOCATION


def test_status_of_a_batch_lists_the_runs_it_started(running: tuple[Any, Any]) -> None:
    sfn, s3 = running
    started = [{"execution": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:p:{n}"}
               for n in ("a", "b")]
    machine = pass_machine(sfn, "batch", [
        ("Plan", {"mode": "batch", "sources": [{"source": SOURCE}]}),
        ("StartEach", {"mode": "batch", "started": started})])
    arn = remote.start(f"s3://{BUCKET}/incoming/", machine, {}, sfn)
    finished(sfn, arn)
    summary = remote.status(arn, sfn, Storage(s3))
    assert summary["mode"] == "batch"
    assert summary["started_executions"] == [s["execution"] for s in started]
    text = cli("status", arn).output
    assert "2 runs started" in text


def test_status_of_a_distributed_batch_counts_the_runs_and_names_the_pending_list(
        running: tuple[Any, Any]) -> None:
    sfn, s3 = running
    pending = {"Bucket": BUCKET, "Key": "runs/_batches/b.json"}
    manifest = "runs/_batches/results/y/manifest.json"
    map_run = {"MapRunArn": f"arn:aws:states:{REGION}:{ACCOUNT}:mapRun:p/x:y",
               "ResultWriterDetails": {"Bucket": BUCKET, "Key": manifest}}
    # What AWS's ResultWriter writes: a manifest listing result files of the children.
    runs = [f"arn:aws:states:{REGION}:{ACCOUNT}:execution:p:{n}" for n in ("a", "b")]
    succeeded = [{"ExecutionArn": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:p/x:{i}",
                  "Input": json.dumps({"name": n}), "Status": "SUCCEEDED",
                  "Output": json.dumps({"execution": run})} for i, (n, run) in enumerate(
                      zip(("a", "b"), runs, strict=True))]
    failed = [{"ExecutionArn": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:p/x:2",
               "Input": json.dumps({"name": "c"}), "Status": "FAILED",
               "Error": "StepFunctions.InvalidExecutionInputException", "Cause": "too big"}]
    for name, body in (("SUCCEEDED_0.json", succeeded), ("FAILED_0.json", failed)):
        s3.put_object(Bucket=BUCKET, Key=f"runs/_batches/results/y/{name}",
                      Body=json.dumps(body).encode())
    s3.put_object(Bucket=BUCKET, Key=manifest, Body=json.dumps({
        "DestinationBucket": BUCKET, "MapRunArn": map_run["MapRunArn"], "ResultFiles": {
            "SUCCEEDED": [{"Key": "runs/_batches/results/y/SUCCEEDED_0.json", "Size": 1}],
            "FAILED": [{"Key": "runs/_batches/results/y/FAILED_0.json", "Size": 1}],
            "PENDING": []}}).encode())
    machine = pass_machine(sfn, "batch-map", [
        ("Plan", {"mode": "batch", "pending": pending, "count": 3}),
        ("StartEach", {"mode": "batch", "pending": pending, "count": 3, "started": map_run})])
    arn = remote.start(f"s3://{BUCKET}/incoming/", machine, {}, sfn)
    finished(sfn, arn)
    summary = remote.status(arn, sfn, Storage(s3))
    assert summary["started_count"] == 3
    assert summary["pending_list"] == f"s3://{BUCKET}/runs/_batches/b.json"
    assert summary["started_executions"] == runs
    assert summary["failed_starts"] == [{"input": {"name": "c"}, "cause": "too big",
                                         "error": "StepFunctions.InvalidExecutionInputException"}]
    text = cli("status", arn).output
    assert f"3 runs started (names in s3://{BUCKET}/runs/_batches/b.json)" in text
    assert all(run in text for run in runs) and "InvalidExecutionInputException" in text
    s3.delete_object(Bucket=BUCKET, Key=manifest)  # a manifest gone: one line, not a traceback
    assert "unreadable: s3://" in cli("status", arn).output


# -- start --wait ------------------------------------------------------------------------------


def test_start_wait_exits_with_the_run_result(running: tuple[Any, Any]) -> None:
    sfn, s3 = running
    done = {"more": False, "succeeded": True, "report": f"{LOCATION}/report.json",
            "chunks_failed": 0, "message": ""}
    machine = pass_machine(sfn, "ok", [("Plan", plan()), ("Done", done)])
    put_run(s3, LOCATION, ok=4, failed=0, chunks=4, report=report(True))
    result = cli("start", SOURCE, "--state-machine", machine, "--wait", "--poll-interval", "0.05")
    assert result.exit_code == 0, result.output
    assert "started arn:aws:states:" in result.output
    assert "result       succeeded" in result.output

    failing = pass_machine(sfn, "failing", [("Plan", plan())],
                           fail=("ToleratedFailuresExceeded", "1 of 4 chunks failed"))
    put_run(s3, LOCATION, ok=3, failed=1, chunks=4, report=report(False, failed=1))
    result = cli("start", SOURCE, "--state-machine", failing, "--wait", "--poll-interval", "0.05",
                 "--json")
    assert result.exit_code == 1
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["state"] == "FAILED" and summary["failures"][0]["chunk"] == 3


def test_start_wait_gives_up_at_the_deadline(idle: tuple[Any, Any]) -> None:
    sfn, _ = idle
    started = time.monotonic()
    result = cli("start", SOURCE, "--state-machine", pipeline(sfn), "--wait",
                 "--timeout", "0.3", "--poll-interval", "0.05")
    assert result.exit_code == 3
    assert "still RUNNING after 0.3 s" in result.output
    assert "s3split status arn:aws:states:" in result.output
    assert time.monotonic() - started < 10


def test_wait_polls_until_the_end(idle: tuple[Any, Any]) -> None:
    sfn, s3 = idle
    arn = remote.start(SOURCE, pipeline(sfn), {}, sfn)
    seen: list[str] = []

    def on_poll(summary: dict[str, Any]) -> None:
        seen.append(summary["state"])
        if len(seen) == 3:
            sfn.stop_execution(executionArn=arn)

    run = remote.RemoteRun(arn, sfn, Storage(s3))
    summary = remote.wait(run, timeout_s=30, poll_s=0.01, on_poll=on_poll)
    assert seen == ["RUNNING", "RUNNING", "RUNNING", "ABORTED"]
    assert summary["state"] == "ABORTED"


# -- AWS_ENDPOINT_URL --------------------------------------------------------------------------


def test_the_commands_use_aws_endpoint_url() -> None:
    """The installed command, in a process of its own, against a moto server."""
    command = str(Path(sys.executable).parent / "s3split")
    with moto_s3_server() as endpoint:
        clients = {"endpoint_url": endpoint, "region_name": REGION,
                   "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        sfn, s3 = boto3.client("stepfunctions", **clients), boto3.client("s3", **clients)
        s3.create_bucket(Bucket=BUCKET)
        machine = pipeline(sfn)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env |= CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint}
        started = subprocess.run([command, "start", SOURCE, "--state-machine", machine],
                                 env=env, capture_output=True, text=True, timeout=60)
        assert started.returncode == 0, started.stderr
        arn = started.stdout.strip()
        assert json.loads(sfn.describe_execution(executionArn=arn)["input"]) == \
            {"source": SOURCE}
        put_run(s3, LOCATION, ok=1, failed=1, chunks=3)
        shown = subprocess.run([command, "status", arn, "--json"], env=env,
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        summary = json.loads(shown.stdout)
        assert summary["progress"] == {"chunks": 3, "done": 1, "failed": 1, "rows": 10,
                                       "bytes": 100}
