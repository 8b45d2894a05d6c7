"""Shared pieces of the pipeline tests: CSV makers, a moto S3 server, a run on the engine
(the fixtures built from them are in tests/conftest.py)."""

import csv
import io
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from s3split.engine.local import LocalEngine, Outcome
from s3split.pipeline.report import MAX_LISTED
from s3split.processors import MAX_REJECT_SAMPLES
from s3split.storage import Storage, join
from tests.support.iam import record_state_machine_calls
from tests.support.pipeline_processors import control_uri

PROBE = "probe=tests.support.pipeline_processors:probe"  # imported by the engine's workers
HEADER = "id,name,note,pad\r\n"
BUCKET = "data"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


def csv_text(rows: int) -> str:
    """Records of about 110 bytes, with quoted commas, doubled quotes and embedded newlines."""
    lines = [HEADER]
    for i in range(rows):
        lines.append(f'{i},"name, {i}","say ""hi""\r\nline two {i}",{"x" * 80}\r\n')
    return "".join(lines)


def make_csv(path: Path, rows: int) -> str:
    text = csv_text(rows)
    path.write_bytes(text.encode())
    return text


def tiny_csv(path: Path, records: int) -> Path:
    """Header ``id,v`` and ``records`` records ``i,x``: record i is on source line i + 2."""
    path.write_text("id,v\n" + "".join(f"{i},x\n" for i in range(records)))
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_s3_server(objects_json: Path | None = None) -> Iterator[str]:
    """A moto server on loopback, in its own process (handlers reach it over HTTP); with
    ``objects_json``, started with those objects stored (see tests/support/s3_server.py)."""
    port = _free_port()
    program = (["-m", "moto.server"] if objects_json is None else
               [str(Path(__file__).with_name("s3_server.py")), str(objects_json)])
    server = subprocess.Popen([sys.executable, *program, "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start within 30 s") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


class Run:
    """One pipeline run in its own place under ``base`` (a directory or an s3:// prefix)."""

    def __init__(self, engine: LocalEngine, storage: Storage, base: str, name: str,
                 rows: int = 20, control: dict[str, Any] | None = None) -> None:
        self.engine, self.storage = engine, storage
        self.source = join(base, name, "in.csv")
        self.text = csv_text(rows)
        with storage.writer(self.source) as f:
            f.write(self.text.encode())
        self.location = join(base, name, "run")
        if control is not None:
            storage.write_json(control_uri(self.location), control)

    def start(self, **overrides: Any) -> Outcome:
        run_input = {"source": self.source, "run": self.location, "chunk_size": 1000,
                     "processor": "probe"} | overrides
        return self.engine.wait(self.engine.start(run_input), timeout_s=120)

    def resume(self) -> Outcome:
        return self.engine.wait(self.engine.start({"resume": self.location}), timeout_s=120)

    def set_control(self, control: dict[str, Any]) -> None:
        self.storage.write_json(control_uri(self.location), control)

    @property
    def report(self) -> dict[str, Any]:
        return dict(self.storage.read_json(join(self.location, "report.json")))

    def status(self, index: int) -> dict[str, Any]:
        return dict(self.storage.read_json(join(self.location, "status",
                                                f"part-{index:05d}.json")))

    def probes(self) -> list[dict[str, Any]]:
        folder = join(self.location, "probe")
        return [self.storage.read_json(join(folder, name)) for name in self.storage.list(folder)]

    def result_rows(self) -> list[dict[str, Any]]:
        folder = join(self.location, "results")
        rows = []
        for name in self.storage.list(folder):
            if name.endswith(".jsonl") and not name.endswith(".rejects.jsonl"):
                with self.storage.open_read(join(folder, name)) as f:
                    rows += [json.loads(line) for line in f.read().decode().splitlines()]
        return rows

    def source_rows(self) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(self.text, newline="")))

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(self.storage.read_json(join(self.location, "chunks", "manifest.json")))

    def events(self, outcome: Outcome) -> list[list[dict[str, Any]]]:
        return [self.engine.history(arn) for arn in outcome.executions]


def assert_accounted(report: dict[str, Any], source_rows: int,
                     manifest: dict[str, Any] | None = None) -> None:
    """Every source record counted exactly once: ``source_rows = rows_ok + rows_rejected +
    rows_in_failed_chunks``, worked out here from the listed numbers, not taken from the
    report's own ``accounted`` flag. ``source_rows`` is what the test knows the source holds.

    Failed chunks must be listed with chunk, source line, rows and error, rejected rows with
    chunk and source line (in full while there are few enough). With the run's ``manifest``,
    each listed failure is checked against its chunk entry and each rejected line against the
    lines its chunk spans.
    """
    ok, rejected, failed = (report["rows_ok"], report["rows_rejected"],
                            report["rows_in_failed_chunks"])
    assert all(isinstance(n, int) and n >= 0 for n in (ok, rejected, failed)), report
    assert report["source_rows"] == source_rows, (report["source_rows"], source_rows)
    assert ok + rejected + failed == source_rows, (ok, rejected, failed, source_rows)
    assert report["accounted"] is True
    chunks = report["chunks"]
    assert report["chunks_ok"] + report["chunks_failed"] == chunks, report

    listed_failed = report["failed"]
    assert len(listed_failed) == min(report["chunks_failed"], MAX_LISTED), listed_failed
    failed_chunks = [f["chunk"] for f in listed_failed]
    assert len(set(failed_chunks)) == len(failed_chunks), failed_chunks
    for f in listed_failed:
        assert 0 <= f["chunk"] < chunks and f["source_line"] >= 1 and f["rows"] >= 0, f
        assert f["error"] and f["message"], f
    if report["chunks_failed"] <= MAX_LISTED:
        assert sum(f["rows"] for f in listed_failed) == failed, (listed_failed, failed)

    listed_rejected = report["rejected"]
    places = [(r["chunk"], r["line"]) for r in listed_rejected]
    assert len(set(places)) == len(places), places
    assert len(places) <= min(rejected, MAX_LISTED), (places, rejected)
    if rejected <= MAX_REJECT_SAMPLES:  # fewer than one chunk keeps: every one is listed
        assert len(places) == rejected, (places, rejected)
    for r in listed_rejected:
        assert 0 <= r["chunk"] < chunks and r["chunk"] not in failed_chunks, r
        assert r["line"] >= 1 and r["reason"], r

    if manifest is None:
        return
    entries = manifest["chunks"]
    assert manifest["count"] == len(entries) == chunks
    assert manifest["rows"] == sum(e["rows"] for e in entries) == source_rows
    for f in listed_failed:
        entry = entries[f["chunk"]]
        assert (f["source_line"], f["rows"]) == (entry["source_line"], entry["rows"]), f
    for r in listed_rejected:
        first = entries[r["chunk"]]["source_line"]
        after = entries[r["chunk"] + 1]["source_line"] if r["chunk"] + 1 < chunks else None
        assert first <= r["line"] and (after is None or r["line"] < after), (r, first, after)


def local_results(run_dir: Path) -> list[dict[str, Any]]:
    """The JSON Lines results of a run in a local directory, in chunk order."""
    rows = []
    for path in sorted((run_dir / "results").glob("part-*.jsonl")):
        if not path.name.endswith(".rejects.jsonl"):
            rows += [json.loads(line) for line in path.read_text().splitlines()]
    return rows


def max_overlap(probes: list[dict[str, Any]]) -> int:
    edges = sorted([(p["start"], 1) for p in probes] + [(p["end"], -1) for p in probes])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


Backend = tuple[LocalEngine, Storage, str]  # the engine, its storage, where runs go


@contextmanager
def work_storage(kind: str, tmp: Path) -> Iterator[tuple[str, Storage, dict[str, str]]]:
    """Where runs go, its storage and the engine environment that reaches it: local files
    under ``tmp``, or a bucket on a moto server started for the block."""
    if kind == "local":
        yield str(tmp), Storage(), {}
        return
    with moto_s3_server() as endpoint:
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        yield f"s3://{BUCKET}/runs", Storage(s3), CREDENTIALS | {
            "AWS_ENDPOINT_URL_S3": endpoint, "S3SPLIT_ALLOWED_BUCKETS": BUCKET}


@contextmanager
def pipeline_backend(kind: str, tmp: Path, env: dict[str, str]) -> Iterator[Backend]:
    """The engine with local storage under ``tmp``, or with S3 on a moto server."""
    from s3split.engine.local import local_engine

    with work_storage(kind, tmp) as (base, storage, storage_env), \
            local_engine(base, workers=2, env=storage_env | env) as engine:
        yield engine, storage, base
        record_state_machine_calls(engine.sfn)


# A range split of every source, in ranges of 1,500 bytes, 2 chunks per assembly task.
RANGED = {"S3SPLIT_RANGE_SPLIT_FROM": "1", "S3SPLIT_RANGE_SIZE": "1500",
          "S3SPLIT_ASSEMBLE_CHUNKS": "2"}
