"""``s3split run DIR_OR_PREFIX``: a batch import on the local engine, one run per CSV file.

Every ``.csv``/``.csv.gz``/``.csv.zst`` file under a local directory or S3 prefix (walked
recursively, in name order) runs through the state machine as ``s3split run FILE`` would, its
run at ``<out>/<path below the directory or prefix>``. One engine serves them all, a few runs
at a time; a line per file as it ends (stderr), then the batch's summary (stdout). Files whose
run already succeeded for the same version of the file are skipped, so running the command
again after a fix imports only what is left. Files under ``--out`` are never imported (the
runs' own chunks are CSV files too).
"""

import os
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import click

from s3split.cli.local import (
    RunOptions,
    collect_from_here,
    local_engine_env,
    release_own_lock,
    start_input,
)
from s3split.cli.text import one_line, shown
from s3split.deployment import Deployment
from s3split.engine.local import Outcome, local_engine
from s3split.errors import (
    BucketNotFound,
    InvalidOption,
    RunInterrupted,
    RunLocationTaken,
    S3SplitError,
    SourceNotFound,
)
from s3split.pipeline.chunk import lambda_error_message
from s3split.pipeline.inputs import CSV_SUFFIXES, normalize, run_name
from s3split.pipeline.layout import RunLayout
from s3split.pipeline.ownership import check_location_free, real
from s3split.processors.check import check_processor
from s3split.sizes import counted
from s3split.storage import Storage, is_s3, join, split_s3

IN_FLIGHT_PER_LANE = 2  # runs started at a time per worker: one splits while one processes
LISTED_FAILURES = 10


def is_batch(source: str, storage: Storage) -> bool:
    """A local directory, or an S3 prefix: a URI ending in ``/``, or one naming no object
    but with objects below it."""
    if not is_s3(source):
        return os.path.isdir(source)
    if source.endswith("/") or not split_s3(source)[1]:
        return True
    try:
        storage.stat(source)
    except SourceNotFound:
        try:
            return bool(storage.some_under(source + "/", 1))
        except BucketNotFound:
            return False  # the run then says the source is not found
    return False


@dataclass
class FileRun:
    source: str
    location: str
    relative: str
    outcome: Outcome | None = None
    report: dict[str, Any] | None = None
    error: str | None = None  # why it failed, in one line
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and (self.skipped or bool(self.outcome and
                                                            self.outcome.succeeded))


def default_out(prefix: str) -> str:
    name = prefix.rstrip("/").rsplit("/", 1)[-1] if not is_s3(prefix) else (
        split_s3(prefix)[1].rstrip("/").rsplit("/", 1)[-1] or split_s3(prefix)[0])
    return os.path.abspath(os.path.join("s3split-out", name or "batch"))


def list_files(prefix: str, out: str, storage: Storage) -> list[FileRun]:
    """The batch's files in name order, each with its run location under ``out``."""
    files = _s3_files(prefix, out, storage) if is_s3(prefix) else _local_files(prefix, out)
    _refuse_nested(files, out)
    return sorted(files, key=lambda f: f.relative)


def _refuse_nested(files: list[FileRun], out: str) -> None:
    """A file whose run location lies inside another's fails (S3 holds ``a.csv`` and
    ``a.csv/results/x.csv`` at once): its run would write among that run's files, or make
    that location one holding foreign files, whichever ran first."""
    by_location = {file.location: file for file in files if file.location}
    for location, file in by_location.items():
        parts = location[len(out):].strip("/").split("/")
        above = [join(out, *parts[:depth]) for depth in range(1, len(parts))]
        for outer in (by_location[uri] for uri in above if uri in by_location):
            exc = RunLocationTaken(
                f"run location {location} lies inside the run location of {outer.relative} "
                f"({outer.location}): its run would write among that run's files; import it "
                "with another --out")
            file.error = f"{type(exc).__name__}: {exc}"
            break


def _local_files(directory: str, out: str) -> list[FileRun]:
    skip = None if is_s3(out) else real(out)
    found = []
    for folder, subfolders, names in os.walk(directory):
        subfolders[:] = sorted(d for d in subfolders
                               if real(os.path.join(folder, d)) != skip)
        for name in names:
            path = os.path.join(folder, name)
            if name.endswith(CSV_SUFFIXES) and os.path.isfile(path):
                relative = os.path.relpath(path, directory)
                found.append(FileRun(os.path.abspath(path),
                                     join(out, *relative.split(os.sep)), relative))
    return found


def _s3_files(prefix: str, out: str, storage: Storage) -> list[FileRun]:
    bucket, key = split_s3(prefix)
    key = key if not key or key.endswith("/") else key + "/"
    out_bucket, out_key = split_s3(out) if is_s3(out) else ("", "")
    found = []
    for page in storage.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        for obj in page.get("Contents", []):
            name = obj["Key"]
            if not name.endswith(CSV_SUFFIXES) or (
                    bucket == out_bucket and name.startswith(out_key.rstrip("/") + "/")):
                continue
            relative = name[len(key):]
            file = FileRun(f"s3://{bucket}/{name}", "", relative)
            try:
                file.location = join(out, *run_name(f"s3://{bucket}/{relative}"))
            except S3SplitError as exc:  # a key that is no plain path: that file fails
                file.error = str(exc)
            found.append(file)
    return found


def run_batch(options: RunOptions, prefix: str) -> bool:
    """Import every file; print a line per file and the summary. Whether all succeeded."""
    if options.merge:
        raise InvalidOption("--merge joins one source's results; a batch keeps a run per file")
    storage = Storage()
    prefix = prefix if is_s3(prefix) else os.path.abspath(prefix)
    out = options.out if options.out and is_s3(options.out) else os.path.abspath(
        options.out or default_out(prefix))
    files = list_files(prefix, out, storage)
    if not files:
        raise InvalidOption(f"no {', '.join(CSV_SUFFIXES)} files under {prefix}")
    buckets = frozenset(split_s3(uri)[0] for uri in (out, prefix) if is_s3(uri))
    deployment = Deployment(work_location=out, allowed_buckets=buckets, allow_local=True,
                            run_from_input=True)
    storage.check_directory(out)
    first = start_input(replace(options, source=files[0].source, out=files[0].location
                                or join(out, "x.csv")))[0]
    spec = normalize(first, deployment, storage)["run"]  # the options, checked once
    check_processor(spec["processor"])
    started = time.monotonic()
    _run_all(files, options, spec["lanes"], deployment, storage)
    _print_summary(prefix, out, files, time.monotonic() - started)
    return all(file.ok for file in files)


def _run_all(files: list[FileRun], options: RunOptions, lanes: int, deployment: Deployment,
             storage: Storage) -> None:
    pending = deque(_to_run(files, storage))
    running: deque[tuple[FileRun, str]] = deque()
    done = len(files) - len(pending)
    with local_engine(deployment.work_location, workers=lanes,
                      env=local_engine_env(deployment)) as engine:
        collect_from_here()
        try:
            while pending or running:
                while pending and len(running) < lanes * IN_FLIGHT_PER_LANE:
                    file = pending.popleft()
                    run_input = start_input(replace(options, source=file.source,
                                                    out=file.location))[0]
                    running.append((file, engine.start(run_input)))
                file, execution = running.popleft()
                file.outcome = engine.wait(execution)
                _finish(file, storage)
                done += 1
                _echo_file(file, done, len(files))
        except KeyboardInterrupt:
            engine.dispatcher.kill()
            for file, _ in running:
                release_own_lock(file.location, storage)
            raise RunInterrupted(f"interrupted after {done} of {counted(len(files), 'file')}; "
                                 "run the same command again: files already imported are "
                                 "skipped") from None


def _to_run(files: list[FileRun], storage: Storage) -> list[FileRun]:
    """The files to start: not those already imported or refused (said at once)."""
    todo: list[FileRun] = []
    for file in files:
        if file.error is None:
            try:
                if _imported(file, storage):
                    file.skipped = True
                else:
                    check_location_free(file.source, file.location, storage)
                    todo.append(file)
                    continue
            except S3SplitError as exc:
                file.error = f"{type(exc).__name__}: {one_line(str(exc))}"
        _echo_file(file, files.index(file) + 1 - len(todo), len(files))
    return todo


def _imported(file: FileRun, storage: Storage) -> bool:
    """A succeeded run of this version of the file."""
    uri = RunLayout(file.location).report
    if not storage.exists(uri):
        return False
    try:
        report = storage.read_json(uri)
    except ValueError:
        return False
    if not (isinstance(report, dict) and report.get("succeeded")):
        return False
    file.report = report
    return bool(report.get("source_etag") == storage.stat(file.source).etag)


def _finish(file: FileRun, storage: Storage) -> None:
    uri = RunLayout(file.location).report
    file.report = storage.read_json(uri) if storage.exists(uri) else None
    outcome = file.outcome
    if outcome is not None and not outcome.succeeded:
        file.error = f"{outcome.error}: {one_line(lambda_error_message(outcome.cause or ''))}"


def _echo_file(file: FileRun, done: int, total: int) -> None:
    if file.skipped:
        what = "imported before"
    elif file.error is not None:
        what = f"FAILED {file.error}"
    else:
        what = "ok"
    rows = f" ({counted(file.report['rows_ok'], 'row')})" if file.report and file.ok else ""
    click.echo(shown(f"[{done}/{total}] {file.relative}: {what}{rows}"), err=True)


def _print_summary(prefix: str, out: str, files: list[FileRun], seconds: float) -> None:
    ok = sum(file.ok for file in files)
    reports = [file.report for file in files if file.report]
    rows = {key: sum(r[key] for r in reports) for key in
            ("source_rows", "rows_ok", "rows_rejected", "rows_in_failed_chunks")}
    skipped = sum(file.skipped for file in files)
    lines = [
        f"s3split run: {prefix}",
        f"files   {ok:,} ok, {len(files) - ok:,} failed of {counted(len(files), 'file')}"
        + (f" ({skipped:,} imported before)" if skipped else ""),
        f"rows    {counted(rows['source_rows'], 'row')} in sources: {rows['rows_ok']:,} ok, "
        f"{rows['rows_rejected']:,} rejected, {rows['rows_in_failed_chunks']:,} in failed "
        "chunks",
        f"time    {seconds:.1f} s",
        f"out     {out}",
    ]
    failed = [file for file in files if not file.ok]
    lines += [f"failed  {file.relative}: {file.error}" for file in failed[:LISTED_FAILURES]]
    if len(failed) > LISTED_FAILURES:
        lines.append(f"        ... and {len(failed) - LISTED_FAILURES:,} more (above, on stderr)")
    click.echo("\n".join(shown(line) for line in lines))
