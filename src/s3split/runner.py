"""``s3split run``: start the pipeline on the local engine, show progress, report."""

import os
import time
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from s3split.config import Deployment
from s3split.engine.local import Outcome, local_engine
from s3split.progress import RunProgress
from s3split.runinput import default_location, normalize
from s3split.storage import Storage, is_s3, join, split_s3
from s3split.worker import lambda_error_message


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


def _absolute(uri: str) -> str:
    return uri if is_s3(uri) else os.path.abspath(uri)


def start_input(options: RunOptions) -> tuple[dict[str, Any], str]:
    """The execution input for ``options`` and the run location it will use."""
    if options.resume:
        location = _absolute(options.resume)
        return {"resume": location}, location
    assert options.source is not None
    source = _absolute(options.source)
    location = _absolute(options.out or default_location(source, Deployment("s3split-out")))
    overrides = {"chunk_size": options.chunk_size, "lanes": options.lanes,
                 "wait_seconds": options.wait_seconds, "processor": options.processor,
                 "tolerate": options.tolerate, "chunk_rows": options.chunk_rows,
                 "header": options.header, "delimiter": options.delimiter,
                 "quotechar": options.quotechar, "strict": options.strict}
    given = {key: value for key, value in overrides.items() if value is not None}
    return {"source": source, "run": location} | given, location


def local_deployment(location: str, *uris: str) -> Deployment:
    """On one machine the user is the deployment: the buckets named on the command line."""
    buckets = frozenset(split_s3(uri)[0] for uri in (location, *uris) if is_s3(uri))
    work = location.rstrip("/").rsplit("/", 1)[0] if is_s3(location) else os.path.dirname(location)
    return Deployment(work_location=work, allowed_buckets=buckets, allow_local=True,
                      run_from_input=True)  # --out is the user's choice, as on the engine


def run_pipeline(options: RunOptions, show_progress: bool = False,
                 console: Console | None = None) -> Outcome:
    console = console or Console()
    run_input, location = start_input(options)
    storage = Storage()
    source = options.source or _recorded_source(location, storage)
    deployment = local_deployment(location, *([source] if source else []))
    spec = normalize(run_input, deployment, storage)["run"]  # fails fast on bad options
    env = {"S3SPLIT_ALLOWED_BUCKETS": ",".join(sorted(deployment.allowed_buckets))}
    started = time.monotonic()
    with local_engine(deployment.work_location, workers=spec["lanes"], env=env) as engine:
        progress = RunProgress(location, storage)
        execution = engine.start(run_input)
        if show_progress:
            outcome = _follow_with_bar(engine, execution, progress, spec["lanes"], started)
        else:
            outcome = engine.wait(execution)
    _print_summary(console, outcome, location, storage, time.monotonic() - started)
    return outcome


def _recorded_source(location: str, storage: Storage) -> str | None:
    """The source of the run being resumed, so its bucket is allowed too."""
    spec_uri = join(location, "run.json")
    try:
        spec = storage.read_json(spec_uri) if storage.exists(spec_uri) else None
    except ValueError:
        return None  # normalize() then names what is wrong with it
    source = spec.get("source") if isinstance(spec, dict) else None
    return source if isinstance(source, str) else None


def _follow_with_bar(engine: Any, execution: str, progress: RunProgress, lanes: int,
                     started: float) -> Outcome:
    columns = (TextColumn("[bold]{task.description}"), BarColumn(),
               TextColumn("{task.completed:.0f}/{task.total} chunks"),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("splitting", total=None, detail="")

        def update() -> None:
            progress.poll()
            seconds = max(time.monotonic() - started, 1e-6)
            detail = (f"{progress.failed} failed · {progress.rows:,} rows · "
                      f"{progress.bytes / 1e6 / seconds:.1f} MB/s · "
                      f"{engine.busy}/{lanes} lanes busy")
            bar.update(task, description="processing" if progress.total is not None
                       else "splitting", total=progress.total,
                       completed=progress.ok + progress.failed, detail=detail)

        return engine.wait(execution, on_poll=update)  # type: ignore[no-any-return]


def _print_summary(console: Console, outcome: Outcome, location: str, storage: Storage,
                   seconds: float) -> None:
    report_uri = join(location, "report.json")
    report = storage.read_json(report_uri) if storage.exists(report_uri) else None
    if report is not None:
        table = Table(title=f"s3split run: {report['source']}", show_header=False)
        for label, value in (
            ("result", "succeeded" if outcome.succeeded else f"FAILED ({outcome.error})"),
            ("chunks", f"{report['chunks_ok']} ok, {report['chunks_failed']} failed "
                       f"of {report['chunks']}"),
            ("rows", f"{report['source_rows']:,} in source: {report['rows_ok']:,} ok, "
                     f"{report['rows_rejected']:,} rejected, "
                     f"{report['rows_in_failed_chunks']:,} in failed chunks"),
            ("bytes", f"{report['bytes']:,} ({report['bytes'] / 1e6 / seconds:.1f} MB/s)"),
            ("time", f"{seconds:.1f} s, {len(outcome.executions)} execution(s)"),
            ("report", report_uri),
        ):
            table.add_row(label, value)
        console.print(table)
        for failure in report["failed"][:10]:
            console.print(f"  chunk {failure['chunk']} (source line {failure['source_line']}): "
                          f"{failure['error']}: {failure['message']}", style="red")
    if not outcome.succeeded and outcome.error != "ToleratedFailuresExceeded":
        message = lambda_error_message(outcome.cause or "")
        click.echo(f"s3split: error: {outcome.error}: {message}", err=True)
