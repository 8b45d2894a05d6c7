"""``--merge``: one results file, in chunk order, only when every chunk succeeded; local and
on S3 (moto in process)."""

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from s3split.deployment import Deployment
from s3split.errors import ChunkInvalid, InvalidOption, RunInProgress
from s3split.holders import Holder
from s3split.pipeline.chunk import process_chunk
from s3split.pipeline.merge import merge_results
from s3split.pipeline.run_lock import read_lock
from s3split.pipeline.steps import plan
from s3split.processors.registry import get_processor
from s3split.storage import Storage, join
from tests.support.run_places import FailsChunk, Place, alive, place, rows, start

__all__ = ["place"]  # the fixture


def test_the_merged_file_holds_every_result_in_chunk_order(place: Place) -> None:
    source = place.put("in.csv", rows(200))
    location = join(place.base, "run")
    _, manifest = start(place, {"source": source, "run": location, "chunk_size": 400},
                           "exec-1")
    assert manifest.count > 10  # part-00010 sorts before part-00002 as text, not here
    merged = merge_results(location, place.storage)
    assert merged == join(location, "results.jsonl")
    records = [json.loads(line) for line in place.read(merged).decode().splitlines()]
    assert [r["id"] for r in records] == [str(i) for i in range(200)]
    # a new start of the run removes it before anything else, as it does the report
    plan({"source": source, "run": location, "chunk_size": 400}, "exec-2", place.deployment,
         place.storage, alive)
    assert not place.storage.exists(merged)


def test_a_run_with_a_failed_chunk_is_never_merged(place: Place) -> None:
    source = place.put("in.csv", rows(60))
    location = join(place.base, "run")
    with pytest.raises(ChunkInvalid, match="chunk 2 is bad"):  # its status says failed
        start(place, {"source": source, "run": location, "chunk_size": 400}, "exec-1",
              FailsChunk(2))
    place.storage.delete(join(location, "lock.json"))  # the run ended (its Release state)
    with pytest.raises(InvalidOption) as caught:
        merge_results(location, place.storage)
    assert str(caught.value).startswith(f"--merge: chunk 2 of {location} did not succeed, so "
                                        "no merged file is written")
    assert not place.storage.exists(join(location, "results.jsonl"))


def test_parquet_results_are_merged_into_one_parquet_file_in_chunk_order(
        place: Place, tmp_path: Path) -> None:
    import duckdb

    source = place.put("in.csv", rows(200))
    location = join(place.base, "run")
    _, manifest = start(place, {"source": source, "run": location, "chunk_size": 400,
                                "processor": "parquet"}, "exec-1",
                        get_processor("parquet", {}))
    assert manifest.count > 10
    merged = merge_results(location, place.storage)
    assert merged == join(location, "results.parquet")
    local = tmp_path / "merged.parquet"
    local.write_bytes(place.read(merged))
    ids = [row[0] for row in duckdb.sql(f"SELECT id FROM read_parquet('{local}')").fetchall()]
    assert ids == [str(i) for i in range(200)]
    plan({"source": source, "run": location, "chunk_size": 400, "processor": "parquet"},
         "exec-2", place.deployment, place.storage, alive)
    assert not place.storage.exists(merged)  # a new start removes it first


def test_results_of_two_kinds_are_never_merged(place: Place) -> None:
    source = place.put("in.csv", rows(60))
    location = join(place.base, "run")
    spec, manifest = start(place, {"source": source, "run": location, "chunk_size": 400},
                           "exec-1")
    place.storage.delete(spec.layout.status(1))  # chunk 1 processed again, as Parquet
    process_chunk(spec, 1, 2, place.storage, get_processor("parquet", {}),
                  manifest)
    with pytest.raises(InvalidOption, match="not JSON Lines or Parquet as the other"):
        merge_results(location, place.storage)


def test_a_merge_holds_the_run_lock_and_waits_for_no_other_run(place: Place) -> None:
    """The merge ran after the run's lock was released: a run started meanwhile (another
    --chunk-size) replaced statuses and results under it, mixing two runs' chunks in one
    merged file. A merge is refused while another holds the location, and holds it itself."""
    source = place.put("in.csv", rows(60))
    location = join(place.base, "run")
    start(place, {"source": source, "run": location, "chunk_size": 400}, "exec-1")
    other = Holder.new("exec-2", os.getpid())  # a live process: this one
    place.storage.write_json(join(location, "lock.json"), asdict(other))
    with pytest.raises(RunInProgress, match="exec-2"):
        merge_results(location, place.storage)
    assert not place.storage.exists(join(location, "results.jsonl"))
    place.storage.delete(join(location, "lock.json"))
    merged = merge_results(location, place.storage)
    assert place.storage.exists(merged) and read_lock(location, place.storage) is None


def test_a_merge_removes_what_a_merge_killed_part_way_left_and_nothing_else(
        tmp_path: Path) -> None:
    """A merge killed (SIGKILL, the machine's end) left its temporary file, as big as the
    results, beside them for good."""
    storage = Storage()
    (tmp_path / "in.csv").write_bytes(rows(60))
    location = str(tmp_path / "run")
    start(Place(str(tmp_path), storage, Deployment(work_location=str(tmp_path),
                                                   allow_local=True, run_from_input=True)),
          {"source": str(tmp_path / "in.csv"), "run": location, "chunk_size": 400}, "exec-1")
    killed = tmp_path / "run" / ".results.jsonl.k1ll3d0x.tmp"
    killed.write_bytes(b'{"id": "half a rec')
    others = [tmp_path / "run" / name for name in (".results.jsonl.notes", "mine.tmp")]
    for other in others:
        other.write_text("the user's")
    merge_results(location, storage)
    assert not killed.exists()
    assert all(other.read_text() == "the user's" for other in others)
