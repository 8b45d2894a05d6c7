"""A place for runs driven step by step (Plan, Split, the workers' chunk processing) as the
state machine drives them, on local files and on S3 (moto in process)."""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from s3split.deployment import Deployment
from s3split.errors import ChunkInvalid
from s3split.holders import Holder
from s3split.pipeline.chunk import process_chunk
from s3split.pipeline.spec import RunSpec
from s3split.pipeline.steps import plan, split_step
from s3split.processors.base import ChunkJob, Processor, ProcessResult
from s3split.processors.jsonl import JsonlProcessor
from s3split.processors.registry import get_processor
from s3split.split.manifest import Manifest
from s3split.storage import Storage, join
from tests.support.aws import mocked_s3

HEADER = "id,note\n"


def rows(count: int) -> bytes:
    return (HEADER + "".join(f'{i},"note {i}, with a comma"\n' for i in range(count))).encode()


@dataclass
class Place:
    """Where runs go (a directory or an S3 prefix), its storage and a deployment like
    ``s3split run``'s."""

    base: str
    storage: Storage
    deployment: Deployment

    def put(self, relative: str, data: bytes) -> str:
        uri = join(self.base, *relative.split("/"))
        with self.storage.writer(uri) as f:
            f.write(data)
        return uri

    def read(self, uri: str) -> bytes:
        with self.storage.open_read(uri) as f:
            return f.read()

    def names(self, location: str, folder: str) -> list[str]:
        return self.storage.list(join(location, folder))


def alive(holder: Holder) -> bool:
    return holder.pid == os.getpid()


@pytest.fixture(params=["local", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Place]:
    if request.param == "local":
        yield Place(str(tmp_path), Storage(), Deployment(
            work_location=str(tmp_path / "work"), allow_local=True, run_from_input=True,
            engine_pid=os.getpid()))
        return
    with mocked_s3(monkeypatch, "data") as client:
        yield Place("s3://data/base", Storage(client), Deployment(
            work_location="s3://data/base", allowed_buckets=frozenset({"data"}),
            run_from_input=True, engine_pid=os.getpid()))


def start(place: Place, event: dict[str, Any], execution: str,
          processor: Processor | None = None) -> tuple[RunSpec, Manifest]:
    """Plan, split, and process every chunk with ``jsonl`` as the workers do."""
    planned = plan(event, execution, place.deployment, place.storage, alive)
    spec = RunSpec.from_dict(planned["run"])
    assert split_step(spec, None, place.deployment, place.storage, lambda: False)["done"]
    manifest = Manifest.from_dict(place.storage.read_json(spec.layout.manifest))
    processor = processor or get_processor("jsonl", {})
    for index in range(manifest.count):
        process_chunk(spec, index, 1, place.storage, processor, manifest)
    place.storage.delete(spec.layout.lock)  # the run ended (Summarize releases it)
    return spec, manifest


class FailsChunk:
    """jsonl, but chunk ``index`` fails as a bad chunk does (its status says failed)."""

    extension = "jsonl"

    def __init__(self, index: int) -> None:
        self.index = index

    def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult:
        if job.index == self.index:
            raise ChunkInvalid(f"chunk {job.index} is bad")
        return JsonlProcessor()(job, storage)
