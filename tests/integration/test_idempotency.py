"""Powertools idempotency for custom processors, on moto's DynamoDB.

The processor here has a side effect outside its outputs (a line per call appended to
``calls.log`` in the run's location) and is loaded as the worker loads it: a custom processor
named in ``S3SPLIT_PROCESSORS``, guarded when ``S3SPLIT_IDEMPOTENCY_TABLE`` is set.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from s3split.errors import ChunkInProgress, TransientError
from s3split.pipeline.chunk import load_manifest, process_chunk
from s3split.pipeline.spec import RunSpec
from s3split.processors.base import ChunkJob, Processor, ProcessResult
from s3split.processors.idempotency import TABLE as IDEMPOTENCY_TABLE
from s3split.processors.idempotency import ChunkIdempotency
from s3split.processors.reader import read_rows
from s3split.processors.registry import BUILTINS, get_processor
from s3split.split.manifest import Manifest
from s3split.split.splitter import split
from s3split.storage import Storage

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = pytest.mark.timeout(60)

TABLE = "idempotency"
NAME = "appender"
ENV = {"S3SPLIT_PROCESSORS": f"{NAME}={__name__}:append_call",  # this module
       "S3SPLIT_IDEMPOTENCY_TABLE": TABLE}
CHUNK = 1
SCHEMA = {"columns": {"id": {"type": "str"}}}
ALWAYS_NEW = ("duration_s", "finished_at", "attempt")  # of a status record


def append_call(job: ChunkJob, storage: Storage) -> ProcessResult:
    """A custom processor: rows with a numeric qty out as JSON Lines, the others rejected; each
    call appends a line to ``<run>/calls.log`` and writes its call number into the output."""
    log = Path(job.chunk_uri).parents[1] / "calls.log"  # <run>/chunks/part-NNNNN.csv
    with log.open("a", encoding="utf-8") as f:
        f.write(f"{job.run_id} {job.index} {job.manifest_etag}\n")
    call = len(log.read_text(encoding="utf-8").splitlines())
    out, rejects = 0, []
    with read_rows(job, storage) as rows, storage.writer(job.output_uri) as output:
        output.write(json.dumps({"call": call}).encode() + b"\n")
        for row in rows:
            if not row.fields[1].isdigit():
                rejects.append({"line": row.line, "reason": f"qty {row.fields[1]!r}"})
                continue
            output.write(json.dumps({"id": row.fields[0], "qty": int(row.fields[1])}).encode()
                         + b"\n")
            out += 1
    return ProcessResult(out + len(rejects), out, len(rejects), job.output_uri, None, rejects)


@dataclass
class Context:
    """The part of a Lambda context the idempotency utility reads."""

    deadline: float

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.time()) * 1000)


def invocation(seconds: float = 900) -> Any:
    """The context of an invocation just started with the worker's timeout."""
    return Context(time.time() + seconds)


@dataclass(frozen=True)
class Custom:
    """A function as a processor, as ``get_processor`` makes one of a custom target."""

    function: Callable[[ChunkJob, Storage], ProcessResult]
    extension: str = "jsonl"

    def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult:
        return self.function(job, storage)


class Killed(BaseException):
    """The invocation dies mid-chunk (a timeout, out of memory): no cleanup runs."""


@dataclass
class Run:
    spec: RunSpec
    manifest: Manifest
    storage: Storage
    dynamodb: DynamoDBClient

    @property
    def calls(self) -> list[str]:
        log = Path(self.spec.location) / "calls.log"
        return log.read_text(encoding="utf-8").splitlines() if log.exists() else []

    @property
    def output(self) -> Path:
        return Path(self.spec.layout.result(CHUNK, "jsonl"))

    def processor(self, env: dict[str, str] = ENV, context: Any = None) -> Processor:
        """What the worker handler does: load the processor, guard it if the table is set."""
        processor = get_processor(self.spec.processor, env)
        idempotency = ChunkIdempotency.from_env(env, self.dynamodb)
        if idempotency is not None:
            processor = idempotency.guard(self.spec.processor, processor, context or invocation())
        return processor

    def deliver(self, processor: Processor, *, spec: RunSpec | None = None,
                manifest: Manifest | None = None, attempt: int = 1) -> dict[str, Any]:
        return process_chunk(spec or self.spec, CHUNK, attempt, self.storage, processor,
                             manifest or self.manifest)

    def lose_status(self, spec: RunSpec | None = None) -> None:
        """The success was done but its status record never written (or lost with the
        response): the next delivery finds no status."""
        Path((spec or self.spec).layout.status(CHUNK)).unlink()

    def records(self) -> list[dict[str, Any]]:
        return self.dynamodb.scan(TableName=TABLE, ConsistentRead=True)["Items"]


def version(manifest: Manifest, etag: str) -> Manifest:
    return replace(manifest, source=replace(manifest.source, etag=etag))


def stable(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k not in ALWAYS_NEW}


@pytest.fixture
def dynamodb(mocked_dynamodb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch) -> DynamoDBClient:
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    client = mocked_dynamodb
    client.create_table(  # as template.yaml's IdempotencyTable
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    client.update_time_to_live(TableName=TABLE, TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "expiration"})
    return client


@pytest.fixture
def run(tmp_path: Path, dynamodb: DynamoDBClient) -> Run:
    source = tmp_path / "orders.csv"
    source.write_text("id,qty\n" + "".join(
        f"o{i},{'x' if i % 4 == 3 else i}\n" for i in range(40)), encoding="utf-8")
    spec = RunSpec(run_id="orders-1234abcd", source=str(source), location=str(tmp_path / "run"),
                   chunk_size=100, lanes=1, wait_seconds=0, processor=NAME, tolerate="0")
    storage = Storage()
    manifest = split(spec.source, spec.layout.chunks, spec.split_settings, storage).manifest
    assert manifest is not None and manifest.count > CHUNK
    return Run(spec, version(manifest, '"v1"'), storage, dynamodb)


# -- a repeated delivery ------------------------------------------------------------------------


def test_a_delivery_whose_status_was_lost_does_the_side_effect_once(run: Run) -> None:
    processor = run.processor()
    first = run.deliver(processor)
    written = run.output.read_bytes(), run.output.stat().st_mtime_ns
    run.lose_status()
    second = run.deliver(processor, attempt=2)
    assert run.calls == ['orders-1234abcd 1 "v1"']  # the side effect happened once
    assert stable(second) == stable(first)
    assert second["state"] == "ok" and second["attempt"] == 2
    assert first["rows_rejected"] > 0 and first["rejects"]  # what the saved result round-trips
    assert (run.output.read_bytes(), run.output.stat().st_mtime_ns) == written
    assert json.loads(run.output.read_text().splitlines()[0]) == {"call": 1}
    (record,) = run.records()
    assert record["id"]["S"].startswith(f"s3split.{NAME}#")
    assert record["status"]["S"] == "COMPLETED"
    assert record["expiration"]["N"].isdigit()  # the table's TTL attribute


def test_the_saved_result_is_the_process_result(run: Run) -> None:
    processor = run.processor()
    job = ChunkJob(index=CHUNK, chunk_uri=run.manifest.chunks[CHUNK].uri,
                   output_uri=str(run.output), rejects_uri=run.spec.layout.rejects(CHUNK),
                   source_line=run.manifest.chunks[CHUNK].source_line, has_header=True,
                   delimiter=",", quotechar='"', run_id=run.spec.run_id, manifest_etag='"v1"')
    first = processor(job, run.storage)
    again = processor(job, run.storage)
    assert isinstance(again, ProcessResult)
    assert again == first and again.rejects == first.rejects
    assert len(run.calls) == 1


def test_a_new_source_version_or_another_run_processes_the_chunk_again(run: Run) -> None:
    processor = run.processor()
    run.deliver(processor)
    run.lose_status()
    run.deliver(processor, manifest=version(run.manifest, '"v2"'))  # the source was replaced
    other = replace(run.spec, run_id="orders-other")
    run.lose_status()
    run.deliver(processor, spec=other)
    assert run.calls == ['orders-1234abcd 1 "v1"', 'orders-1234abcd 1 "v2"',
                         'orders-other 1 "v1"']
    for spec, manifest in ((run.spec, version(run.manifest, '"v2"')), (other, run.manifest)):
        run.lose_status()
        run.deliver(processor, spec=spec, manifest=manifest)  # each of them only once
    assert len(run.calls) == 3
    assert len(run.records()) == 3


def test_a_chunk_of_a_split_made_again_is_not_answered_by_the_earlier_chunks_record(
        run: Run) -> None:
    """The chunks expired and the source was split again with other settings: chunk 1 now
    holds other records, and the earlier chunk 1's saved result must not stand for it."""
    processor = run.processor()
    first = load_manifest(run.spec, run.storage, {})
    assert first.version
    run.deliver(processor, manifest=first)
    run.lose_status()
    spec = replace(run.spec, chunk_size=60)
    again = split(spec.source, spec.layout.chunks, spec.split_settings, run.storage).manifest
    assert again is not None and again.chunks[CHUNK].rows != first.chunks[CHUNK].rows
    second = load_manifest(spec, run.storage, {})
    status = run.deliver(processor, spec=spec, manifest=second)
    assert status["state"] == "ok" and status["rows"] == second.chunks[CHUNK].rows
    assert [line.split(" ")[2] for line in run.calls] == [first.version, second.version]
    assert first.version != second.version


# -- attempts at the same time, and one that died -----------------------------------------------


def test_a_delivery_while_another_is_in_progress_is_transient(run: Run) -> None:
    guarded = run.processor()
    seen: list[str] = []

    @dataclass
    class DeliverAgainMidway:
        """Inside the first attempt, after its record is in progress, a second delivery."""

        deliver: Callable[[], dict[str, Any]]
        extension: str = "jsonl"

        def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult:
            with pytest.raises(ChunkInProgress) as error:
                self.deliver()
            seen.append(str(error.value))
            assert not Path(run.spec.layout.status(CHUNK)).exists()  # the second wrote no status
            return append_call(job, storage)

    inner = DeliverAgainMidway(lambda: run.deliver(guarded, attempt=2))
    idempotency = ChunkIdempotency.from_env(ENV, run.dynamodb)
    assert idempotency is not None
    outer = idempotency.guard(NAME, inner, invocation())
    status = run.deliver(outer)
    (message,) = seen
    assert f"chunk {CHUNK} of run orders-1234abcd (processor {NAME})" in message
    assert "in progress" in message
    assert status["state"] == "ok"
    assert len(run.calls) == 1


def test_an_attempt_killed_mid_chunk_blocks_others_until_its_time_limit(run: Run) -> None:
    def dies(job: ChunkJob, storage: Storage) -> ProcessResult:
        raise Killed

    idempotency = ChunkIdempotency.from_env(ENV, run.dynamodb)
    assert idempotency is not None
    limit = 1.5
    context: Any = Context(time.time() + limit)
    killed = idempotency.guard(NAME, Custom(dies), context)
    with pytest.raises(Killed):
        run.deliver(killed)
    (record,) = run.records()
    assert record["status"]["S"] == "INPROGRESS"
    assert "in_progress_expiration" in record  # from the registered Lambda context
    retry = run.processor(context=Context(time.time() + 60))
    with pytest.raises(ChunkInProgress, match=f"chunk {CHUNK} of run orders-1234abcd"):
        run.deliver(retry, attempt=2)
    assert run.calls == []
    time.sleep(limit + 0.1)  # the killed invocation's time limit has passed
    status = run.deliver(retry, attempt=3)
    assert status["state"] == "ok"
    assert len(run.calls) == 1


def test_a_failed_attempt_leaves_no_record(run: Run) -> None:
    def fails(job: ChunkJob, storage: Storage) -> ProcessResult:
        raise TransientError("downstream throttled")

    idempotency = ChunkIdempotency("idempotency", run.dynamodb)
    with pytest.raises(TransientError, match="downstream throttled"):
        run.deliver(idempotency.guard(NAME, Custom(fails), invocation()))
    assert run.records() == []
    assert run.deliver(run.processor(), attempt=2)["state"] == "ok"
    assert len(run.calls) == 1


# -- when it applies ---------------------------------------------------------------------------


def test_without_the_table_a_custom_processor_is_not_guarded(run: Run) -> None:
    env = {k: v for k, v in ENV.items() if k != "S3SPLIT_IDEMPOTENCY_TABLE"}
    assert ChunkIdempotency.from_env(env) is None
    processor = run.processor(env)
    run.deliver(processor)
    run.lose_status()
    run.deliver(processor, attempt=2)
    assert len(run.calls) == 2  # the side effect again: what the table is for
    assert json.loads(run.output.read_text().splitlines()[0]) == {"call": 2}
    assert run.records() == []


def test_the_table_comes_from_the_environment_only() -> None:
    assert ChunkIdempotency.from_env({}) is None
    assert ChunkIdempotency.from_env({"S3SPLIT_IDEMPOTENCY_TABLE": " "}) is None
    assert IDEMPOTENCY_TABLE.read({"S3SPLIT_IDEMPOTENCY_TABLE": " idem-table "}) == "idem-table"


def test_built_in_processors_are_never_guarded(run: Run) -> None:
    env = {"S3SPLIT_DYNAMODB_TABLE": "orders", "S3SPLIT_SCHEMA": json.dumps(SCHEMA),
           "S3SPLIT_SQL": "SELECT * FROM chunk", "S3SPLIT_IDEMPOTENCY_TABLE": TABLE}
    idempotency = ChunkIdempotency.from_env(env, run.dynamodb)
    assert idempotency is not None
    for name in BUILTINS:
        processor = get_processor(name, env)
        assert idempotency.guard(name, processor) is processor, name
    custom = get_processor(NAME, ENV)
    guarded = idempotency.guard(NAME, custom)
    assert guarded is not custom and guarded.extension == custom.extension
