"""The one place where the ways a run is started become one shape.

- an S3 "Object Created" event from EventBridge (``detail.bucket.name``, ``detail.object.key``)
- a manual start ``{"source": "s3://bucket/key", ...overrides}``
- a scheduled batch import ``{"prefix": "s3://bucket/incoming/"}``
- a resume after a fix ``{"resume": "<run location>"}``
- our own continue-as-new ``{"continue": {...}}``

Every source and run location is checked against the deployment's allowed
buckets: an event can pick neither code to run nor a bucket to touch.
"""

import hashlib
import os
import re
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from pydantic import BaseModel, ConfigDict, Field

from s3split.config import MAX_LANES, Deployment, parse_tolerance
from s3split.errors import BucketNotAllowed, InvalidInput
from s3split.runspec import RunSpec
from s3split.sizes import parse_size
from s3split.splitter import validate_settings
from s3split.storage import Storage, basename, is_s3, join, split_s3

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.zst")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ManualStart(_Strict):
    source: str = Field(min_length=1)
    run: str | None = None
    chunk_size: str | int | None = None
    lanes: int | None = Field(default=None, ge=1, le=MAX_LANES)
    wait_seconds: int | None = Field(default=None, ge=0, le=86_400)
    processor: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    tolerate: str | None = None
    chunk_rows: int | None = Field(default=None, ge=1)
    header: bool = True
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quotechar: str = Field(default='"', min_length=1, max_length=1)
    strict: bool = False


class BatchStart(_Strict):
    prefix: str = Field(pattern=r"^s3://")


class ResumeStart(_Strict):
    resume: str = Field(min_length=1)


class LaneState(_Strict):
    """A lane's iterator state; ``continue``/``more`` are the previous step's verdicts."""

    index: int
    step: int = Field(ge=1, le=MAX_LANES)
    count: int = Field(ge=0)
    budget: int = 0
    cost: int = 0
    continue_: bool | None = Field(default=None, alias="continue")
    more: bool | None = None

    def state(self) -> dict[str, Any]:
        return self.model_dump(exclude={"continue_", "more"})


class Continuation(_Strict):
    run: dict[str, Any]
    lease: str = Field(min_length=1)
    lanes: list[LaneState] = Field(max_length=MAX_LANES)
    generation: int = Field(ge=1)


class ContinueStart(_Strict):
    continue_: Continuation = Field(alias="continue")


M = TypeVar("M", bound=BaseModel)


def normalize(event: Any, deployment: Deployment, storage: Storage) -> dict[str, Any]:
    """Turn any start input into ``{"mode": ..., "run": RunSpec dict, ...}``."""
    if not isinstance(event, dict):
        raise InvalidInput(f"execution input must be a JSON object, got {type(event).__name__}")
    if "detail" in event:
        detail = parse_event(event, S3EventNotificationEventBridgeModel).detail
        return _single(ManualStart(source=f"s3://{detail.bucket.name}/{detail.object.key}"),
                       deployment)
    if "prefix" in event:
        return _batch(parse_event(event, BatchStart), deployment, storage)
    if "resume" in event:
        return _resume(parse_event(event, ResumeStart), deployment, storage)
    if "continue" in event:
        cont = parse_event(event, ContinueStart).continue_
        spec = RunSpec.from_dict(cont.run)
        _check_allowed(spec.source, deployment)
        _check_location(spec.location, deployment)
        return {"mode": "continue", "run": spec.to_dict(), "lease": cont.lease,
                "lanes": [lane.state() for lane in cont.lanes],
                "generation": cont.generation}
    if "source" in event:
        return _single(parse_event(event, ManualStart), deployment)
    raise InvalidInput("execution input must have one of: detail (an S3 event from "
                       f"EventBridge), source, prefix, resume; got keys {sorted(event)}")


def parse_event(event: Any, model: type[M]) -> M:
    """Validate an event with Powertools' parser; problems become one InvalidInput message."""
    try:
        return parse(event=event, model=model)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"invalid execution input: {problems}") from None


def _single(start: ManualStart, deployment: Deployment) -> dict[str, Any]:
    _check_allowed(start.source, deployment)
    if start.chunk_rows is not None and start.chunk_size is not None:
        raise InvalidInput("invalid execution input: give chunk_size or chunk_rows, not both")
    location = start.run or default_location(start.source, deployment)
    _check_location(location, deployment)
    tolerate = start.tolerate or deployment.tolerate
    parse_tolerance(tolerate)
    spec = RunSpec(
        run_id=run_id(start.source),
        source=start.source,
        location=location,
        chunk_size=parse_size(start.chunk_size or deployment.chunk_size),
        lanes=start.lanes or deployment.lanes,
        wait_seconds=deployment.wait_seconds if start.wait_seconds is None else start.wait_seconds,
        processor=start.processor or deployment.processor,
        tolerate=tolerate,
        chunk_rows=start.chunk_rows,
        header=start.header,
        delimiter=start.delimiter,
        quotechar=start.quotechar,
        strict=start.strict,
    )
    validate_settings(spec.split_settings)
    return {"mode": "run", "run": spec.to_dict()}


def _batch(start: BatchStart, deployment: Deployment, storage: Storage) -> dict[str, Any]:
    _check_allowed(start.prefix, deployment)
    bucket, prefix = split_s3(start.prefix)
    pending = []
    for page in storage.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            source = f"s3://{bucket}/{obj['Key']}"
            if obj["Key"].endswith(CSV_SUFFIXES) and not _completed(source, obj["ETag"],
                                                                    deployment, storage):
                pending.append({"source": source})
    return {"mode": "batch", "sources": pending}


def _completed(source: str, etag: str, deployment: Deployment, storage: Storage) -> bool:
    """A successful run of this version of the source (a new upload is pending again)."""
    uri = join(default_location(source, deployment), "report.json")
    if not storage.exists(uri):
        return False
    report = storage.read_json(uri)
    return bool(report.get("succeeded")) and report.get("source_etag") == etag


def _resume(start: ResumeStart, deployment: Deployment, storage: Storage) -> dict[str, Any]:
    _check_location(start.resume, deployment)
    spec_uri = join(start.resume, "run.json")
    if not storage.exists(spec_uri):
        raise InvalidInput(f"nothing to resume at {start.resume}: no run.json there")
    spec = RunSpec.from_dict(storage.read_json(spec_uri))
    _check_allowed(spec.source, deployment)
    return {"mode": "resume", "run": spec.to_dict()}


def default_location(source: str, deployment: Deployment) -> str:
    """``<work>/<key>`` for S3 sources (keys are unique), ``<work>/<file name>`` locally."""
    if is_s3(source):
        return join(deployment.work_location, split_s3(source)[1])
    return join(deployment.work_location, re.sub(r"(\.csv)?(\.gz|\.zst)?$", "", basename(source)))


def run_id(source: str) -> str:
    """A readable name plus a hash of the full URI (Plan adds one of the start)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", basename(source))[:40].strip("-") or "run"
    return f"{name}-{short_hash(source)}"


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _check_allowed(uri: str, deployment: Deployment) -> None:
    if is_s3(uri):
        bucket = split_s3(uri)[0]
        if bucket not in deployment.allowed_buckets:
            allowed = ", ".join(sorted(deployment.allowed_buckets)) or "none"
            raise BucketNotAllowed(f"bucket {bucket!r} of {uri} is not one this deployment may "
                                   f"use (allowed: {allowed})")
    elif not deployment.allow_local:
        raise BucketNotAllowed(f"{uri} is not an s3:// URI; local paths are only for the "
                               "local engine")


def _check_location(location: str, deployment: Deployment) -> None:
    _check_allowed(location, deployment)
    if is_s3(location) and not location.startswith(deployment.work_location.rstrip("/") + "/"):
        raise BucketNotAllowed(f"run location {location} is outside the work location "
                               f"{deployment.work_location}")
    if not is_s3(location) and ".." in os.path.normpath(location).split(os.sep)[1:]:
        raise InvalidInput(f"run location {location} must not climb out with '..'")
