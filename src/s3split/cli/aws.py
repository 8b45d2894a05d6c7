"""Runs on AWS: start an execution of the deployed state machine and follow it.

The state machine is the one ``template.yaml`` deploys. A run is followed by
what it leaves behind: the executions (one, or a chain when it continued as new
before the history limit), and the run location's status records and
``report.json``. Clients come from boto3's standard chain (credentials, region,
``AWS_ENDPOINT_URL``); the Step Functions region is the one in the ARN.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from s3split import executions
from s3split.cli.progress import RunProgress
from s3split.deployment import Deployment, parse_tolerance
from s3split.errors import InvalidInput, InvalidOption, S3SplitError
from s3split.executions import json_or_none
from s3split.pipeline.inputs import BatchStart, ManualStart
from s3split.pipeline.inputs import default_location as run_location
from s3split.pipeline.layout import RunLayout
from s3split.pipeline.spec import parse_event
from s3split.sizes import parse_size
from s3split.storage import Storage, basename, is_s3, split_s3

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

NAME_MAX = 80  # Step Functions execution names: 1-80 of [A-Za-z0-9_-]
RUNNING = "RUNNING"
# PENDING_REDRIVE: a redrive was asked for and the execution is about to run again.
ACTIVE = frozenset({RUNNING, "PENDING_REDRIVE"})
PLAN_STATE = "Plan"
WORK_PREFIX = "runs"  # template.yaml: S3SPLIT_WORK_LOCATION = s3://<data bucket>/runs

HISTORY_PAGES = 3  # Plan is among an execution's first events
MAX_FAILURES = 20  # failed chunks listed by status(); report.json has up to 100


def execution_name(source: str, now: datetime | None = None, token: str | None = None) -> str:
    """``orders-20261123T100000-1a2b``: the file's stem, when, and 4 random hex digits."""
    now = now or datetime.now(UTC)
    token = token or secrets.token_hex(2)
    stem = re.sub(r"(\.csv)?(\.gz|\.zst)?$", "", basename(source), flags=re.IGNORECASE)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-_") or "run"
    suffix = f"-{now:%Y%m%dT%H%M%S}-{token}"
    return stem[:NAME_MAX - len(suffix)] + suffix


def run_input(source: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The execution input for ``source``, checked as the state machine's Plan step will.

    An object starts one run (``{"source": ..., overrides}``); a prefix ending in
    ``/`` starts a batch of every CSV under it that has no successful run yet.
    """
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    bucket, key = split_s3(source) if is_s3(source) else ("", "")
    if not bucket:
        raise InvalidOption(f"{source} is not an s3://bucket/key URI: runs on AWS read S3 "
                            "objects (use `s3split run` for local files)")
    if not key or key.endswith("/"):
        if given:
            raise InvalidOption(f"{', '.join(sorted(given))}: a batch over a prefix uses the "
                                "deployment's settings; start single files to override them")
        return parse_event({"prefix": source}, BatchStart).model_dump()
    start = {"source": source, **given}
    checked = parse_event(start, ManualStart)
    if checked.tolerate is not None:
        parse_tolerance(checked.tolerate)
    if checked.chunk_size is not None:
        parse_size(checked.chunk_size)
    return start


def start(source: str, state_machine_arn: str, overrides: Mapping[str, Any] | None,
          sfn: SFNClient, *, name: str | None = None) -> str:
    """Start an execution for ``source``; returns its ARN."""
    document = run_input(source, overrides)
    started = sfn.start_execution(stateMachineArn=state_machine_arn,
                                  name=name or execution_name(source),
                                  input=json.dumps(document))
    return started["executionArn"]


def region_of(arn: str) -> str | None:
    """``arn:aws:states:REGION:ACCOUNT:...`` -> REGION."""
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 and parts[0] == "arn" and parts[3] else None


class RemoteRun:
    """One run on AWS as seen from outside: its executions, its run location, its progress.

    ``poll()`` reads only what changed since the last poll: the newest execution,
    and status records not seen yet.
    """

    def _result_files(self, details: dict[str, Any]) -> dict[str, Any]:
        """The runs a batch's StartEach started and the starts that failed, from the files its
        ResultWriter wrote (``SUCCEEDED_n.json``, ``FAILED_n.json``, listed in the manifest)."""
        found: dict[str, Any] = {"started_executions": [], "failed_starts": []}
        if not (details.get("Bucket") and details.get("Key")):
            return found
        from botocore.exceptions import ClientError

        manifest_uri = f"s3://{details['Bucket']}/{details['Key']}"
        try:
            manifest = self.storage.read_json(manifest_uri)
            files = manifest.get("ResultFiles", {})
            for status, listed in (("SUCCEEDED", "started_executions"),
                                   ("FAILED", "failed_starts")):
                for result_file in files.get(status, []):
                    uri = f"s3://{manifest.get('DestinationBucket')}/{result_file['Key']}"
                    for child in self.storage.read_json(uri):
                        if status == "FAILED":
                            found[listed].append({"input": json_or_none(child.get("Input")),
                                                  "error": child.get("Error"),
                                                  "cause": child.get("Cause")})
                        elif (json_or_none(child.get("Output")) or {}).get("execution"):
                            found[listed].append(json_or_none(child["Output"])["execution"])
        except (S3SplitError, ClientError, OSError, ValueError, KeyError, TypeError,
                AttributeError) as exc:
            found["result_files_error"] = f"{manifest_uri}: {exc}"
        return found

    def __init__(self, execution_arn: str, sfn: SFNClient, storage: Storage,
                 work_location: str | None = None) -> None:
        self.sfn = sfn
        self.storage = storage
        self.work_location = work_location
        self.executions = [execution_arn]
        self.first: dict[str, Any] = {}
        self.last: dict[str, Any] = {}
        self.mode = "run"
        self.source: str | None = None
        self.location: str | None = None
        self.location_from = ""
        self.planned: dict[str, Any] | None = None
        self.progress: RunProgress | None = None

    @property
    def state(self) -> str:
        return str(self.last.get("status", RUNNING))

    @property
    def finished(self) -> bool:
        return bool(self.last) and self.state not in ACTIVE

    def poll(self) -> dict[str, Any]:
        self._follow()
        self._locate()
        if self.location and self.mode != "batch":
            if self.progress is None or self.progress.location != self.location:
                self.progress = RunProgress(self.location, self.storage)
            self.progress.poll()
        return self.summary()

    def _follow(self) -> None:
        """Describe the newest execution; step to the next one while it continued as new."""
        for described in executions.follow(self.sfn, self.executions):
            self.first = self.first or described
            self.last = described

    def _locate(self) -> None:
        """The run location: from an input that names it, else the Plan step's output,
        else the template's convention ``s3://<bucket>/runs/<key>`` until Plan has run."""
        if self.location_from in ("input", "plan"):
            return
        given = json_or_none(self.first.get("input"))
        given = given if isinstance(given, dict) else {}
        if isinstance(given.get("continue"), dict):  # a run carried on by continue-as-new
            run = given["continue"].get("run") or {}
            self.source, self.location = run.get("source"), run.get("location")
            self.location_from = "input"
            return
        if "prefix" in given:
            self.mode, self.source = "batch", str(given["prefix"])
        elif "resume" in given:
            self.location, self.location_from = str(given["resume"]), "input"
        elif "source" in given:
            self.source = str(given["source"])
        elif isinstance(given.get("detail"), dict):  # an S3 "Object Created" event
            bucket = (given["detail"].get("bucket") or {}).get("name")
            key = (given["detail"].get("object") or {}).get("key")
            if bucket and key:
                self.source = f"s3://{bucket}/{key}"
        self.planned = self.planned or self._plan_output()
        if self.planned:
            self.mode = str(self.planned.get("mode", self.mode))
            run = self.planned.get("run") or {}
            self.source = run.get("source", self.source)
            if self.mode == "batch" or run.get("location"):
                self.location = run.get("location", self.location)
                self.location_from = "plan"
                return
        if self.location_from != "input" and self.source and self.mode != "batch":
            self.location = default_location(self.source, self.work_location)
            self.location_from = "convention"

    def _plan_output(self) -> dict[str, Any] | None:
        """What the first execution's Plan step returned, from its history."""
        for event in executions.history(self.sfn, self.executions[0], page_size=100,
                                        max_pages=HISTORY_PAGES):
            details: Mapping[str, Any] = event.get("stateExitedEventDetails") or {}
            if details.get("name") == PLAN_STATE:
                output = json_or_none(details.get("output"))
                return output if isinstance(output, dict) else None
        return None

    def summary(self) -> dict[str, Any]:
        last = self.last
        result: dict[str, Any] = {
            "execution": self.executions[0],
            "executions": list(self.executions),
            "state": self.state,
            "started": _iso(self.first.get("startDate")),
            "stopped": _iso(last.get("stopDate")) if self.finished else None,
            "error": last.get("error"),
            "cause": last.get("cause"),
            "mode": self.mode,
            "source": self.source,
            "location": self.location,
        }
        if self.mode == "batch":
            output = json_or_none(last.get("output"))
            output = output if isinstance(output, dict) else {}
            started = output.get("started", [])
            if isinstance(started, dict):  # a Distributed Map: its ResultWriter's files
                pending = output.get("pending") or {}
                result["started_count"] = output.get("count")
                result["pending_list"] = f"s3://{pending.get('Bucket')}/{pending.get('Key')}"
                result |= self._result_files(started.get("ResultWriterDetails") or {})
                started = []
            else:
                result["started_executions"] = [s.get("execution") for s in started
                                                 if isinstance(s, dict)]
            result["succeeded"] = self.state == "SUCCEEDED" if self.finished else None
            return result
        progress = self.progress
        result["progress"] = {
            "chunks": progress.total if progress else None,
            "done": progress.ok if progress else 0,
            "failed": progress.failed if progress else 0,
            "rows": progress.rows if progress else 0,
            "bytes": progress.bytes if progress else 0,
        }
        report = RunLayout(self.location).report if self.location else None
        result["report"] = report
        result["succeeded"] = None
        result["failures"] = []
        # While a run is under way its report.json is being rewritten; read it once it ends.
        if report and self.finished and self.storage.exists(report):
            document = self.storage.read_json(report)
            result["succeeded"] = bool(document.get("succeeded")) and self.state == "SUCCEEDED"
            result["failures"] = document.get("failed", [])[:MAX_FAILURES]
            result["chunks_failed"] = document.get("chunks_failed")
            result["report_summary"] = {k: document.get(k) for k in (
                "chunks", "chunks_ok", "chunks_failed", "tolerate", "source_rows", "rows_ok",
                "rows_rejected", "rows_in_failed_chunks", "records_written", "accounted")}
        elif report and self.finished:
            result["report"] = None  # the run ended before Summarize wrote one
            result["succeeded"] = False if self.state != "SUCCEEDED" else None
        return result


def default_location(source: str, work_location: str | None = None) -> str | None:
    """Where the template's deployment puts the run of ``source``: ``<work>/<key>`` as Plan
    derives it (``pipeline.inputs.run_name``); None for a key Plan refuses (it has no run)."""
    bucket = split_s3(source)[0]
    try:
        return run_location(source, Deployment(work_location or f"s3://{bucket}/{WORK_PREFIX}"))
    except InvalidInput:
        return None


def status(execution_arn: str, sfn: SFNClient, storage: Storage,
           work_location: str | None = None) -> dict[str, Any]:
    """State, progress, failures and report location of the run ``execution_arn`` started."""
    return RemoteRun(execution_arn, sfn, storage, work_location).poll()


def wait(run: RemoteRun, timeout_s: float, *, poll_s: float = 5.0,
         on_poll: Callable[[dict[str, Any]], None] = lambda summary: None,
         sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Poll ``run`` until its last execution ends; TimeoutError after ``timeout_s``."""
    deadline = clock() + timeout_s
    while True:
        summary = run.poll()
        on_poll(summary)
        if run.finished:
            return summary
        if clock() >= deadline:
            raise TimeoutError(f"{run.executions[-1]} is still {run.state} after {timeout_s:g} s")
        sleep(max(0.0, min(poll_s, deadline - clock())))


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None
