"""The range split's steps (s3split.pipeline.range_tasks) called in the order the state machine
calls them, on local files and on an in-process moto S3: the chunks and manifest are the
sequential split's, failures are the sequential split's errors at the same byte and line, a
recorded item failure comes back under its own name, a source that changes fails
``SourceChanged``, and every step can run again. (Through the real ASL on the engine:
tests/integration/test_pipeline_ranges.py.)"""

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from s3split.deployment import Deployment
from s3split.errors import (
    InvalidInput,
    MalformedCsv,
    SourceChanged,
    SourceNotUtf8,
    SplitTaskFailed,
    UnterminatedQuote,
)
from s3split.holders import Holder
from s3split.pipeline import range_tasks
from s3split.pipeline.spec import RunSpec
from s3split.pipeline.steps import in_ranges, plan, split_step
from s3split.split.range_steps import PinnedReader, Staged
from s3split.split.s3_assembly import PinnedSource
from s3split.split.splitter import split
from s3split.storage import Storage, join
from tests.support.aws import mocked_s3

HEADER = b'id,"na\r\nme",note\r\n'
DEPLOYMENT = Deployment(allow_local=True, range_split_from=1, range_size=700,
                        range_concurrency=3, assemble_chunks=2)


def source_bytes(rows: int = 60, bad: int | None = None, open_at_end: bool = False) -> bytes:
    """Records with quoted commas, doubled quotes, CRLF inside quotes; ``bad``: a record
    with a quote in an unquoted field (refused by ``--strict``)."""
    lines = [HEADER]
    for i in range(rows):
        note = 'say 5\'10" tall' if i == bad else f'"a, ""quoted""\r\nnote {i}"'
        lines.append(f'{i},"name {i}",{note}\r\n'.encode())
    if open_at_end:
        lines.append(b'60,"never closed,x\r\n')
    return b"".join(lines)


RANGES = math.ceil((len(source_bytes()) - len(HEADER)) / DEPLOYMENT.range_size)


def spec_for(source: str, location: str, **settings: Any) -> RunSpec:
    return RunSpec(run_id="r1", source=source, location=location, chunk_size=300, lanes=2,
                   wait_seconds=0, processor="jsonl", tolerate="0", **settings)


def run_steps(spec: RunSpec, storage: Storage, deployment: Deployment = DEPLOYMENT,
              ) -> dict[str, Any]:
    """PlanRanges, every ScanRange (last first), Combine, every AssembleBatch, FinishSplit."""
    planned = range_tasks.plan_ranges(spec, deployment, storage)
    if planned["done"]:
        return planned
    for index in reversed(planned["items"]):
        assert range_tasks.scan_one(spec, index, storage) == {}
    combined = range_tasks.combine_ranges(spec, deployment, storage)
    for index in combined["batches"]:
        assert range_tasks.assemble_batch(spec, index, storage) == {}
    return range_tasks.finish_split(spec, deployment, storage)


def chunk_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("part-*.csv"))}


@pytest.fixture
def local(tmp_path: Path) -> tuple[RunSpec, Path]:
    source = tmp_path / "in.csv"
    source.write_bytes(source_bytes())
    return spec_for(str(source), str(tmp_path / "run")), source


def sequential(spec: RunSpec, tmp_path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    dest = tmp_path / "sequential"
    manifest = split(spec.source, str(dest), spec.split_settings, Storage()).manifest
    assert manifest is not None
    return manifest.to_dict(), chunk_files(dest)


# -- the choice ---------------------------------------------------------------------------------


def test_plan_chooses_the_range_split_for_big_uncompressed_sources_by_size(
        tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(source_bytes())
    size = source.stat().st_size
    at = Deployment(allow_local=True, range_split_from=size)
    above = Deployment(allow_local=True, range_split_from=size + 1)
    spec = spec_for(str(source), str(tmp_path / "run"))
    assert in_ranges(spec, at, Storage()) and not in_ranges(spec, above, Storage())
    assert not in_ranges(spec_for(str(source), "r", chunk_rows=5), at, Storage())
    gz = tmp_path / "in.csv.gz"
    gz.write_bytes(b"\x1f\x8b" + b"x" * size)
    assert not in_ranges(spec_for(str(gz), "r"), at, Storage())
    # A missing source takes the sequential Split, which fails naming it (and releases the lock).
    assert not in_ranges(spec_for(str(tmp_path / "missing.csv"), "r"), at, Storage())
    planned = plan({"source": str(source), "run": str(tmp_path / "run")}, "exec-1",
                   Deployment(work_location=str(tmp_path), allow_local=True,
                              run_from_input=True, range_split_from=size, engine_pid=os.getpid()),
                   Storage(), lambda holder: isinstance(holder, Holder))
    assert planned["split"] == {"done": False, "token": None, "ranges": True}


# -- the same split as the single pass ----------------------------------------------------------


def test_the_steps_give_the_sequential_chunks_manifest_and_lanes(
        local: tuple[RunSpec, Path], tmp_path: Path) -> None:
    spec, _ = local
    expected, expected_chunks = sequential(spec, tmp_path)
    done = run_steps(spec, Storage())
    manifest = json.loads(Path(spec.layout.manifest).read_text())
    assembly = manifest.pop("assembly")
    for document in (manifest, expected):
        for entry in document["chunks"]:
            entry["uri"] = os.path.basename(entry["uri"])
    assert manifest == expected and expected["count"] > 4
    assert chunk_files(Path(spec.layout.chunks)) == expected_chunks
    assert RANGES >= 4
    assert assembly == {"scan": "ranges", "ranges": RANGES, "batches": (expected["count"] + 1) // 2,
                        "chunks": ["read_write"] * expected["count"]}
    # What the lanes get is what a sequential Split hands them (it reuses that manifest).
    assert done == split_step(spec, None, DEPLOYMENT, Storage(), lambda: False)
    assert not os.path.exists(spec.layout.ranges)  # the scratch is gone once the manifest is
    assert set(os.listdir(spec.layout.chunks)) == {*expected_chunks, "manifest.json"}


def test_a_run_with_its_manifest_in_place_reuses_it(local: tuple[RunSpec, Path]) -> None:
    spec, _ = local
    first = run_steps(spec, Storage())
    stamp = os.stat(spec.layout.manifest).st_mtime_ns
    assert range_tasks.plan_ranges(spec, DEPLOYMENT, Storage()) == first
    assert os.stat(spec.layout.manifest).st_mtime_ns == stamp
    # FinishSplit retried after it finished (its answer was lost): the same answer.
    assert range_tasks.finish_split(spec, DEPLOYMENT, Storage()) == first


def test_every_step_run_again_writes_the_same_bytes(local: tuple[RunSpec, Path]) -> None:
    spec, _ = local
    storage = Storage()
    planned = range_tasks.plan_ranges(spec, DEPLOYMENT, storage)
    for index in planned["items"]:
        range_tasks.scan_one(spec, index, storage)
    before = {p.name: p.read_bytes() for p in Path(spec.layout.ranges).iterdir()}
    for index in planned["items"]:
        range_tasks.scan_one(spec, index, storage)
    assert {p.name: p.read_bytes() for p in Path(spec.layout.ranges).iterdir()} == before
    combined = range_tasks.combine_ranges(spec, DEPLOYMENT, storage)
    assert range_tasks.combine_ranges(spec, DEPLOYMENT, storage) == combined
    for index in combined["batches"]:
        range_tasks.assemble_batch(spec, index, storage)
    chunks = chunk_files(Path(spec.layout.chunks))
    range_tasks.assemble_batch(spec, 0, storage)
    assert chunk_files(Path(spec.layout.chunks)) == chunks
    range_tasks.finish_split(spec, DEPLOYMENT, storage)
    assert chunk_files(Path(spec.layout.chunks)) == chunks


def test_a_new_plan_ignores_and_clears_what_an_earlier_one_left(
        local: tuple[RunSpec, Path]) -> None:
    spec, _ = local
    storage = Storage()
    first = range_tasks.plan_ranges(spec, DEPLOYMENT, storage)
    range_tasks.scan_one(spec, 0, storage)
    old = set(os.listdir(spec.layout.ranges))
    range_tasks.plan_ranges(spec, DEPLOYMENT, storage)  # PlanRanges retried, or a new run
    assert not old & set(os.listdir(spec.layout.ranges)) - {"plan.json"}
    with pytest.raises(SplitTaskFailed, match=r"range scan 0 of .* left neither its result"):
        range_tasks.combine_ranges(spec, DEPLOYMENT, storage)
    assert first["items"] == list(range(RANGES))


# -- errors -------------------------------------------------------------------------------------


def test_a_strict_error_in_a_middle_range_is_the_single_pass_error(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(source_bytes(rows=200, bad=150))  # past the header's first 4 KiB scan
    spec = spec_for(str(source), str(tmp_path / "run"), strict=True)
    single, staged = staged_error(spec, tmp_path, MalformedCsv)
    assert staged == single
    at = int(single.split("at byte ")[1].split()[0])
    assert DEPLOYMENT.range_size * 2 < at < source.stat().st_size - DEPLOYMENT.range_size * 2


def staged_error(spec: RunSpec, tmp_path: Path, kind: type[Exception]) -> tuple[str, str]:
    """The single pass's error and the staged steps' (each scan through its JSON)."""
    with pytest.raises(kind) as single:
        split(spec.source, str(tmp_path / "sequential"), spec.split_settings, Storage())
    planned = range_tasks.plan_ranges(spec, DEPLOYMENT, Storage())
    for index in planned["items"]:
        range_tasks.scan_one(spec, index, Storage())
    with pytest.raises(kind) as staged:
        range_tasks.combine_ranges(spec, DEPLOYMENT, Storage())
    assert not os.path.exists(spec.layout.manifest)
    return str(single.value), str(staged.value)


@pytest.mark.parametrize(("bad", "strict_at", "kind"), [
    (150, None, SourceNotUtf8),  # in a middle range
    (150, 151, SourceNotUtf8),  # before a --strict error: the first in the source wins
    (151, 150, MalformedCsv),  # after one
    (59, None, SourceNotUtf8),  # a character the source's end cuts short
])
def test_invalid_utf8_in_a_range_is_the_single_pass_error(
        tmp_path: Path, bad: int, strict_at: int | None, kind: type[Exception]) -> None:
    data = source_bytes(rows=200, bad=strict_at)
    cut = data.index(f"\r\n{bad},".encode()) + 2
    data = data[:cut] + b"\xe9" + data[cut:] if bad != 59 else data + b"9,\xe6\x9d"
    source = tmp_path / "in.csv"
    source.write_bytes(data)
    spec = spec_for(str(source), str(tmp_path / "run"), strict=strict_at is not None)
    single, staged = staged_error(spec, tmp_path, kind)
    assert staged == single
    if kind is SourceNotUtf8:
        assert "--encoding" in single
    if kind is SourceNotUtf8 and bad != 59:
        assert f"byte {cut} (line " in single and cut > DEPLOYMENT.range_size * 2


def test_a_transcoded_source_takes_the_sequential_split(tmp_path: Path) -> None:
    big = Deployment(allow_local=True, range_split_from=1)
    utf16 = tmp_path / "u.csv"
    utf16.write_bytes(b"\xff\xfe" + source_bytes().decode().encode("utf-16-le"))
    assert not in_ranges(spec_for(str(utf16), "r"), big, Storage())
    plain = tmp_path / "in.csv"
    plain.write_bytes(source_bytes())
    assert in_ranges(spec_for(str(plain), "r"), big, Storage())
    assert in_ranges(spec_for(str(plain), "r", encoding="utf-8"), big, Storage())
    assert not in_ranges(spec_for(str(plain), "r", encoding="cp1252"), big, Storage())


def test_a_detected_delimiter_sep_line_and_preamble_give_the_sequential_manifest(
        tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"Report\r\nsep=;\r\n" + source_bytes().replace(b",", b";"))
    spec = spec_for(str(source), str(tmp_path / "run"), skip_lines=1)
    expected, expected_chunks = sequential(spec, tmp_path)
    run_steps(spec, Storage())
    manifest = json.loads(Path(spec.layout.manifest).read_text())
    manifest.pop("assembly")
    for document in (manifest, expected):
        for entry in document["chunks"]:
            entry["uri"] = os.path.basename(entry["uri"])
    assert manifest == expected and expected["count"] > 4
    assert manifest["format"]["delimiter"] == ";" and manifest["format"]["sep_line"]
    assert manifest["chunks"][0]["source_line"] == 5  # Report, sep=;, a 2-line header
    assert chunk_files(Path(spec.layout.chunks)) == expected_chunks


def test_an_unterminated_quote_is_the_single_pass_error(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(source_bytes(open_at_end=True))
    spec = spec_for(str(source), str(tmp_path / "run"))
    with pytest.raises(UnterminatedQuote) as single:
        split(spec.source, str(tmp_path / "sequential"), spec.split_settings, Storage())
    planned = range_tasks.plan_ranges(spec, DEPLOYMENT, Storage())
    for index in planned["items"]:
        range_tasks.scan_one(spec, index, Storage())
    with pytest.raises(UnterminatedQuote) as staged:
        range_tasks.combine_ranges(spec, DEPLOYMENT, Storage())
    assert str(staged.value) == str(single.value)


@pytest.mark.parametrize(("error", "cause", "raised", "message"), [
    ("SourceChanged", json.dumps({"errorMessage": "in.csv changed during the split",
                                  "errorType": "SourceChanged", "stackTrace": []}),
     SourceChanged, "^in.csv changed during the split$"),
    ("Lambda.ServiceException", "Service unavailable (Service: AWSLambda; Status Code: 500)",
     SplitTaskFailed, r"range scan 2 of .*in.csv failed: Lambda.ServiceException: Service "),
    ("TransientError", json.dumps({"errorMessage": "GetObject: SlowDown"}),
     SplitTaskFailed, "range scan 2 .* failed: TransientError: GetObject: SlowDown$"),
    ("__class__", "x", SplitTaskFailed, "failed: __class__: x"),
    ("Exception", "x", SplitTaskFailed, "failed: Exception: x"),  # not one of ours: named so
])
def test_a_range_that_failed_for_good_fails_combine_with_its_error(
        local: tuple[RunSpec, Path], error: str, cause: str, raised: type[Exception],
        message: str) -> None:
    spec, _ = local
    planned = range_tasks.plan_ranges(spec, DEPLOYMENT, Storage())
    for index in planned["items"]:
        if index != 2:
            range_tasks.scan_one(spec, index, Storage())
    range_tasks.record_failure(spec, "scan", 2, {"Error": error, "Cause": cause}, Storage())
    with pytest.raises(raised, match=message):
        range_tasks.combine_ranges(spec, DEPLOYMENT, Storage())


def test_an_assembly_batch_that_failed_for_good_fails_finish_with_its_error(
        local: tuple[RunSpec, Path]) -> None:
    spec, _ = local
    planned = range_tasks.plan_ranges(spec, DEPLOYMENT, Storage())
    for index in planned["items"]:
        range_tasks.scan_one(spec, index, Storage())
    combined = range_tasks.combine_ranges(spec, DEPLOYMENT, Storage())
    for index in combined["batches"][1:]:
        range_tasks.assemble_batch(spec, index, Storage())
    range_tasks.record_failure(spec, "assemble", 0, {"Error": "DestinationUnwritable",
                                                "Cause": json.dumps({"errorMessage": "full"})},
                          Storage())
    with pytest.raises(Exception, match=r"^full$") as failed:
        range_tasks.finish_split(spec, DEPLOYMENT, Storage())
    assert type(failed.value).__name__ == "DestinationUnwritable"
    assert not os.path.exists(spec.layout.manifest)


def rewrite(path: Path) -> None:
    path.write_bytes(source_bytes().replace(b"note", b"NOTE"))  # same size


@pytest.mark.parametrize("when", ["scan", "combine", "assemble", "finish"])
def test_a_local_source_rewritten_after_plan_ranges_fails_source_changed(
        local: tuple[RunSpec, Path], when: str) -> None:
    spec, source = local
    storage = Storage()
    planned = range_tasks.plan_ranges(spec, DEPLOYMENT, storage)
    steps = [("scan", lambda: [range_tasks.scan_one(spec, i, storage) for i in planned["items"]]),
             ("combine", lambda: range_tasks.combine_ranges(spec, DEPLOYMENT, storage)),
             ("assemble", lambda: range_tasks.assemble_batch(spec, 0, storage)),
             ("finish", lambda: range_tasks.finish_split(spec, DEPLOYMENT, storage))]
    for name, step in steps:
        if name == when:
            stat = source.stat()
            rewrite(source)
            os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
            with pytest.raises(SourceChanged, match=r"in\.csv changed"):
                step()
            break
        if name == "assemble":
            for index in range(1, len(planned["items"])):
                range_tasks.assemble_batch(spec, index, storage)
        step()
    assert not os.path.exists(spec.layout.manifest)


def test_a_plan_of_another_source_or_destination_is_refused(
        local: tuple[RunSpec, Path], tmp_path: Path) -> None:
    spec, _ = local
    range_tasks.plan_ranges(spec, DEPLOYMENT, Storage())
    document = json.loads(Path(spec.layout.ranges, "plan.json").read_text())
    with pytest.raises(InvalidInput, match=r"not of /elsewhere\.csv"):
        Staged.from_dict(document, "/elsewhere.csv", spec.layout.chunks)
    with pytest.raises(InvalidInput, match="not of"):
        Staged.from_dict(document, spec.source, str(tmp_path / "other"))
    with pytest.raises(InvalidInput, match=r"plan id '\.\./x'"):
        Staged.from_dict(document | {"id": "../x"}, spec.source, spec.layout.chunks)
    cuts = document["plan"]["cuts"]
    for bad in ([], [cuts[1], cuts[0]], [cuts[0] - 1, *cuts[1:]], [*cuts, 10**9]):
        with pytest.raises(InvalidInput, match="ranges do not cut"):
            Staged.from_dict(document | {"plan": document["plan"] | {"cuts": bad}},
                             spec.source, spec.layout.chunks)
    with pytest.raises(InvalidInput, match=f"range {RANGES} of .* it has ranges 0 to "
                                           f"{RANGES - 1}"):
        range_tasks.scan_one(spec, RANGES, Storage())


# -- S3 -----------------------------------------------------------------------------------------


def test_s3_to_s3_gives_the_sequential_chunks_copied_by_s3(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    big = b"".join([HEADER] + [b'%d,"%s",x\r\n' % (i, b"y" * 2000) for i in range(4000)])
    with mocked_s3(monkeypatch, "data") as s3:
        s3.put_object(Bucket="data", Key="in/big.csv", Body=big)
        storage = Storage(s3)
        spec = RunSpec(run_id="r1", source="s3://data/in/big.csv", location="s3://data/runs/big",
                       chunk_size=6 * 1024 * 1024, lanes=2, wait_seconds=0,
                       processor="jsonl", tolerate="0")
        deployment = Deployment(range_split_from=1, range_size=2 * 1024 * 1024,
                                assemble_chunks=1)
        expected = split(spec.source, "s3://data/sequential", spec.split_settings, storage)
        assert expected.manifest is not None
        run_steps(spec, storage, deployment)
        manifest = storage.read_json(spec.layout.manifest)
        assert manifest["assembly"]["chunks"] == [  # S3 needs 5 MiB parts to copy
            "copy" if chunk["bytes"] > 5 * 1024 * 1024 else "upload"
            for chunk in manifest["chunks"]]
        assert manifest["assembly"]["chunks"][:1] == ["copy"]
        assert manifest["assembly"]["ranges"] == math.ceil((len(big) - len(HEADER)) /
                                                           deployment.range_size) >= 3
        for ours, theirs in zip(manifest["chunks"], expected.manifest.to_dict()["chunks"],
                                strict=True):
            assert {**ours, "uri": ""} == {**theirs, "uri": ""}
            assert s3.get_object(Bucket="data", Key=ours["uri"][len("s3://data/"):])[
                "Body"].read() == storage.open_read(theirs["uri"]).read()
        assert storage.list(spec.layout.ranges) == []


def test_an_s3_source_overwritten_after_plan_ranges_fails_source_changed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with mocked_s3(monkeypatch, "data") as s3:
        s3.put_object(Bucket="data", Key="in.csv", Body=source_bytes())
        storage = Storage(s3)
        spec = spec_for("s3://data/in.csv", "s3://data/runs/in.csv")
        planned = range_tasks.plan_ranges(spec, DEPLOYMENT, storage)
        for index in planned["items"]:
            range_tasks.scan_one(spec, index, storage)
        range_tasks.combine_ranges(spec, DEPLOYMENT, storage)
        s3.put_object(Bucket="data", Key="in.csv", Body=source_bytes().replace(b"a", b"b"))
        with pytest.raises(SourceChanged, match=r"s3://data/in\.csv changed"):
            range_tasks.assemble_batch(spec, 0, storage)
        with pytest.raises(SourceChanged, match=r"s3://data/in\.csv changed"):
            range_tasks.scan_one(spec, 0, storage)


def test_the_pinned_reader_reads_ahead_and_only_the_pinned_version(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    with mocked_s3(monkeypatch, "data") as s3:
        etag = s3.put_object(Bucket="data", Key="k", Body=data)["ETag"]
        calls: list[str] = []
        get = s3.get_object

        def counted(**kwargs: Any) -> Any:
            calls.append(kwargs["Range"])
            return get(**kwargs)

        monkeypatch.setattr(s3, "get_object", counted)
        read = PinnedReader(s3, PinnedSource("data", "k", etag), len(data), readahead=400_000)
        assert read(10, 300_000) == data[10:300_010]
        assert read(300_000, 100_000) == data[300_000:400_000]  # from the read-ahead
        assert read(1_000_000, 300_000) == data[1_000_000:]  # clipped at the end
        assert read(5, 3) == data[5:8]  # a small read: just those bytes
        assert calls == ["bytes=10-400009", "bytes=1000000-1048575", "bytes=5-7"]
        s3.put_object(Bucket="data", Key="k", Body=data[::-1])
        with pytest.raises(SourceChanged, match="s3://data/k changed"):
            read(0, 300_000)
        assert join("s3://data", "k") == "s3://data/k"


@pytest.mark.parametrize("data", [HEADER, HEADER[:-2], HEADER + b"1,a,b"])
def test_a_header_only_or_one_record_source_gives_the_sequential_manifest(
        tmp_path: Path, data: bytes) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(data)
    spec = spec_for(str(source), str(tmp_path / "run"))
    expected, expected_chunks = sequential(spec, tmp_path)
    done = run_steps(spec, Storage())
    manifest = json.loads(Path(spec.layout.manifest).read_text())
    manifest.pop("assembly")
    for document in (manifest, expected):
        for entry in document["chunks"]:
            entry["uri"] = os.path.basename(entry["uri"])
    assert manifest == expected and done["count"] == len(expected_chunks)
    assert chunk_files(Path(spec.layout.chunks)) == expected_chunks


def test_only_the_steps_that_write_chunks_read_the_header(local: tuple[RunSpec, Path]) -> None:
    """A header may be MiBs: the plan every range task reads does not carry it."""
    spec, _ = local
    planned = range_tasks.plan_ranges(spec, DEPLOYMENT, Storage())
    plan = json.loads(Path(spec.layout.ranges, "plan.json").read_text())
    assert "header" not in plan and plan["header_bytes"] == len(HEADER)
    (header,) = Path(spec.layout.ranges).glob("header.*.bin")
    assert header.read_bytes() == HEADER
    header.write_bytes(HEADER + b"x")  # (a header that is not the plan's)
    for index in planned["items"]:
        range_tasks.scan_one(spec, index, Storage())
    range_tasks.combine_ranges(spec, DEPLOYMENT, Storage())
    with pytest.raises(InvalidInput, match=f"its header has {len(HEADER) + 1} bytes, not "
                                           f"{len(HEADER)}"):
        range_tasks.assemble_batch(spec, 0, Storage())
