"""A chunk's processing and the records it leaves: a processor's counts are checked before
they are recorded, and a status record, manifest or lock read back that is not what s3split
wrote there is one named error naming the file and what to do, never a KeyError."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from s3split.errors import ChunkMisaligned, ProcessorResultInvalid, RunFileCorrupt
from s3split.holders import Holder
from s3split.pipeline.chunk import load_manifest, process_chunk, read_status, record_failure
from s3split.pipeline.report import build_report
from s3split.pipeline.run_lock import acquire, release
from s3split.pipeline.spec import RunSpec
from s3split.processors import ChunkJob, JsonlProcessor, ProcessResult
from s3split.split.manifest import Manifest
from s3split.split.splitter import split
from s3split.storage import Storage

ROWS = 4


def _run(tmp_path: Path) -> tuple[RunSpec, Manifest, Storage]:
    source = tmp_path / "in.csv"
    source.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(ROWS)))
    spec = RunSpec(run_id="r", source=str(source), location=str(tmp_path / "run"),
                   chunk_size=10_000, lanes=1, wait_seconds=0, processor="custom",
                   tolerate="0")
    storage = Storage()
    manifest = split(spec.source, spec.layout.chunks, spec.split_settings, storage).manifest
    assert manifest is not None and manifest.count == 1
    return spec, manifest, storage


def _returning(**fields: Any) -> Any:
    """A custom processor that writes nothing and returns ``fields`` as its counts."""
    def process(job: ChunkJob, storage: Storage) -> Any:
        counts: dict[str, Any] = {"rows_in": ROWS, "rows_out": ROWS, "rows_rejected": 0,
                                  "rejects": []} | fields
        return ProcessResult(counts["rows_in"], counts["rows_out"], counts["rows_rejected"],
                             None, None, counts["rejects"], counts.get("records_written"))

    process.extension = "jsonl"  # type: ignore[attr-defined]
    return process


@pytest.mark.parametrize(("fields", "problem"), [
    ({"rows_in": 4, "rows_out": 6, "rows_rejected": -2}, "rows_rejected is -2"),
    ({"rows_in": 4.0, "rows_out": 3.0, "rows_rejected": 1.0}, "rows_in is 4.0"),
    ({"rows_out": "3", "rows_rejected": "1"}, "rows_out is '3'"),
    ({"rows_out": True, "rows_rejected": 3}, "rows_out is True"),
    ({"rows_out": 2, "rows_rejected": 1}, "rows_in 4 != rows_out 2 + rows_rejected 1"),
    ({"rows_out": 3, "rows_rejected": 1, "rejects": ["line 2"]}, "rejects[0] is 'line 2'"),
    ({"rows_out": 3, "rows_rejected": 1, "rejects": {"line": 2}}, "rejects is dict"),
    ({"records_written": -1}, "records_written=-1"),
    ({"records_written": 2.0}, "records_written=2.0"),
    ({"records_written": True}, "records_written=True"),
])
def test_a_processors_counts_are_checked_before_they_are_recorded(
        tmp_path: Path, fields: dict[str, Any], problem: str) -> None:
    """Negative, fractional, string or boolean counts, counts that do not add up and rejects
    that are not objects fail the chunk (its status says why); they never reach a report."""
    spec, manifest, storage = _run(tmp_path)
    with pytest.raises(ProcessorResultInvalid,
                       match=re.escape(f"processor custom returned {problem}")):
        process_chunk(spec, 0, 1, storage, _returning(**fields), manifest)
    status = read_status(spec, 0, storage)
    assert status is not None
    assert (status["state"], status["error"]) == ("failed", "ProcessorResultInvalid")
    report = build_report(spec, manifest, storage)
    assert (report["succeeded"], report["rows_in_failed_chunks"], report["rows_ok"]) == (
        False, ROWS, 0)


def test_a_processor_must_read_every_record_the_manifest_counts(tmp_path: Path) -> None:
    spec, manifest, storage = _run(tmp_path)
    with pytest.raises(ChunkMisaligned, match=r"should hold 4 records .* processor read 3"):
        process_chunk(spec, 0, 1, storage, _returning(rows_in=3, rows_out=3), manifest)


def test_a_processor_that_returns_no_process_result_fails_the_chunk(tmp_path: Path) -> None:
    spec, manifest, storage = _run(tmp_path)

    def process(job: ChunkJob, storage: Storage) -> Any:
        return {"rows_in": ROWS, "rows_out": ROWS, "rows_rejected": 0}

    process.extension = "jsonl"  # type: ignore[attr-defined]
    with pytest.raises(ProcessorResultInvalid, match="returned dict, not a ProcessResult"):
        process_chunk(spec, 0, 1, storage, process, manifest)


def _processed(tmp_path: Path) -> tuple[RunSpec, Manifest, Storage, Path]:
    spec, manifest, storage = _run(tmp_path)
    spec = replace(spec, processor="jsonl")
    process_chunk(spec, 0, 1, storage, JsonlProcessor(), manifest)
    return spec, manifest, storage, Path(spec.layout.status(0))


def _edit(path: Path, **changes: Any) -> None:
    document = json.loads(path.read_text())
    for name, value in changes.items():
        if value is None:
            del document[name]
        else:
            document[name] = value
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(("corruption", "problem"), [
    (lambda p: p.write_text(""), r"not a JSON document \(Expecting value"),
    (lambda p: p.write_bytes(b"\xff\xfe{}"), "not a JSON document"),
    (lambda p: p.write_text("[1, 2]"), "expected a JSON object, found list"),
    (lambda p: _edit(p, processor=None), "not a status record: no processor field"),
    (lambda p: _edit(p, state="done"), "state is 'done'"),
    (lambda p: _edit(p, rows_rejected=-2, rows_out=6), "rows_rejected is -2"),
    (lambda p: _edit(p, rows_out="4"), "rows_out is '4'"),
    (lambda p: _edit(p, rejects=["x"]), r"rejects\[0\] is 'x'"),
    (lambda p: _edit(p, duration_s="fast"), "duration_s is 'fast'"),
])
def test_a_status_record_that_is_not_one_is_named_with_what_to_do(
        tmp_path: Path, corruption: Any, problem: str) -> None:
    """Read by a resume's worker, by the failure path and by Summarize: each says which file,
    what is wrong and what to do, instead of a JSONDecodeError, KeyError or TypeError."""
    spec, manifest, storage, status = _processed(tmp_path)
    corruption(status)
    named = rf"^{status}: {problem}.*; delete it to process chunk 0 again, then resume the " \
            rf"run \(s3split run --resume {spec.location}\)$"
    with pytest.raises(RunFileCorrupt, match=named):
        process_chunk(spec, 0, 2, storage, JsonlProcessor(), manifest)
    with pytest.raises(RunFileCorrupt, match=named):
        record_failure(spec, 0, "States.Timeout", "", storage, manifest)
    with pytest.raises(RunFileCorrupt, match=named):
        build_report(spec, manifest, storage)


@pytest.mark.parametrize(("document", "problem"), [
    ("", "not a JSON document"),
    ("[" * 100_000 + "]" * 100_000, "not a JSON document .*nested too deeply"),
    ("{}", "not a manifest: no 'source' field"),
    ('{"source": "x", "settings": {}, "header": "", "header_bytes": 0, "bom": false, '
     '"chunks": []}', "not a manifest"),
])
def test_a_manifest_that_is_not_one_is_named(tmp_path: Path, document: str,
                                             problem: str) -> None:
    spec, _, storage = _run(tmp_path)
    Path(spec.layout.manifest).write_text(document)
    with pytest.raises(RunFileCorrupt, match=rf"manifest.json: {problem}.*delete it to split "
                                             "the source again"):
        load_manifest(spec, storage, {})


@pytest.mark.parametrize(("document", "problem"), [
    ("garbage", "not a JSON document"),
    ('{"a":' * 100_000 + "1" + "}" * 100_000, "not a JSON document .*nested too deeply"),
    ('"a string"', "expected a JSON object, found str"),
    ('{"execution": "e", "since": "now"}', "not a run lock .*lease"),
    ('{"lease": 1, "execution": "e", "since": "now"}', "not a run lock"),
    ('{"lease": "l", "execution": "e", "since": "now", "pid": "1"}', "not a run lock"),
])
def test_a_lock_that_is_not_one_refuses_the_location_by_name(
        tmp_path: Path, document: str, problem: str) -> None:
    """Whose lock it is cannot be told, so the location stays refused; the message says to
    delete it once no run uses the location. A run's end leaves such a file alone."""
    location = str(tmp_path / "run")
    lock = tmp_path / "run" / "lock.json"
    lock.parent.mkdir()
    lock.write_text(document)
    with pytest.raises(RunFileCorrupt, match=rf"^{lock}: {problem}.*if no run is using "
                                             rf"{location} .* delete it and start again$"):
        acquire(location, Holder.new("exec-1"), Storage(), lambda holder: False)
    release(location, "exec-1", Storage())
    assert lock.read_text() == document


@pytest.mark.parametrize("damage", ["delete", "truncate", "delete rejects"])
def test_a_success_whose_results_are_gone_is_processed_again(tmp_path: Path,
                                                             damage: str) -> None:
    """A resume delivers every chunk again; a recorded success counts only while the files it
    recorded are there at their recorded sizes. Otherwise the chunk runs again: the report
    never counts rows as ok that no result holds."""
    source = tmp_path / "in.csv"
    source.write_text("id,name\n1,a\n2\n3,c\n4,d\n")  # row 2 rejected: ragged
    spec = RunSpec(run_id="r", source=str(source), location=str(tmp_path / "run"),
                   chunk_size=10_000, lanes=1, wait_seconds=0, processor="jsonl",
                   tolerate="1")
    storage = Storage()
    manifest = split(spec.source, spec.layout.chunks, spec.split_settings, storage).manifest
    assert manifest is not None
    first = process_chunk(spec, 0, 1, storage, JsonlProcessor(), manifest)
    output, rejects = Path(first["output"]), Path(first["rejects_uri"])
    assert (first["output_bytes"], first["rejects_bytes"]) == (
        output.stat().st_size, rejects.stat().st_size)
    assert process_chunk(spec, 0, 2, storage, JsonlProcessor(), manifest) == first
    if damage == "delete":
        output.unlink()
    elif damage == "truncate":
        output.write_text(output.read_text().split("\n", 1)[1])
    else:
        rejects.unlink()
    again = process_chunk(spec, 0, 2, storage, JsonlProcessor(), manifest)
    assert again["attempt"] == 2 and again["state"] == "ok"
    assert len(output.read_text().splitlines()) == 3 and rejects.exists()
    assert build_report(spec, manifest, storage)["rows_ok"] == 3


def test_a_processor_must_have_written_what_it_returns(tmp_path: Path) -> None:
    spec, manifest, storage = _run(tmp_path)

    def process(job: ChunkJob, storage: Storage) -> Any:
        return ProcessResult(ROWS, ROWS, 0, job.output_uri, None, [])

    process.extension = "jsonl"  # type: ignore[attr-defined]
    with pytest.raises(ProcessorResultInvalid, match=r"returned .*part-00000.jsonl as written, "
                                                     r"but there is no such file"):
        process_chunk(spec, 0, 1, storage, process, manifest)


class LookingStorage(Storage):
    """Local storage that notes each file it is asked about (on S3, a request each)."""

    def __init__(self) -> None:
        super().__init__()
        self.looked: list[str] = []

    def stat(self, uri: str) -> Any:
        self.looked.append(uri)
        return super().stat(uri)

    def exists(self, uri: str) -> bool:
        self.looked.append(uri)
        return super().exists(uri)


def test_a_success_asks_about_each_file_the_processor_wrote_once(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,name\n1,a\n2\n3,c\n")  # row 2 rejected: ragged
    spec = RunSpec(run_id="r", source=str(source), location=str(tmp_path / "run"),
                   chunk_size=10_000, lanes=1, wait_seconds=0, processor="jsonl",
                   tolerate="1")
    manifest = split(spec.source, spec.layout.chunks, spec.split_settings, Storage()).manifest
    assert manifest is not None
    storage = LookingStorage()
    status = process_chunk(spec, 0, 1, storage, JsonlProcessor(), manifest)
    assert status["rows_rejected"] == 1
    assert [storage.looked.count(status[name]) for name in ("output", "rejects_uri")] == [1, 1]
    assert (status["output_bytes"], status["rejects_bytes"]) == (
        Path(status["output"]).stat().st_size, Path(status["rejects_uri"]).stat().st_size)
