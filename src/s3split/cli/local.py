"""``s3split run``: start the pipeline on the local engine, show progress, report."""

import gc
import logging
import os
import socket
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from s3split.cli import signals
from s3split.cli.progress import RunProgress
from s3split.cli.text import one_line, shown
from s3split.deployment import Deployment
from s3split.engine.local import Outcome, local_engine
from s3split.errors import (
    InvalidInput,
    InvalidOption,
    RunFileCorrupt,
    RunInProgress,
    RunInterrupted,
    SourceNotFound,
    SourceUnreadable,
)
from s3split.pipeline.chunk import lambda_error_message
from s3split.pipeline.inputs import default_location, normalize
from s3split.pipeline.layout import RunLayout
from s3split.pipeline.merge import merge_results
from s3split.pipeline.ownership import check_location_free, recorded_source, same_place
from s3split.pipeline.run_lock import lock_uri, read_lock
from s3split.processors.check import check_processor
from s3split.processors.recorded_settings import resume_environment
from s3split.sizes import counted, format_mb, format_rate
from s3split.split.manifest import Manifest
from s3split.storage import Storage, is_compressed, is_s3, join, split_s3


@dataclass(frozen=True)
class RunOptions:
    source: str | None = None
    out: str | None = None
    chunk_size: str | None = None
    lanes: int | None = None
    wait_seconds: int | None = None
    processor: str | None = None
    tolerate: str | None = None
    resume: str | None = None
    chunk_rows: int | None = None
    header: bool | None = None
    delimiter: str | None = None
    quotechar: str | None = None
    strict: bool | None = None
    encoding: str | None = None
    skip_lines: int | None = None
    merge: bool = False


def _absolute(uri: str) -> str:
    return uri if is_s3(uri) else os.path.abspath(uri)


def start_input(options: RunOptions) -> tuple[dict[str, Any], str]:
    """The execution input for ``options`` and the run location it will use."""
    if options.resume:
        location = _absolute(options.resume)
        changes = {"lanes": options.lanes, "wait_seconds": options.wait_seconds,
                   "tolerate": options.tolerate}
        return {"resume": location} | {k: v for k, v in changes.items() if v is not None}, \
            location
    assert options.source is not None
    source = _absolute(options.source)
    location = _absolute(options.out or default_location(source, Deployment("s3split-out")))
    overrides = {"chunk_size": options.chunk_size, "lanes": options.lanes,
                 "wait_seconds": options.wait_seconds, "processor": options.processor,
                 "tolerate": options.tolerate, "chunk_rows": options.chunk_rows,
                 "header": options.header, "delimiter": options.delimiter,
                 "quotechar": options.quotechar, "strict": options.strict,
                 "encoding": options.encoding, "skip_lines": options.skip_lines}
    given = {key: value for key, value in overrides.items() if value is not None}
    return {"source": source, "run": location} | given, location


def local_deployment(location: str, *uris: str) -> Deployment:
    """On one machine the user is the deployment: the buckets named on the command line."""
    buckets = frozenset(split_s3(uri)[0] for uri in (location, *uris) if is_s3(uri))
    work = location.rstrip("/").rsplit("/", 1)[0] if is_s3(location) else os.path.dirname(location)
    return Deployment(work_location=work, allowed_buckets=buckets, allow_local=True,
                      run_from_input=True)  # --out is the user's choice, as on the engine


def local_engine_env(deployment: Deployment) -> dict[str, str]:
    """What the engine's handlers are told of the user's choices: the buckets they may use."""
    return {"S3SPLIT_ALLOWED_BUCKETS": ",".join(sorted(deployment.allowed_buckets))}


def run_pipeline(options: RunOptions, show_progress: bool = False,
                 console: Console | None = None) -> Outcome:
    run_input, location = start_input(options)
    storage = Storage()
    layout = RunLayout(location)
    earlier = {uri: _version(uri, storage) for uri in (layout.spec, layout.report)}
    try:
        outcome, seconds = _run(options, run_input, location, storage, show_progress)
    except BaseException as error:  # Ctrl-C, SIGTERM or SIGHUP (cli.signals), or an error of it
        exc = signals.stop_behind(error)
        if exc is None:
            raise
        signals.ignore_further()
        # moto's interpreter threads outlive the engine by a moment, each logging the task the
        # stopped workers failed: the stop is said once, below.
        logging.getLogger("moto").disabled = True
        release_own_lock(location, storage)
        raise RunInterrupted(_stopped_message(exc, options, location, earlier[layout.spec],
                                              storage), signals.exit_status(exc)) from None
    merged: str | None = None
    refused: InvalidOption | RunInProgress | None = None
    if options.merge and outcome.succeeded:
        try:
            merged = merge_results(location, storage)
        except (InvalidOption, RunInProgress) as exc:  # (a tolerated failure, a run started
            refused = exc                                # since): said after the summary
        except KeyboardInterrupt as exc:  # the run ended; only its merged file is not written
            signals.ignore_further()
            raise RunInterrupted(
                f"{signals.stopped_by(exc)} while merging the results of the run at "
                f"{location}, which succeeded (see {layout.report}); no merged file is "
                f"written: write it with: s3split run --resume {location} --merge",
                signals.exit_status(exc)) from None
    _print_summary(console or Console(), outcome, location, storage, seconds,
                   earlier[layout.report], merged)
    if refused is not None:
        raise refused
    return outcome


def _stopped_message(exc: KeyboardInterrupt, options: RunOptions, location: str,
                     earlier_spec: str | None, storage: Storage) -> str:
    """Resume advice only when there is this run to resume: a resume's, or one whose Plan
    wrote its run.json (an earlier run's run.json there would resume that run instead)."""
    stopped = signals.stopped_by(exc)
    if options.resume or _version(RunLayout(location).spec, storage) not in (None, earlier_spec):
        return (f"{stopped}; the run at {location} stopped part-way: continue it with: "
                f"s3split run --resume {location}")
    return f"{stopped} before the run started; nothing to resume at {location}"


def _run(options: RunOptions, run_input: dict[str, Any], location: str, storage: Storage,
         show_progress: bool) -> tuple[Outcome, float]:
    source = _resumed_source(options, location, storage) if options.resume else options.source
    deployment = local_deployment(location, *([source] if source else []))
    storage.check_directory(location)
    spec = normalize(run_input, deployment, storage)["run"]  # fails fast on bad options
    if options.resume:
        click.echo(shown(f"s3split: resuming the run of {spec['source']} (processor "
                         f"{spec['processor']}) at {location}"), err=True)
        _say_changes(spec, location, storage)
    else:
        check_location_free(spec["source"], location, storage)
    resumed = _resumed_settings(location, spec["processor"], storage) if options.resume else {}
    check_processor(spec["processor"], os.environ | resumed)  # as Plan does, before the engine
    env = local_engine_env(deployment) | resumed
    started = time.monotonic()
    with local_engine(deployment.work_location, workers=spec["lanes"], env=env) as engine:
        collect_from_here()
        progress = RunProgress(location, storage)
        try:
            execution = engine.start(run_input)
            if show_progress:
                outcome = _follow_with_bar(engine, execution, progress, spec["lanes"],
                                           started, is_compressed(spec["source"]))
            else:
                outcome = engine.wait(execution)
        except KeyboardInterrupt:
            signals.ignore_further()
            engine.dispatcher.kill()  # nothing writes to the location after this
            raise
    return outcome, time.monotonic() - started


def collect_from_here() -> None:
    """What the command made to start (its imports, moto's backends, the parsed state machine:
    ~200,000 objects that live as long as it does) is left out of every garbage collection
    from now on, and collections, off while it started (``run``), are on again: each full
    one scanned all of them, 0.1-0.3 s of CPU, three times in a 3-row run, and once more
    when the interpreter exits (gc.freeze: the exit's collections skip them too)."""
    gc.freeze()
    gc.enable()


def _version(uri: str, storage: Storage) -> str | None:
    """What identifies the file at ``uri`` now (None: there is none)."""
    try:
        return storage.stat(uri).etag
    except (SourceNotFound, SourceUnreadable):
        return None


def release_own_lock(location: str, storage: Storage) -> None:
    """The lock this process's engine holds (never another run's)."""
    with suppress(RunFileCorrupt):  # (not a lock: not ours)
        current = read_lock(location, storage)
        if current is not None and current[0].pid == os.getpid() \
                and current[0].host == socket.gethostname():
            storage.delete(lock_uri(location))


_CHANGE_NAMES = {"lanes": "--lanes", "wait_seconds": "--pause", "tolerate": "--tolerate"}


def _say_changes(spec: dict[str, Any], location: str, storage: Storage) -> None:
    """A resume given --lanes, --pause or --tolerate runs with them: say which differ from
    what the run started with (run.json keeps those, for the next resume)."""
    recorded = storage.read_json(RunLayout(location).spec)  # (normalize checked it)
    changed = [f"{flag} {spec[name]} (started with {recorded[name]})"
               for name, flag in _CHANGE_NAMES.items() if spec[name] != recorded[name]]
    if changed:
        click.echo(f"s3split: this resume runs with {', '.join(changed)}", err=True)


def _resumed_settings(location: str, processor: str, storage: Storage) -> dict[str, str]:
    """The processor settings the run recorded (its schema, say) that the user's environment
    does not set again: a resume runs with what the run was started with."""
    uri = RunLayout(location).processor
    if not storage.exists(uri):
        return {}  # a run recorded before processor settings were
    try:
        document = storage.read_json(uri)
    except ValueError as exc:
        raise InvalidInput(f"{uri}: not valid JSON: {exc}") from None
    return resume_environment(document, uri, processor, os.environ)


def _resumed_source(options: RunOptions, location: str, storage: Storage) -> str | None:
    """The source of the run being resumed, so its bucket is allowed too. Whoever can write a
    shared (S3) run location could point its run.json at another source, which the user's
    credentials would then read: there the user names the source, and it must match."""
    recorded = recorded_source(location, storage)
    if recorded is None:
        return None  # normalize() then names what is wrong with the run.json
    given = _absolute(options.source) if options.source else None
    if given is not None and not same_place(given, recorded):
        raise InvalidOption(f"the run at {location} is a run of {recorded}, not of {given}; "
                            f"resume it with: s3split run {recorded} --resume {location}")
    if given is None and is_s3(location):
        raise InvalidOption(f"the run at {location} records its source as {recorded}; a "
                            "shared run location does not choose what a resume reads: name "
                            f"it: s3split run {recorded} --resume {location}")
    return recorded


def progress_line(progress: RunProgress, seconds: float, compressed: bool) -> str:
    """The text beside the bar: counts so far, never a missing total shown as ``None``; a
    rate once there are enough bytes for one to mean something."""
    done = progress.ok + progress.failed
    count = f"{done:,}/{counted(progress.total, 'chunk')}" if progress.total is not None \
        else counted(done, "chunk")
    line = f"{count} · {progress.failed:,} failed · {counted(progress.rows, 'row')}"
    rate = format_rate(progress.bytes, seconds)
    if rate is not None:
        line += f" · {rate} uncompressed" if compressed else f" · {rate}"
    return line


def _follow_with_bar(engine: Any, execution: str, progress: RunProgress, lanes: int,
                     started: float, compressed: bool) -> Outcome:
    columns = (TextColumn("[bold]{task.description}"), BarColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("splitting", total=None, detail="")

        def update(busy: str = "") -> None:
            progress.poll()
            detail = progress_line(progress, time.monotonic() - started, compressed) + busy
            bar.update(task, description="processing" if progress.total is not None
                       else "splitting", total=progress.total,
                       completed=progress.ok + progress.failed, detail=detail)

        outcome: Outcome = engine.wait(  # (each poll reads the run's status files)
            execution, on_poll=lambda: update(f" · {engine.busy}/{lanes} lanes busy"), poll_s=0.2)
        update()  # the last chunks: the bar ends where the run did (100 % when all ran)
        bar.update(task, description="done" if outcome.succeeded else "stopped")
        return outcome


def summary_rows(report: dict[str, Any], outcome: Outcome, location: str, storage: Storage,
                 seconds: float, merged: str | None = None) -> list[tuple[str, str]]:
    """The summary's labels and values: whole paths, counts whose nouns agree."""
    layout = RunLayout(location)
    rows = [
        ("result", "succeeded" if outcome.succeeded else f"FAILED ({outcome.error})"),
        ("chunks", f"{report['chunks_ok']:,} ok, {report['chunks_failed']:,} failed of "
                   f"{report['chunks']:,}"),
        ("rows", f"{counted(report['source_rows'], 'row')} in source: {report['rows_ok']:,} "
                 f"ok, {report['rows_rejected']:,} rejected, "
                 f"{report['rows_in_failed_chunks']:,} in failed chunks"),
        ("bytes", _bytes_line(report, location, storage, seconds)),
        ("read as", _read_as(location, storage)),
        ("time", f"{seconds:.1f} s, {counted(len(outcome.executions), 'execution')}"),
        ("results", merged or join(location, "results")),
    ]
    written = report.get("records_written", report["rows_ok"])
    if written != report["rows_ok"]:  # (a query's rows: it may filter, join or aggregate)
        rows.insert(3, ("written", f"{counted(written, 'record')} in the results"))
    if report["rows_rejected"]:
        rows.append(("rejects", join(location, "rejects")))
    rows.append(("report", layout.report))
    return rows


def _print_summary(console: Console, outcome: Outcome, location: str, storage: Storage,
                   seconds: float, earlier_report: str | None,
                   merged: str | None = None) -> None:
    """The report this command's run wrote, if it wrote one (a run refused or failed before
    its Summarize leaves an earlier run's report in place: that is not what it did)."""
    report_uri = RunLayout(location).report
    written = _version(report_uri, storage) not in (None, earlier_report)
    report = storage.read_json(report_uri) if written else None
    if report is not None:
        title = shown(f"s3split run: {report['source']}")
        rows = [(label, shown(value)) for label, value in
                summary_rows(report, outcome, location, storage, seconds, merged)]
        if console.is_terminal:
            table = Table(title=title, show_header=False)
            for label, value in rows:
                table.add_row(label, value)
            console.print(table)
        else:  # piped or redirected: whole lines, never cut to a width with "…"
            click.echo("\n".join([title, *(f"{label:<8}{value}" for label, value in rows)]))
        for failure in report["failed"][:LISTED_FAILURES]:
            console.print(f"  chunk {failure['chunk']} (source line {failure['source_line']}): "
                          f"{failure['error']}: {one_line(failure['message'])}",
                          style="red", markup=False, soft_wrap=True)
        more = report["chunks_failed"] - min(len(report["failed"]), LISTED_FAILURES)
        if more > 0:
            console.print(f"  ... and {more:,} more (all failures: {join(location, 'status')})",
                          style="red", markup=False, soft_wrap=True)
    if not outcome.succeeded:  # why, in one line (the summary above says what)
        message = one_line(lambda_error_message(outcome.cause or ""))
        click.echo(f"s3split: error: {outcome.error}: {message}", err=True)


LISTED_FAILURES = 10


def _read_as(location: str, storage: Storage) -> str:
    """How the split read the source (delimiter, encoding, preamble), from its manifest."""
    uri = RunLayout(location).manifest
    if not storage.exists(uri):
        return "-"
    return Manifest.from_dict(storage.read_json(uri)).format.describe()


def _bytes_line(report: dict[str, Any], location: str, storage: Storage, seconds: float) -> str:
    """Source bytes; for a compressed source the rate is of the uncompressed bytes. No rate
    for a small source: the time is then the engine's start-up."""
    size = report["bytes"]
    manifest_uri = RunLayout(location).manifest
    if not is_compressed(report["source"]) or not storage.exists(manifest_uri):
        rate = format_rate(size, seconds)
        return format_mb(size) + (f" ({rate})" if rate else "")
    plain = storage.read_json(manifest_uri)["bytes"]
    rate = format_rate(plain, seconds)
    return (f"{format_mb(plain)} uncompressed from {format_mb(size)}"
            + (f" ({rate} uncompressed)" if rate else ""))
