"""The one place where the ways a run is started become one shape.

- an S3 "Object Created" event from EventBridge (``detail.bucket.name``, ``detail.object.key``)
- a manual start ``{"source": "s3://bucket/key", ...overrides}``
- a scheduled batch import ``{"prefix": "s3://bucket/incoming/"}``
- a resume after a fix ``{"resume": "<run location>"}``
- our own continue-as-new ``{"continue": {...}}``

Every source and run location is checked against the deployment's allowed
buckets: an event can pick neither code to run nor a bucket to touch. The input is
untrusted: types are checked, not coerced (``true`` is not a number), unknown fields are
refused, and a run's location is derived from its source under the work location
(``default_location``), never taken from the input, except on the local engine
(``Deployment.run_from_input``: ``s3split run --out`` on the user's own machine).
"""

import hashlib
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from s3split.deployment import MAX_LANES, Deployment, parse_tolerance
from s3split.errors import BucketNotAllowed, InvalidInput, InvalidOption
from s3split.pipeline.layout import RunLayout
from s3split.pipeline.ownership import check_source_outside, real
from s3split.pipeline.spec import (
    ENCODING_NAME,
    MAX_SKIP_LINES,
    MAX_WAIT_SECONDS,
    PROCESSOR_NAME,
    RunSpec,
    parse_event,
)
from s3split.sizes import parse_size
from s3split.split.dialect import validate_settings
from s3split.split.encoding import codec_name
from s3split.storage import Storage, basename, is_s3, join, split_s3

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.zst")
# A run location's path component longer than this (UTF-8 bytes) is hashed: file systems
# refuse longer names.
MAX_COMPONENT_BYTES = 255
# A run's path under the work location longer than this keeps only its last component, under
# a hash of the whole (an S3 key is at most 1,024 bytes and the run's own files go below it).
MAX_RUN_PATH_BYTES = 512
_HASHED_HEAD_BYTES = 200

T = TypeVar("T")
R = TypeVar("R")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ManualStart(_Strict):
    source: str = Field(min_length=1)
    run: str | None = Field(default=None, min_length=1)
    chunk_size: Annotated[int, Field(ge=1)] | Annotated[str, Field(min_length=1)] | None = None
    lanes: int | None = Field(default=None, ge=1, le=MAX_LANES)
    wait_seconds: int | None = Field(default=None, ge=0, le=MAX_WAIT_SECONDS)
    processor: str | None = Field(default=None, pattern=PROCESSOR_NAME)
    tolerate: str | None = None
    chunk_rows: int | None = Field(default=None, ge=1)
    header: bool = True
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    quotechar: str = Field(default='"', min_length=1, max_length=1)
    strict: bool = False
    encoding: str | None = Field(default=None, pattern=ENCODING_NAME)
    skip_lines: int = Field(default=0, ge=0, le=MAX_SKIP_LINES)


class BatchStart(_Strict):
    prefix: str = Field(pattern=r"^s3://")


class ResumeStart(_Strict):
    """A resume continues a run with the settings it started with, except these: how many
    lanes, how long each pauses, and how many failures the run tolerates may change."""

    resume: str = Field(min_length=1)
    lanes: int | None = Field(default=None, ge=1, le=MAX_LANES)
    wait_seconds: int | None = Field(default=None, ge=0, le=MAX_WAIT_SECONDS)
    tolerate: str | None = None


RESUME_CHANGES = ("lanes", "wait_seconds", "tolerate")  # what a resume may change


class LaneState(_Strict):
    """A lane's iterator state; ``continue``/``more`` are the previous step's verdicts."""

    index: int = Field(ge=-MAX_LANES)  # a lane starts one step before its first chunk
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



def normalize(event: Any, deployment: Deployment, storage: Storage) -> dict[str, Any]:
    """Turn any start input into ``{"mode": ..., "run": RunSpec dict, ...}``."""
    if not isinstance(event, dict):
        raise InvalidInput(f"execution input must be a JSON object, got {type(event).__name__}")
    if "detail" in event:  # (its model imported only then: ~20 ms of every Plan and `run`)
        from aws_lambda_powertools.utilities.parser.models import (
            S3EventNotificationEventBridgeModel,
        )

        parsed = parse_event(event, S3EventNotificationEventBridgeModel)
        # Only an upload starts a run: a deletion's run would clear the earlier results.
        for field, value, expected in (("source", parsed.source, "aws.s3"),
                                       ("detail-type", parsed.detail_type, "Object Created")):
            if value != expected:
                raise InvalidInput(f"invalid execution input: {field}: {value!r} is not "
                                   f"{expected!r}: only an S3 'Object Created' event starts "
                                   "a run")
        detail = parsed.detail
        return _single(ManualStart(source=f"s3://{detail.bucket.name}/{detail.object.key}"),
                       deployment)
    if "prefix" in event:
        return _batch(parse_event(event, BatchStart), deployment, storage)
    if "resume" in event:
        return _resume(parse_event(event, ResumeStart), deployment, storage)
    if "continue" in event:
        cont = parse_event(event, ContinueStart).continue_
        spec = RunSpec.from_dict(cont.run, "execution input", "continue.run")
        _check_allowed(spec.source, deployment, "continue.run.source")
        _check_location(spec.location, deployment, "continue.run.location")
        _check_derived(spec, deployment, "execution input: continue.run.location")
        return {"mode": "continue", "run": spec.to_dict(), "lease": cont.lease,
                "lanes": [lane.state() for lane in cont.lanes],
                "generation": cont.generation}
    if "source" in event:
        return _single(parse_event(event, ManualStart), deployment)
    raise InvalidInput("execution input must have one of: detail (an S3 event from "
                       f"EventBridge), source, prefix, resume; got keys {sorted(event)}")


def _single(start: ManualStart, deployment: Deployment) -> dict[str, Any]:
    _check_allowed(start.source, deployment, "source")
    if start.chunk_rows is not None and start.chunk_size is not None:
        raise InvalidInput("invalid execution input: give chunk_size or chunk_rows, not both")
    location = _run_location(start, deployment)
    check_source_outside(start.source, location)
    tolerate = deployment.tolerate if start.tolerate is None else start.tolerate
    _option("tolerate", parse_tolerance, tolerate)
    chunk_size = deployment.chunk_size if start.chunk_size is None else start.chunk_size
    spec = RunSpec(
        run_id=run_id(start.source),
        source=start.source,
        location=location,
        chunk_size=_option("chunk_size", parse_size, chunk_size),
        lanes=deployment.lanes if start.lanes is None else start.lanes,
        wait_seconds=deployment.wait_seconds if start.wait_seconds is None else start.wait_seconds,
        processor=deployment.processor if start.processor is None else start.processor,
        tolerate=tolerate,
        chunk_rows=start.chunk_rows,
        header=start.header,
        delimiter=start.delimiter,
        quotechar=start.quotechar,
        strict=start.strict,
        encoding=start.encoding,
        skip_lines=start.skip_lines,
    )
    if start.encoding is not None:
        _option("encoding", codec_name, start.encoding)
    _option("delimiter", validate_settings, spec.split_settings)
    return {"mode": "run", "run": spec.to_dict()}


def _run_location(start: ManualStart, deployment: Deployment) -> str:
    """Derived from the source; named by the input only where the deployment allows it."""
    if start.run is None:
        location = default_location(start.source, deployment)
    elif deployment.run_from_input:
        location = start.run
    else:
        raise InvalidInput("invalid execution input: run: a run's location is derived from its "
                           f"source under the work location {deployment.work_location}; an "
                           "input cannot choose it")
    _check_location(location, deployment, "run")
    return location


def _option(field: str, parse: Callable[[T], R], value: T) -> R:
    """A value the models cannot check alone (a size, a tolerance), named as a field."""
    try:
        return parse(value)
    except InvalidOption as exc:
        raise InvalidInput(f"invalid execution input: {field}: {exc}") from None


def _batch(start: BatchStart, deployment: Deployment, storage: Storage) -> dict[str, Any]:
    _check_allowed(start.prefix, deployment, "prefix")
    _check_batch_prefix(start.prefix, deployment)
    bucket, prefix = split_s3(start.prefix)
    # A batch imports a folder: "incoming" is "incoming/" (not also "incoming-old/x.csv"),
    # and the listing asks for s3:prefix "incoming/", which the roles grant.
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    reports = _Reports(join(deployment.work_location, prefix), storage)
    pending = []
    for page in storage.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            source = f"s3://{bucket}/{obj['Key']}"
            if obj["Key"].endswith(CSV_SUFFIXES) and not _completed(source, obj["ETag"],
                                                                    deployment, reports):
                pending.append({"source": source})
    return {"mode": "batch", "sources": pending}


class _Reports:
    """The reports under one work prefix, listed once (a batch of thousands of files asks
    about each: one listing instead of a request per file)."""

    def __init__(self, under: str, storage: Storage) -> None:
        self.under, self.storage = under.rstrip("/") + "/", storage
        self.found: set[str] | None = None

    def exists(self, uri: str) -> bool:
        if not (is_s3(uri) and uri.startswith(self.under)):
            return self.storage.exists(uri)
        if self.found is None:
            bucket, key = split_s3(self.under)
            pages = self.storage.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                              Prefix=key)
            self.found = {f"s3://{bucket}/{o['Key']}" for page in pages
                          for o in page.get("Contents", []) if o["Key"].endswith("/report.json")}
        return uri in self.found


def _completed(source: str, etag: str, deployment: Deployment, reports: _Reports) -> bool:
    """A successful run of this version of the source (a new upload is pending again)."""
    try:
        uri = RunLayout(default_location(source, deployment)).report
    except InvalidInput:
        return False  # its own run then fails, naming the key
    if not reports.exists(uri):
        return False
    storage = reports.storage
    report = storage.read_json(uri)
    return bool(report.get("succeeded")) and report.get("source_etag") == etag


def _check_batch_prefix(prefix: str, deployment: Deployment) -> None:
    """A prefix that lists any of the work location would queue a run per chunk file."""
    work = deployment.work_location
    if not is_s3(work):
        return
    bucket, key = split_s3(prefix)
    work_bucket, work_key = split_s3(work)
    work_key = work_key.strip("/") + "/"
    if bucket == work_bucket and (work_key == "/" or key.startswith(work_key)
                                  or work_key.startswith(key)):
        raise InvalidInput(f"invalid execution input: prefix: {prefix} overlaps the work "
                           f"location {work}: a batch would start runs of the runs' own files")


def _resume(start: ResumeStart, deployment: Deployment, storage: Storage) -> dict[str, Any]:
    """The run recorded in ``<resume>/run.json``, checked as strictly as a new start."""
    _check_location(start.resume, deployment, "resume")
    spec_uri = RunLayout(start.resume).spec
    if not storage.exists(spec_uri):
        raise InvalidInput(f"nothing to resume at {start.resume}: no run.json there")
    where = f"run settings in {spec_uri}"
    spec = RunSpec.from_dict(_read_json(spec_uri, where, storage), where)
    _check_allowed(spec.source, deployment, f"{spec_uri}: source")
    if _normal(spec.location) != _normal(start.resume):
        raise InvalidInput(f"invalid {where}: location: {spec.location} is not the location "
                           f"being resumed ({start.resume})")
    check_source_outside(spec.source, spec.location)
    _check_derived(spec, deployment, f"{where}: location")
    changes = {name: getattr(start, name) for name in RESUME_CHANGES
               if getattr(start, name) is not None}
    if start.tolerate is not None:
        _option("tolerate", parse_tolerance, start.tolerate)
    return {"mode": "resume", "run": replace(spec, **changes).to_dict()}


def _read_json(uri: str, where: str, storage: Storage) -> Any:
    try:
        return storage.read_json(uri)
    except ValueError as exc:  # not UTF-8 or not JSON
        raise InvalidInput(f"invalid {where}: not a JSON document ({exc})") from None


def default_location(source: str, deployment: Deployment) -> str:
    """``<work>/<key>`` for an S3 source, ``<work>/<file name>`` for a local one.

    Named the same way for both: by the source's own name, suffix kept (so ``x.csv`` and
    ``x.csv.gz`` get runs of their own), made safe by ``run_name``.
    """
    return join(deployment.work_location, *run_name(source))


def run_name(source: str) -> list[str]:
    """The path components of the run of ``source`` under the work location.

    An S3 key can hold anything, so a component that would climb out or collapse (``..``,
    ``.``, empty: a leading, doubled or trailing ``/``) or that no path may hold (NUL, not
    UTF-8) is refused; one longer than a file name may be is shortened with a hash of it.
    """
    name = split_s3(source)[1] if is_s3(source) else basename(source)
    try:
        name.encode()
    except UnicodeEncodeError:
        raise InvalidInput(f"invalid execution input: source: {source!r} is not valid "
                           "UTF-8") from None
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", "..") or "\0" in part:
            raise InvalidInput(f"invalid execution input: source: {source} has a path component "
                               f"{part!r}: its run location would not be a plain path under "
                               "the work location")
    parts = [_fit(part) for part in parts]
    if len("/".join(parts).encode()) > MAX_RUN_PATH_BYTES:
        parts = [_digest(name), parts[-1]]
    return parts


def _fit(part: str) -> str:
    data = part.encode()
    if len(data) <= MAX_COMPONENT_BYTES:
        return part
    return f"{data[:_HASHED_HEAD_BYTES].decode(errors='ignore')}-{_digest(part)}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def run_id(source: str) -> str:
    """A readable name plus a hash of the full URI (Plan adds one of the start)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", basename(source))[:40].strip("-") or "run"
    return f"{name}-{short_hash(source)}"


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _check_allowed(uri: str, deployment: Deployment, field: str) -> None:
    if is_s3(uri):
        bucket = split_s3(uri)[0]
        if bucket not in deployment.allowed_buckets:
            allowed = ", ".join(sorted(deployment.allowed_buckets)) or "none"
            raise BucketNotAllowed(f"{field}: bucket {bucket!r} of {uri} is not one this "
                                   f"deployment may use (allowed: {allowed})")
    elif not deployment.allow_local:
        raise BucketNotAllowed(f"{field}: {uri} is not an s3:// URI; local paths are only for "
                               "the local engine")


def _check_location(location: str, deployment: Deployment, field: str) -> None:
    """In an allowed bucket, a plain path, and strictly inside the work location (a local
    location the local engine was given is the user's own choice)."""
    _check_allowed(location, deployment, field)
    key = split_s3(location)[1].rstrip("/") if is_s3(location) else location
    refused = ("", ".", "..") if is_s3(location) else ("..",)
    if "\0" in location or any(part in refused for part in key.split("/")):
        raise InvalidInput(f"invalid execution input: {field}: run location {location!r} is not "
                           "a plain path (empty, '.' or '..' components, or NUL)")
    if deployment.run_from_input and not is_s3(location):
        return
    if not _normal(location).startswith(_normal(deployment.work_location).rstrip("/") + "/"):
        raise BucketNotAllowed(f"{field}: run location {location} is outside the work location "
                               f"{deployment.work_location}")


def _check_derived(spec: RunSpec, deployment: Deployment, field: str) -> None:
    """A run recorded elsewhere than where its source's run belongs is not ours to touch."""
    if deployment.run_from_input:
        return
    expected = default_location(spec.source, deployment)
    if _normal(spec.location) != _normal(expected):
        raise InvalidInput(f"invalid {field}: {spec.location} is not where this deployment "
                           f"puts the run of {spec.source} ({expected})")


def _normal(location: str) -> str:
    """Compared as the file system resolves it: ``x/../run`` through a link ``x`` is not
    ``run``."""
    return real(location)
