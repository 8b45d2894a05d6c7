"""The ``s3split`` command line."""

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from s3split.config import MAX_LANES
from s3split.errors import InvalidOption, S3SplitError
from s3split.manifest import SplitSettings
from s3split.sizes import format_size, parse_size
from s3split.splitter import split as split_source
from s3split.storage import Storage

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


def _fail(exc: Exception) -> None:
    click.echo(f"s3split: error: {exc}", err=True)
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--delimiter", default=",", show_default=True, metavar="C",
              help="Field delimiter (one character; 'tab' or '\\t' for a tab).")
@click.option("--quotechar", default='"', show_default=True, metavar="C",
              help="Quote character.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest summary as JSON.")
def split(source: str, dest: str, chunk_size: str | None, chunk_rows: int | None,
          no_header: bool, delimiter: str, quotechar: str, as_json: bool) -> None:
    """Split SOURCE into DEST/part-NNNNN.csv chunks plus DEST/manifest.json.

    Every chunk starts with the source's header and holds whole records: quoted
    fields may contain delimiters, doubled quotes and newlines. A chunk closes at
    the first record end at or after --chunk-size, or after --chunk-rows records.
    .gz and .zst sources are decompressed on the fly.
    """
    try:
        if chunk_size is not None and chunk_rows is not None:
            raise InvalidOption("give --chunk-size or --chunk-rows, not both")
        settings = SplitSettings(
            chunk_size=None if chunk_rows is not None else parse_size(chunk_size or "64MiB"),
            chunk_rows=chunk_rows,
            header=not no_header,
            delimiter=_char(delimiter),
            quotechar=_char(quotechar),
        )
        storage = Storage()
        started = time.perf_counter()
        with _progress(storage.stat(source).size, "splitting") as advance:
            result = split_source(source, dest, settings, storage, on_progress=advance)
        seconds = time.perf_counter() - started
    except S3SplitError as exc:
        _fail(exc)
    manifest = result.manifest
    assert manifest is not None
    if as_json:
        summary: dict[str, Any] = manifest.summary()
        summary.update(manifest_uri=result.manifest_uri, seconds=round(seconds, 3))
        click.echo(json.dumps(summary, indent=1, ensure_ascii=False))
        return
    rate = manifest.source.size / 1e6 / seconds if seconds > 0 else 0.0
    click.echo(
        f"{manifest.count} chunks, {manifest.rows:,} rows, {format_size(manifest.source.size)} "
        f"in {seconds:.2f} s ({rate:,.0f} MB/s) -> {result.manifest_uri}"
    )


@main.command()
@click.argument("source", required=False)
@click.option("--out", metavar="DIR",
              help="Run location (a directory or s3:// prefix). "
                   "Default ./s3split-out/<source name>.")
@click.option("--chunk-size", metavar="SIZE", help="Target chunk size. Default 64MiB.")
@click.option("--lanes", type=click.IntRange(1, MAX_LANES), help="Parallel lanes. Default 2.")
@click.option("--wait", "wait_seconds", type=click.IntRange(0, 86_400), metavar="SECONDS",
              help="Pause between a lane's chunks (for a rate-limited downstream). Default 0.")
@click.option("--processor", metavar="NAME",
              help="jsonl (default), validate, dynamodb, noop, or a registered custom one.")
@click.option("--tolerate", metavar="N|P%",
              help="Failed chunks tolerated before the run fails: a count or a percentage.")
@click.option("--resume", metavar="DIR",
              help="Continue the run in DIR: only chunks without a success status run again.")
def run(source: str | None, out: str | None, chunk_size: str | None, lanes: int | None,
        wait_seconds: int | None, processor: str | None, tolerate: str | None,
        resume: str | None) -> None:
    """Split SOURCE and process every chunk through the pipeline's state machine.

    Runs statemachine/pipeline.asl.json on an embedded Step Functions engine with
    the real Lambda handlers in worker processes; no AWS account needed. Writes
    chunks/, results/, status/ and report.json under --out. Exits 0 only when the
    run succeeded.
    """
    from s3split.runner import RunOptions, run_pipeline

    if (source is None) == (resume is None):
        raise click.UsageError("give SOURCE, or --resume DIR (not both)")
    options = RunOptions(source=source, out=out, chunk_size=chunk_size, lanes=lanes,
                         wait_seconds=wait_seconds, processor=processor, tolerate=tolerate,
                         resume=resume)
    try:
        outcome = run_pipeline(options, show_progress=sys.stderr.isatty())
    except S3SplitError as exc:
        _fail(exc)
    sys.exit(0 if outcome.succeeded else 1)
