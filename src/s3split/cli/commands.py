"""The ``s3split`` command line."""

import atexit
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, NoReturn

import click

from s3split.cli import signals
from s3split.cli.text import one_line
from s3split.deployment import MAX_LANES
from s3split.errors import InvalidOption, RunInterrupted, S3SplitError
from s3split.processors.registry import BUILTINS
from s3split.sizes import counted, format_mb, format_rate, parse_size
from s3split.split.destination import check_source
from s3split.split.destination_lock import holding
from s3split.split.dialect import validate_settings
from s3split.split.manifest import MANIFEST_NAME, SplitSettings
from s3split.storage import Storage, is_compressed, is_s3, join

if TYPE_CHECKING:
    from s3split.split.splitter import SplitResult

STRICT_HELP = ("Refuse what RFC 4180 forbids (a quote in an unquoted field, text after a "
               "closing quote) instead of reading it as Python's csv module does.")
DELIMITER_HELP = ("Field delimiter: one character; 'tab' or '\\t' for a tab. Default: an Excel "
                  "'sep=X' first line, else detected among , ; tab | from the header and first "
                  "records (refused when unclear).")
ENCODING_HELP = ("The source's encoding, any Python codec (cp1252, latin-1, utf-16-le, ...); it "
                 "is read as UTF-8 after transcoding. Default: UTF-8, or UTF-16/32 when the "
                 "file starts with their byte order mark.")
SKIP_LINES_HELP = "Drop N lines before the header (a report's preamble). Default 0."
_ESCAPES = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}


def _char(value: str) -> str:
    return _ESCAPES.get(value.lower(), value)


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal; nothing when output is piped."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(f"[bold]{label}", *columns, transient=True) as bar:
        task = bar.add_task(label, total=total or None)
        yield lambda n: bar.advance(task, n)


def _fail(exc: Exception) -> NoReturn:
    click.echo(f"s3split: error: {error_line(exc)}", err=True)
    sys.exit(1)


def _stopped(exc: KeyboardInterrupt, what: str = "") -> NoReturn:
    """Ctrl-C, SIGTERM or SIGHUP: one line (``what`` follows the signal's name), exit
    128 + N, even when the line cannot be written (a pipe whose reader the same Ctrl-C
    ended)."""
    signals.ignore_further()
    with suppress(OSError):
        click.echo(f"s3split: {signals.stopped_by(exc)}{what}", err=True)
    sys.exit(signals.exit_status(exc))


def error_line(exc: BaseException) -> str:
    """One line, whatever the error holds: the file, what went wrong, no traceback."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        text = f"{where}{exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return one_line(text)


def _deprecated(old: str, new: str) -> None:
    click.echo(f"s3split: warning: {old} is deprecated; use {new}", err=True)


def _pipeline_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The run settings, spelled and meaning the same in ``run`` and ``start``: how to split
    the source (as ``split`` takes them) and how to process its chunks."""
    options = (
        click.option("--chunk-size", metavar="SIZE",
                     help="Target chunk size, e.g. 64MiB (default: 64MiB, or the stack's)."),
        click.option("--lanes", type=click.IntRange(1, MAX_LANES),
                     help="Parallel lanes. Default 2."),
        click.option("--pause", type=click.IntRange(0, 86_400), metavar="SECONDS",
                     help="Pause between a lane's chunks (for a rate-limited downstream). "
                          "Default 0."),
        click.option("--processor", metavar="NAME",
                     help=f"{', '.join(BUILTINS)} (default jsonl), or a registered "
                          "custom one."),
        click.option("--tolerate", metavar="N|P%",
                     help="Failed chunks tolerated before the run fails: a count or a "
                          "percentage."),
        click.option("--chunk-rows", type=click.IntRange(min=1), metavar="N",
                     help="Records per chunk instead of a size."),
        click.option("--no-header", is_flag=True, default=None,
                     help="The source has no header record."),
        click.option("--delimiter", metavar="C", help=DELIMITER_HELP),
        click.option("--quotechar", metavar="C", help="Quote character (default '\"')."),
        click.option("--strict", is_flag=True, default=None, help=STRICT_HELP),
        click.option("--encoding", metavar="NAME", help=ENCODING_HELP),
        click.option("--skip-lines", type=click.IntRange(min=0), metavar="N",
                     help=SKIP_LINES_HELP),
    )
    for option in reversed(options):
        command = option(command)
    return command


def _split(source: str, dest: str, settings: SplitSettings, storage: Storage,
           advance: Callable[[int], None], jobs: int | None) -> "SplitResult":
    """Between S3 locations, S3 assembles the chunks from the source (``UploadPartCopy``);
    otherwise the single pass or, locally, the range split (which imports nothing of boto3).
    (The splitter is imported here, not by every command: it imports numpy.)"""
    from s3split.split.splitter import SplitResult
    from s3split.split.splitter import split as split_source

    if is_s3(source) and is_s3(dest):
        from s3split.split.range_steps import server_side_applies, split_server_side

        manifest = None
        if server_side_applies(source, dest, settings):  # (None: a transcoded source)
            manifest = split_server_side(source, dest, settings, storage, advance)
        if manifest is not None:
            return SplitResult(join(dest, MANIFEST_NAME), manifest=manifest)
    return split_source(source, dest, settings, storage, on_progress=advance,
                        jobs=jobs or os.cpu_count() or 1)


class _Commands(click.Group):
    """Ctrl-C (or SIGTERM, SIGHUP) in a command that says nothing of its own about it: one
    line and exit 128 + N, instead of click's "Aborted!" and 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            _stopped(exc)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="s3split")
def main() -> None:
    """Split huge CSV files into chunks and process them in parallel lanes.

    SOURCE and DEST are local paths or s3://bucket/key URIs.
    """


@main.command()
@click.argument("source")
@click.argument("dest")
@click.option("--chunk-size", metavar="SIZE",
              help="Target chunk size, e.g. 64MiB, 500KB or 97 (bytes). Default 64MiB.")
@click.option("--chunk-rows", type=int, metavar="N", help="Records per chunk instead of a size.")
@click.option("--no-header", is_flag=True,
              help="The source has no header record; chunks get none.")
@click.option("--delimiter", metavar="C", help=DELIMITER_HELP)
@click.option("--quotechar", default='"', show_default=True, metavar="C",
              help="Quote character.")
@click.option("--strict", is_flag=True, help=STRICT_HELP)
@click.option("--encoding", metavar="NAME", help=ENCODING_HELP)
@click.option("--skip-lines", type=click.IntRange(min=0), default=0, metavar="N",
              help=SKIP_LINES_HELP)
@click.option("--jobs", type=click.IntRange(min=1), metavar="N",
              help="Processes that scan the source in ranges, the chunks then copied out of "
                   "it (default: the number of CPUs; 1: one sequential pass). --chunk-rows, "
                   ".gz/.zst sources, transcoded ones (--encoding, UTF-16/32) and s3:// "
                   "SOURCE or DEST always take one sequential pass.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest summary as JSON.")
def split(source: str, dest: str, chunk_size: str | None, chunk_rows: int | None,
          no_header: bool, delimiter: str | None, quotechar: str, strict: bool,
          encoding: str | None, skip_lines: int, jobs: int | None, as_json: bool) -> None:
    """Split SOURCE into DEST/part-NNNNN.csv chunks plus DEST/manifest.json.

    Every chunk starts with the source's header and holds whole records: quoted
    fields may contain delimiters, doubled quotes and newlines. A chunk closes at
    the first record end at or after --chunk-size, or after --chunk-rows records.
    .gz and .zst sources are decompressed on the fly. One split per DEST at a
    time (DEST/.split.lock); files in DEST that no split wrote are never touched,
    and a SOURCE named like a part of DEST is refused.
    """
    try:
        if chunk_size is not None and chunk_rows is not None:
            raise InvalidOption("give --chunk-size or --chunk-rows, not both")
        settings = SplitSettings(
            chunk_size=None if chunk_rows is not None else parse_size(chunk_size or "64MiB"),
            chunk_rows=chunk_rows,
            header=not no_header,
            delimiter=_char(delimiter) if delimiter is not None else None,
            quotechar=_char(quotechar),
            strict=strict,
            encoding=encoding,
            skip_lines=skip_lines,
        )
        storage = Storage()
        started = time.perf_counter()
        size = storage.stat(source).size
        validate_settings(settings)  # (split checks both again) before the lock creates DEST
        check_source(source, dest)
        with holding(dest, storage), \
                _progress(0 if is_compressed(source) else size, "splitting") as advance:
            result = _split(source, dest, settings, storage, advance, jobs)
        seconds = time.perf_counter() - started
    except KeyboardInterrupt as exc:  # (the lock is released by now)
        _stopped(exc, "; the split wrote no manifest")
    except _split_errors() as exc:
        _fail(exc)
    manifest = result.manifest
    assert manifest is not None
    if as_json:
        summary: dict[str, Any] = manifest.summary()
        summary.update(manifest_uri=result.manifest_uri, seconds=round(seconds, 3))
        click.echo(json.dumps(summary, indent=1, ensure_ascii=False))
        return
    click.echo(f"read as: {manifest.format.describe()}", err=True)
    # MB/s of what was scanned: for .gz/.zst the decompressed bytes (as the chunks hold them)
    scanned = manifest.bytes if is_compressed(source) else manifest.source.size
    amount = format_mb(scanned)
    if is_compressed(source):
        amount += f" uncompressed ({format_mb(manifest.source.size)} compressed)"
    rate = format_rate(scanned, seconds)
    click.echo(f"{counted(manifest.count, 'chunk')}, {counted(manifest.rows, 'row')}, {amount} "
               f"in {seconds:.2f} s{f' ({rate})' if rate else ''} -> {result.manifest_uri}")


@main.command()
@click.argument("source", required=False)
@click.option("--out", metavar="DIR",
              help="Run location (a directory or s3:// prefix). "
                   "Default ./s3split-out/<source name>.")
@_pipeline_options
@click.option("--wait", "old_wait", type=click.IntRange(0, 86_400), hidden=True,
              help="Deprecated spelling of --pause.")
@click.option("--merge", is_flag=True,
              help="Once every chunk succeeded, join the results in chunk order into one "
                   "file, <out>/results.jsonl.")
@click.option("--resume", metavar="DIR",
              help="Continue the run in DIR: only chunks without a success status run again. "
                   "A run in S3 needs its SOURCE named too (it must be the run's).")
def run(source: str | None, out: str | None, chunk_size: str | None, lanes: int | None,
        pause: int | None, processor: str | None, tolerate: str | None,
        old_wait: int | None, chunk_rows: int | None, no_header: bool | None,
        delimiter: str | None, quotechar: str | None, strict: bool | None,
        encoding: str | None, skip_lines: int | None, merge: bool,
        resume: str | None) -> None:
    """Split SOURCE and process every chunk through the pipeline's state machine.

    SOURCE may be a directory or an s3:// prefix: then every .csv, .csv.gz and .csv.zst file
    under it is imported, each into <out>/<its path below SOURCE> (default out:
    ./s3split-out/<directory name>); files imported before are skipped.

    Runs statemachine/pipeline.asl.json on an embedded Step Functions engine with
    the real Lambda handlers in worker processes; no AWS account needed. Writes
    chunks/, results/, status/ and report.json under --out. Exits 0 only when the
    run succeeded.
    """
    if source is None and resume is None:
        raise click.UsageError("give SOURCE, or --resume DIR (with SOURCE: the run's source)")
    if resume is not None:
        _refuse_on_resume({"--out": out, "--chunk-size": chunk_size, "--processor": processor,
                           "--chunk-rows": chunk_rows, "--no-header": no_header,
                           "--delimiter": delimiter, "--quotechar": quotechar,
                           "--strict": strict, "--encoding": encoding,
                           "--skip-lines": skip_lines})
    if old_wait is not None:
        _deprecated("--wait SECONDS in run", "--pause SECONDS")
        pause = old_wait if pause is None else pause
    # No garbage collection while the engine starts (cli.local.collect_from_here), and none
    # of what the command made when the interpreter exits: this process ends with the run.
    collecting = gc.isenabled()
    gc.disable()
    atexit.register(gc.freeze)
    try:
        from s3split.engine.pipeline_files import check_local_engine

        check_local_engine()
        from s3split.cli.batch import is_batch, run_batch
        from s3split.cli.local import RunOptions, run_pipeline

        options = RunOptions(source=source, out=out, chunk_size=chunk_size, lanes=lanes,
                             wait_seconds=pause, processor=processor, tolerate=tolerate,
                             resume=resume, merge=merge,
                             **_csv_settings(chunk_rows, no_header, delimiter, quotechar,
                                             strict, encoding, skip_lines))
        if source is not None and resume is None and is_batch(source, Storage()):
            sys.exit(0 if run_batch(options, source) else 1)
        outcome = run_pipeline(options, show_progress=sys.stderr.isatty())
    except RunInterrupted as exc:
        click.echo(f"s3split: {exc}", err=True)
        sys.exit(exc.exit_status)
    except KeyboardInterrupt as exc:  # (Ctrl-C, SIGTERM or SIGHUP before the run began)
        _stopped(exc, f" before the run started; nothing to resume"
                      f"{_at_location(source, out, resume)}")
    except (S3SplitError, OSError) as exc:
        _fail(exc)
    finally:
        if collecting:  # (called in-process: collections as they were)
            gc.enable()
    sys.exit(0 if outcome.succeeded else 1)


def _at_location(source: str | None, out: str | None, resume: str | None) -> str:
    """`` at <the run location>``, where it can be told: a stop may come while the modules
    that tell it are still being imported (the engine's start overlaps them)."""
    try:
        from s3split.cli.local import RunOptions, start_input

        return f" at {start_input(RunOptions(source=source, out=out, resume=resume))[1]}"
    except Exception:  # (an input run_pipeline would have refused: no location to name)
        return ""


def _refuse_on_resume(given: dict[str, Any]) -> None:
    """A resume continues its run as it was split and processed: only --lanes, --pause and
    --tolerate may change (the others would mix two runs' results in one location)."""
    names = [name for name, value in given.items() if value is not None]
    if names:
        raise click.UsageError(
            f"--resume continues the run with the settings it started with: {', '.join(names)} "
            "cannot change on a resume (--lanes, --pause and --tolerate can); to run with "
            "other settings, start a new run: s3split run SOURCE --out NEW_DIR ...")


def _csv_settings(chunk_rows: int | None, no_header: bool | None, delimiter: str | None,
                  quotechar: str | None, strict: bool | None, encoding: str | None,
                  skip_lines: int | None) -> dict[str, Any]:
    """The CSV options as a start input spells them; None where the option was not given."""
    return {"chunk_rows": chunk_rows, "header": False if no_header else None,
            "delimiter": _char(delimiter) if delimiter else None,
            "quotechar": _char(quotechar) if quotechar else None, "strict": strict or None,
            "encoding": encoding, "skip_lines": skip_lines or None}


# -- runs on AWS (the deployment template.yaml describes) --------------------------------------

_STILL_RUNNING = 3  # `start --follow` gave up following a run that goes on


def _aws(arn: str) -> tuple[Any, Storage]:
    """Step Functions in the ARN's region, S3 from boto3's chain; AWS_ENDPOINT_URL honoured."""
    import boto3

    from s3split.cli.aws import region_of
    from s3split.storage import S3_CONFIG

    session = boto3.session.Session()
    region = session.region_name or region_of(arn)
    sfn = session.client("stepfunctions", region_name=region_of(arn) or region)
    return sfn, Storage(session.client("s3", region_name=region, config=S3_CONFIG))


def _split_errors() -> tuple[type[Exception], ...]:
    """What a split fails with: ours, the OS's, and botocore's (missing credentials, an
    endpoint that does not answer), imported only once a split has failed."""
    from botocore.exceptions import BotoCoreError, ClientError

    return S3SplitError, OSError, BotoCoreError, ClientError


@contextmanager
def _aws_errors() -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (S3SplitError, BotoCoreError, ClientError) as exc:
        _fail(exc)


def _status_lines(summary: dict[str, Any]) -> list[str]:
    rows: list[tuple[str, str]] = [("execution", summary["execution"])]
    executions = summary["executions"]
    if len(executions) > 1:
        generations = counted(len(executions) - 1, "generation")
        rows.append(("continued as", f"{executions[-1]} ({generations} on)"))
    state = summary["state"]
    if summary.get("error"):
        state += f" ({summary['error']}: {summary.get('cause') or ''})".replace(": )", ")")
    rows.append(("state", state))
    rows.append(("started", summary.get("started") or "-"))
    if summary.get("stopped"):
        rows.append(("stopped", summary["stopped"]))
    if summary.get("source"):
        rows.append(("source", summary["source"]))
    if summary["mode"] == "batch":
        started = summary.get("started_executions") or []
        count = summary.get("started_count", len(started))
        listed = f" (names in {summary['pending_list']})" if summary.get("pending_list") else ""
        rows.append(("batch", f"{counted(count, 'run')} started{listed}"))
        rows.extend(("", arn) for arn in started)
        for failed in summary.get("failed_starts") or []:
            rows.append(("not started", f"{failed['input']}: {failed['error']}: "
                                        f"{str(failed['cause'])[:200]}"))
        if summary.get("result_files_error"):
            rows.append(("results", f"unreadable: {summary['result_files_error']}"))
        return [f"{label:<13}{value}" for label, value in rows]
    rows.append(("run", summary.get("location") or "not planned yet"))
    progress = summary["progress"]
    of = f" of {progress['chunks']:,}" if progress["chunks"] is not None else ""
    rows.append(("progress", f"{progress['done']:,}{of} chunks done, {progress['failed']:,} "
                             f"failed, {progress['rows']:,} rows"))
    report = summary.get("report")
    if summary["state"] == "RUNNING":
        rows.append(("report", f"{report} (when the run ends)" if report else "-"))
    else:
        rows.append(("report", report or "none: the run ended before writing one"))
    if summary.get("succeeded") is not None:
        rows.append(("result", "succeeded" if summary["succeeded"] else "failed"))
    for failure in summary.get("failures") or []:
        where = f"line {failure.get('source_line', '?'):,}" \
            if isinstance(failure.get("source_line"), int) else "line ?"
        rows.append(("failed chunk", f"{failure.get('chunk')} ({where}, {failure.get('rows')} "
                                     f"rows): {failure.get('error')}: {failure.get('message')}"))
    more = (summary.get("chunks_failed") or 0) - len(summary.get("failures") or [])
    if more > 0:
        rows.append(("", f"... and {more} more in the report"))
    return [f"{label:<13}{value}" for label, value in rows]


def _echo_status(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary, indent=1, ensure_ascii=False, default=str))
    else:
        click.echo("\n".join(_status_lines(summary)))


@contextmanager
def _run_progress() -> Iterator[Callable[[dict[str, Any]], None]]:
    """A chunk progress bar on a terminal; a line a minute when output is piped."""
    if not sys.stderr.isatty():
        last_at, last_line = [float("-inf")], [""]

        def note(summary: dict[str, Any]) -> None:
            progress = summary.get("progress") or {}
            line = (f"{summary['state']}: {progress.get('done', 0)} of "
                    f"{progress.get('chunks') or '?'} chunks done, {progress.get('failed', 0)} "
                    "failed")
            if line != last_line[0] and time.monotonic() - last_at[0] >= 60:
                click.echo(line, err=True)
                last_at[0], last_line[0] = time.monotonic(), line

        yield note
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (BarColumn(), MofNCompleteColumn(),
               TextColumn("chunks, {task.fields[failed]} failed"), TimeElapsedColumn())
    with Progress("[bold]{task.description}", *columns, console=Console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task("starting", total=None, failed=0)

        def update(summary: dict[str, Any]) -> None:
            progress = summary.get("progress") or {}
            bar.update(task, description=summary["state"].lower(), total=progress.get("chunks"),
                       completed=progress.get("done", 0) + progress.get("failed", 0),
                       failed=progress.get("failed", 0))

        yield update


@main.command()
@click.argument("source")
@click.option("--state-machine", "state_machine_arn", required=True, metavar="ARN",
              envvar="S3SPLIT_STATE_MACHINE",
              help="The deployed pipeline (the stack's StateMachineArn output); "
                   "or set S3SPLIT_STATE_MACHINE.")
@click.option("--follow", is_flag=True,
              help="Follow the run with a progress bar and exit with its result.")
@_pipeline_options
@click.option("--wait", "old_follow", is_flag=True, hidden=True,
              help="Deprecated spelling of --follow.")
@click.option("--wait-seconds", "old_wait_seconds", type=click.IntRange(0, 86_400), hidden=True,
              help="Deprecated spelling of --pause.")
@click.option("--timeout", type=click.FloatRange(min=0), default=24 * 3600.0, show_default=True,
              metavar="SECONDS", help="With --follow: stop following after this long (exit 3).")
@click.option("--poll-interval", type=click.FloatRange(min=0), default=5.0, hidden=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def start(source: str, state_machine_arn: str, follow: bool, chunk_size: str | None,
          lanes: int | None, pause: int | None, processor: str | None,
          tolerate: str | None, chunk_rows: int | None, no_header: bool | None,
          delimiter: str | None, quotechar: str | None, strict: bool | None,
          encoding: str | None, skip_lines: int | None, old_follow: bool,
          old_wait_seconds: int | None, timeout: float, poll_interval: float,
          as_json: bool) -> None:
    """Start a run of SOURCE (s3://bucket/key) on the deployed state machine.

    Prints the execution ARN. A SOURCE ending in / starts a batch: every CSV
    under the prefix without a successful run. With --follow, exits 0 when the run
    succeeded, 1 when it failed, 3 when still running after --timeout.
    """
    from s3split.cli import aws as remote

    if old_follow:
        _deprecated("--wait in start", "--follow")
        follow = True
    if old_wait_seconds is not None:
        _deprecated("--wait-seconds", "--pause SECONDS")
        pause = old_wait_seconds if pause is None else pause
    wait = follow
    overrides = {"chunk_size": chunk_size, "lanes": lanes, "wait_seconds": pause,
                 "processor": processor, "tolerate": tolerate} | _csv_settings(
        chunk_rows, no_header, delimiter, quotechar, strict, encoding, skip_lines)
    with _aws_errors():
        sfn, storage = _aws(state_machine_arn)
        try:
            execution_arn = remote.start(source, state_machine_arn, overrides, sfn)
        except KeyboardInterrupt as exc:  # (AWS may have started it before the answer came)
            _stopped(exc, f" before AWS answered: the run may have started; look for it "
                          f"with: aws stepfunctions list-executions --state-machine-arn "
                          f"{state_machine_arn}")
    if not wait:
        if as_json:
            click.echo(json.dumps({"executionArn": execution_arn,
                                   "input": remote.run_input(source, overrides)}, indent=1))
        else:
            click.echo(execution_arn)
        return
    click.echo(f"started {execution_arn}", err=True)
    run = remote.RemoteRun(execution_arn, sfn, storage)
    with _aws_errors():
        try:
            with _run_progress() as on_poll:
                summary = remote.wait(run, timeout, poll_s=poll_interval, on_poll=on_poll)
        except TimeoutError as exc:
            click.echo(f"s3split: {exc}; follow it with: s3split status {execution_arn}",
                       err=True)
            sys.exit(_STILL_RUNNING)
        except KeyboardInterrupt as exc:  # only the following stops: the run is AWS's
            _stopped(exc, f"; the run goes on: follow it with: s3split status {execution_arn}")
    _echo_status(summary, as_json)
    sys.exit(0 if summary.get("succeeded") else 1)


@main.command()
@click.argument("execution_arn")
@click.option("--work-location", metavar="S3URI",
              help="Where the stack keeps runs, for a run whose Plan step has not run yet. "
                   "Default s3://<source bucket>/runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
def status(execution_arn: str, work_location: str | None, as_json: bool) -> None:
    """State, progress, failures and report location of the run EXECUTION_ARN started.

    Follows the executions a long run continued as; progress comes from the run's
    status records, failures from its report.json.
    """
    from s3split.cli import aws as remote

    with _aws_errors():
        sfn, storage = _aws(execution_arn)
        summary = remote.status(execution_arn, sfn, storage, work_location)
    _echo_status(summary, as_json)
