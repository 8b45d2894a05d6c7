"""A run's location holds only what the run wrote, and nothing else there is ever deleted.

Plan and Split as the state machine calls them, the chunks processed as the worker does, on
local files and on S3 (moto in process): a location that holds anything but a run of the same
source is refused, the source is never inside its run, a fresh run and a split made again
delete only the outcomes their own status records list, and locations are compared after
resolving symbolic links.
"""

import os
from dataclasses import replace
from pathlib import Path

import pytest

from s3split.deployment import Deployment
from s3split.errors import (
    ChunkInvalid,
    InvalidInput,
    RunInProgress,
    RunLocationTaken,
    SourceInDestination,
)
from s3split.holders import Holder
from s3split.pipeline.run_lock import acquire, release
from s3split.pipeline.spec import RunSpec
from s3split.pipeline.steps import plan, split_step
from s3split.split.manifest import Manifest
from s3split.storage import CONDITIONAL_PROBE, Storage, join
from tests.support.run_places import FailsChunk, Place, alive, place, rows, start

__all__ = ["place"]  # the fixture

USER_FILES = ("results/thesis.docx", "status/summary.csv", "notes.txt")


# -- what a run's location may hold ---------------------------------------------------------------


def test_a_location_holding_the_users_files_is_refused_and_left_alone(place: Place) -> None:
    source = place.put("in.csv", rows(50))
    location = join(place.base, "proj")
    for name in (*USER_FILES, "report.json"):
        place.put(f"proj/{name}", f"the user's {name}".encode())
    with pytest.raises(RunLocationTaken) as caught:
        plan({"source": source, "run": location}, "exec-1", place.deployment, place.storage,
             alive)
    assert str(caught.value).startswith(f"run location {location} is not empty and holds no "
                                        "run (")
    assert "choose a new or empty directory (--out)" in str(caught.value)
    for name in (*USER_FILES, "report.json"):
        assert place.read(join(location, *name.split("/"))) == f"the user's {name}".encode()
    assert not place.storage.exists(join(location, "lock.json"))


def test_another_starts_lock_probe_is_not_a_file_that_takes_the_location(place: Place) -> None:
    """The first lock at a location creates a probe key twice, for a moment: a start that
    lists the location then sees the run in progress (RunInProgress, once the other holds the
    lock), never a location taken by files that are not a run's."""
    source = place.put("in.csv", rows(50))
    location = join(place.base, "proj")
    place.put(f"proj/{CONDITIONAL_PROBE}123-abc", b"{}")
    acquire(location, Holder.new("exec-0", os.getpid()), place.storage, alive)
    with pytest.raises(RunInProgress):
        plan({"source": source, "run": location}, "exec-1", place.deployment, place.storage,
             alive)
    release(location, "exec-0", place.storage)
    plan({"source": source, "run": location}, "exec-1", place.deployment, place.storage, alive)
    assert place.storage.exists(join(location, "run.json"))

def test_a_new_run_of_the_same_source_deletes_only_what_runs_wrote(place: Place) -> None:
    source = place.put("in.csv", rows(50))
    location = join(place.base, "run")
    _, manifest = start(place, {"source": source, "run": location, "chunk_size": 300},
                            "exec-1")
    assert manifest.count > 3
    for name in USER_FILES:  # put beside the run's files after it ran
        place.put(f"run/{name}", b"mine")
    start(place, {"source": source, "run": location, "chunk_size": 300}, "exec-2")
    for name in USER_FILES:
        assert place.read(join(location, *name.split("/"))) == b"mine"
    assert place.names(location, "results") == sorted(
        [f"part-{i:05d}.jsonl" for i in range(manifest.count)] + ["thesis.docx"])


def test_an_edited_status_record_cannot_make_a_run_delete_another_file(place: Place) -> None:
    source = place.put("in.csv", rows(50))
    location = join(place.base, "run")
    spec, _ = start(place, {"source": source, "run": location, "chunk_size": 300}, "exec-1")
    keep = place.put("run/results/thesis.docx", b"mine")
    status = place.storage.read_json(spec.layout.status(0))
    place.storage.write_json(spec.layout.status(0), status | {
        "output": keep, "rejects_uri": source})
    start(place, {"source": source, "run": location, "chunk_size": 300}, "exec-2")
    assert place.read(keep) == b"mine" and place.read(source) == rows(50)


def test_two_sources_with_one_file_name_never_share_the_default_location(
        place: Place) -> None:
    """Local files a/data.csv and b/data.csv; on S3 one key in two buckets: both named
    ``<work>/data.csv`` by default."""
    first = place.put("a/data.csv", rows(20))
    if first.startswith("s3://"):
        place.storage.s3.create_bucket(Bucket="other")
        first, second = "s3://data/data.csv", "s3://other/data.csv"
        for uri, data in ((first, rows(20)), (second, rows(30))):
            with place.storage.writer(uri) as f:
                f.write(data)
        place.deployment = replace(place.deployment, work_location="s3://data/work",
                                   allowed_buckets=frozenset({"data", "other"}))
    else:
        second = place.put("b/data.csv", rows(30))
    spec, _ = start(place, {"source": first}, "exec-1")
    before = place.names(spec.location, "results")
    with pytest.raises(RunLocationTaken) as caught:
        plan({"source": second}, "exec-2", place.deployment, place.storage, alive)
    assert str(caught.value) == (
        f"run location {spec.location} holds the run of another source ({first}), not of "
        f"{second}: a run there would replace its results; choose another --out for {second}")
    assert place.names(spec.location, "results") == before and before


def test_a_location_inside_another_runs_location_is_refused_untouched(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bucket holds ``in.csv`` and ``in.csv/results/x.csv`` at once, a ``--out`` can name
    a folder of another run: a run there would write among that run's files. On S3 no key
    above the work location is asked for (S3 answers 403 for a key the functions may not
    read, missing or not)."""
    first = place.put("in.csv", rows(20))
    spec, _ = start(place, {"source": first}, "exec-1")
    before = place.names(spec.location, "results")
    second = place.put("other.csv", rows(10))
    asked: list[str] = []
    exists = place.storage.exists
    monkeypatch.setattr(place.storage, "exists", lambda uri: asked.append(uri) or exists(uri))
    for inner in (join(spec.location, "results", "other"), join(spec.location, "x", "y")):
        with pytest.raises(RunLocationTaken) as caught:
            plan({"source": second, "run": inner}, "exec-2", place.deployment, place.storage,
                 alive)
        assert str(caught.value) == (
            f"run location {inner} lies inside the run location {spec.location} of {first}: "
            "a run there would write among that run's files; choose another --out")
    assert place.names(spec.location, "results") == before
    if first.startswith("s3://"):
        assert asked and all(uri.startswith(place.deployment.work_location + "/")
                             for uri in asked)
    beside = join(place.deployment.work_location, "other")
    plan({"source": second, "run": beside}, "exec-3", place.deployment, place.storage, alive)


@pytest.mark.parametrize("inside", ["results/in.csv", "report.json", "run.json",
                                    "status/part-00000.json", "chunks/in.csv", "in.csv"])
def test_a_source_inside_its_run_location_is_refused_untouched(place: Place,
                                                               inside: str) -> None:
    source = place.put(f"proj/{inside}", rows(20))
    location = join(place.base, "proj")
    with pytest.raises(SourceInDestination) as caught:
        plan({"source": source, "run": location}, "exec-1", place.deployment, place.storage,
             alive)
    assert str(caught.value).startswith(f"source {source} is inside the run location "
                                        f"{location}: ")
    assert place.read(source) == rows(20)


def test_a_source_reached_through_a_link_into_the_location_is_refused(tmp_path: Path) -> None:
    (tmp_path / "proj" / "results").mkdir(parents=True)
    real_source = tmp_path / "proj" / "results" / "in.csv"
    real_source.write_bytes(rows(20))
    (tmp_path / "link.csv").symlink_to(real_source)
    deployment = Deployment(work_location=str(tmp_path), allow_local=True,
                            run_from_input=True, engine_pid=os.getpid())
    with pytest.raises(SourceInDestination):
        plan({"source": str(tmp_path / "link.csv"), "run": str(tmp_path / "proj")}, "exec-1",
             deployment, Storage(), alive)
    assert real_source.read_bytes() == rows(20)


# -- a split made again -----------------------------------------------------------------------


def test_a_split_made_again_with_fewer_chunks_leaves_no_earlier_outcome(place: Place) -> None:
    source = place.put("in.csv", rows(60))
    location = join(place.base, "run")
    spec, before = start(place, {"source": source, "run": location, "chunk_size": 300},
                         "exec-1")
    keep = place.put("run/results/thesis.docx", b"mine")
    place.storage.write_json(spec.layout.spec, spec.to_dict() | {"chunk_size": 1500})
    for name in place.names(location, "chunks"):  # what the lifecycle rule does
        if name.startswith("part-"):
            place.storage.delete(join(location, "chunks", name))
    planned = plan({"resume": location}, "exec-2", place.deployment, place.storage, alive)
    resumed = RunSpec.from_dict(planned["run"])
    assert split_step(resumed, None, place.deployment, place.storage, lambda: False)["done"]
    after = Manifest.from_dict(place.storage.read_json(spec.layout.manifest))
    assert 1 < after.count < before.count
    # every earlier outcome is of chunks cut elsewhere: none may stand for a new chunk
    assert place.names(location, "status") == []
    assert place.names(location, "results") == ["thesis.docx"] and place.read(keep) == b"mine"


def test_a_split_made_again_alike_keeps_the_outcomes_of_its_chunks(place: Place) -> None:
    source = place.put("in.csv", rows(60))
    location = join(place.base, "run")
    _, before = start(place, {"source": source, "run": location, "chunk_size": 300},
                         "exec-1")
    for name in place.names(location, "chunks"):
        if name.startswith("part-"):
            place.storage.delete(join(location, "chunks", name))
    planned = plan({"resume": location}, "exec-2", place.deployment, place.storage, alive)
    split_step(RunSpec.from_dict(planned["run"]), None, place.deployment, place.storage,
               lambda: False)
    assert len(place.names(location, "status")) == before.count
    assert len(place.names(location, "results")) == before.count


# -- locations compared as resolved -------------------------------------------------------------


def test_a_recorded_location_through_a_link_is_not_the_location_resumed(tmp_path: Path) -> None:
    """run.json says ``x/../run`` with ``x`` a link elsewhere: lexically that is ``run``, but
    the resume would write under ``elsewhere/../run``."""
    source = tmp_path / "in.csv"
    source.write_bytes(rows(20))
    (tmp_path / "elsewhere" / "deep").mkdir(parents=True)
    (tmp_path / "x").symlink_to(tmp_path / "elsewhere" / "deep")
    place = Place(str(tmp_path), Storage(), Deployment(
        work_location=str(tmp_path), allow_local=True, run_from_input=True,
        engine_pid=os.getpid()))
    location = str(tmp_path / "run")
    spec, _ = start(place, {"source": str(source), "run": location}, "exec-1")
    place.storage.write_json(spec.layout.spec,
                             spec.to_dict() | {"location": str(tmp_path / "x" / ".." / "run")})
    with pytest.raises(InvalidInput, match="is not the location being resumed"):
        plan({"resume": location}, "exec-2", place.deployment, place.storage, alive)
    assert not (tmp_path / "elsewhere" / "run").exists()


def test_a_chunk_that_fails_leaves_no_earlier_result_among_the_results(place: Place) -> None:
    """A run killed after chunk 1's result was written but before its status: a new run in
    which chunk 1 fails must not leave the old result beside the others."""
    source = place.put("in.csv", rows(60))
    location = join(place.base, "run")
    spec, _ = start(place, {"source": source, "run": location, "chunk_size": 300}, "exec-1")
    place.storage.delete(spec.layout.status(1))  # killed before its status was written
    assert place.storage.exists(spec.layout.result(1, "jsonl"))
    with pytest.raises(ChunkInvalid):
        start(place, {"source": source, "run": location, "chunk_size": 300}, "exec-2",
              FailsChunk(1))
    assert not place.storage.exists(spec.layout.result(1, "jsonl"))
    assert place.storage.read_json(spec.layout.status(1))["state"] == "failed"
