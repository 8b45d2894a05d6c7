"""Bad input across the whole pipeline, through the state machine and through ``s3split run``.

Each case either processes correctly or fails with a named error whose message says what
and where; none leaves a run that looks complete (report.json only when all is accounted).
Where there is a report, ``assert_accounted`` checks that it counts every source record once
and lists each failed chunk and rejected row where it is in the source.
"""

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from s3split.engine.local import LocalEngine, Outcome
from s3split.pipeline.chunk import lambda_error_message
from tests.support.pipeline import assert_accounted, pipeline_backend

S3SPLIT = str(Path(sys.executable).parent / "s3split")
BIG = b"x" * 5000


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes | None  # None: the source does not exist
    error: str | None = None  # the execution's error, None when the run succeeds
    message: list[str] = field(default_factory=list)  # parts of the error or failure message
    report: dict[str, Any] = field(default_factory=dict)  # report fields expected
    file_name: str = "in.csv"
    rows: int | None = None  # records in the source; None: no report.json may be written
    rejected: list[tuple[int, int]] = field(default_factory=list)  # (chunk, source line)
    failed: list[tuple[int, int]] = field(default_factory=list)  # (chunk, its source line)
    options: dict[str, Any] = field(default_factory=dict)  # execution input fields / CLI options


CASES = [
    Case("missing object", None, "SourceNotFound", ["source not found", "in.csv"]),
    Case("empty object", b"", report={"chunks": 0, "source_rows": 0, "succeeded": True},
         rows=0),
    Case("header only", b"id,name\r\n", report={"chunks": 0, "source_rows": 0}, rows=0),
    Case("unterminated quote", b'id,name\n1,"open\n2,b\n', "UnterminatedQuote",
         ["unterminated quoted field", "byte 10 (line 2)"]),
    Case("ragged rows", b"id,name\n1,a\n2\n3,b,c\n4,d\n", "ToleratedFailuresExceeded",
         ["2 of 4 rows were rejected"],
         report={"source_rows": 4, "rows_ok": 2, "rows_rejected": 2, "succeeded": False},
         rows=4, rejected=[(0, 3), (0, 4)]),
    Case("ragged rows, tolerated", b"id,name\n1,a\n2\n3,b,c\n4,d\n",
         report={"source_rows": 4, "rows_ok": 2, "rows_rejected": 2, "succeeded": True},
         rows=4, rejected=[(0, 3), (0, 4)], options={"tolerate": "50%"}),
    Case("every row rejected", b"id,name\n1\n2\n", "ToleratedFailuresExceeded",
         ["2 of 2 rows were rejected"], report={"rows_ok": 0, "succeeded": False}, rows=2,
         rejected=[(0, 2), (0, 3)], options={"tolerate": "1"}),
    Case("quotes inside unquoted fields (heights)",
         b'name,height\nann,5\'10"\nbob,6\'1"\n"cy, jr",5\'2"\n',
         report={"source_rows": 3, "rows_ok": 3, "succeeded": True}, rows=3),
    Case("text after a closing quote", b'id,v\n1,"a"b\n2,"c"d"e\n',
         report={"source_rows": 2, "rows_ok": 2}, rows=2),
    Case("bare CR line ends (classic Mac)", b"id,v\r1,a\r2,b\r3,c\r",
         report={"source_rows": 3, "rows_ok": 3, "chunks": 1}, rows=3),
    Case("quotes inside unquoted fields, --strict", b'name,height\nann,5\'10"\n',
         "MalformedCsv", ["quote in an unquoted field at byte 20 (line 2)"],
         options={"strict": True}),
    Case("invalid UTF-8", b"id,name\n1,caf\xe9\n", "SourceNotUtf8",
         ["not UTF-8: byte 13 (line 2) is 0xE9", "pass --encoding", "cp1252"]),
    Case("binary file", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "SourceNotUtf8",
         ["not UTF-8: byte 0 (line 1) is 0x89"]),
    Case("Windows-1252, --encoding cp1252", b"id,name\n1,caf\xe9\n",
         report={"source_rows": 1, "rows_ok": 1, "succeeded": True}, rows=1,
         options={"encoding": "cp1252"}),
    Case("UTF-16 LE with BOM", b"\xff\xfe" + "id\tname\r\n1\tJ\u00fcrgen\r\n2\tb\r\n".encode(
        "utf-16-le"), report={"source_rows": 2, "rows_ok": 2, "succeeded": True}, rows=2),
    Case("undecodable in the given encoding", b"id,name\n1,\x81\n", "SourceUndecodable",
         ["not cp1252: 0x81 at source byte 10 (line 2)"], options={"encoding": "cp1252"}),
    Case("tab-separated, no delimiter", b"id\tname\n1\ta,b\n2\tc\n",
         report={"source_rows": 2, "rows_ok": 2, "rows_rejected": 0}, rows=2),
    Case("two plausible delimiters", b"a,b;c\n1,2;3\n", "DelimiterUnclear",
         ["both ',' (2 fields) and ';' (2 fields)", "pass --delimiter ',' or --delimiter ';'"]),
    Case("Excel sep= line", b"sep=;\nid;v\n1;2,5\n2;3\n",
         report={"source_rows": 2, "rows_ok": 2, "rows_rejected": 0}, rows=2),
    Case("sep= line and another --delimiter", b"sep=;\nid;v\n1;2,5\n", "InvalidOption",
         ["sep=; line sets the delimiter ';', but --delimiter ',' was given"],
         options={"delimiter": ","}),
    Case("preamble lines", b"Title\nnote\n\nid,v\n1,2\n2,3\n3,4\n", "DelimiterUnclear",
         ["the first 3 lines look like a preamble", "pass --skip-lines 3"]),
    Case("preamble lines, --skip-lines 3", b"Title\nnote\n\nid,v\n1,2\n2,3\n3,4\n",
         report={"source_rows": 3, "rows_ok": 3, "rows_rejected": 0}, rows=3,
         options={"skip_lines": 3}),
    Case("record larger than the chunk size", b"id,blob\n1,a\n2," + BIG + b"\n3,c\n",
         report={"source_rows": 3, "rows_ok": 3, "chunks": 2}, rows=3),
    Case("spaces and unicode in the name", b"id\n1\n2\n", report={"rows_ok": 2}, rows=2,
         file_name="zażółć gęślą.csv"),
]


def check(case: Case, outcome: Outcome, report: dict[str, Any] | None) -> None:
    if case.error is None:
        assert outcome.succeeded, outcome
    else:
        assert outcome.error == case.error, outcome
    failures = " ".join(f["message"] for f in report["failed"]) if report else ""
    text = lambda_error_message(outcome.cause or "") + " " + failures
    for part in case.message:
        assert part in text, (part, text)
    if case.report:
        assert report is not None
        assert {k: report[k] for k in case.report} == case.report


def check_accounted(case: Case, location: Path) -> None:
    """report.json exactly when the case expects one, counting and listing every record."""
    report = _report(location)
    assert (report is None) == (case.rows is None), report
    if report is None or case.rows is None:
        return
    manifest = json.loads((location / "chunks" / "manifest.json").read_text())
    assert_accounted(report, case.rows, manifest)
    assert [(r["chunk"], r["line"]) for r in report["rejected"]] == case.rejected
    assert [(f["chunk"], f["source_line"]) for f in report["failed"]] == case.failed


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEngine]:
    with pipeline_backend("local", tmp_path_factory.mktemp("work"), {}) as (started, _, _):
        yield started


def _write(case: Case, folder: Path) -> Path:
    folder.mkdir(parents=True)
    source = folder / case.file_name
    if case.data is not None:
        source.write_bytes(case.data)
    return source


def _report(location: Path) -> dict[str, Any] | None:
    path = location / "report.json"
    return json.loads(path.read_text()) if path.exists() else None


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_through_the_state_machine(case: Case, engine: LocalEngine, tmp_path: Path) -> None:
    source = _write(case, tmp_path / "in")
    location = tmp_path / "run"
    outcome = engine.wait(engine.start({"source": str(source), "run": str(location),
                                        "chunk_size": 100, **case.options}), timeout_s=120)
    check(case, outcome, _report(location))
    check_accounted(case, location)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_through_the_cli(case: Case, tmp_path: Path) -> None:
    source = _write(case, tmp_path / "in")
    flags = [f"--{name.replace('_', '-')}" if value is True
             else f"--{name.replace('_', '-')}={value}" for name, value in case.options.items()]
    done = subprocess.run([S3SPLIT, "run", str(source), "--out", "run", "--chunk-size", "100",
                           *flags], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    report = _report(tmp_path / "run")
    assert done.returncode == (0 if case.error is None else 1), done.stderr
    shown = done.stdout + done.stderr
    if case.error:
        assert case.error in shown
    for part in case.message:
        assert part in shown.replace("\n", " ") or (report and part in json.dumps(report,
                                                                                  ensure_ascii=False))
    check_accounted(case, tmp_path / "run")


def test_bad_inputs_the_cli_cannot_express(engine: LocalEngine) -> None:
    """A bucket outside the deployment and a malformed input: state machine only."""
    refused = engine.wait(engine.start({"source": "s3://not-ours/x.csv"}), timeout_s=60)
    assert refused.error == "BucketNotAllowed" and "not-ours" in (refused.cause or "")
    malformed = engine.wait(engine.start({"source": 42}), timeout_s=60)
    assert malformed.error == "InvalidInput" and "source" in (malformed.cause or "")


def test_a_source_among_the_runs_own_chunks_is_refused(engine: LocalEngine,
                                                       tmp_path: Path) -> None:
    """Plan refuses a source inside its run, such as one the split would overwrite:
    <run>/chunks/part-00000.csv."""
    location = tmp_path / "run"
    source = location / "chunks" / "part-00000.csv"
    source.parent.mkdir(parents=True)
    data = b"id,name\n" + b"".join(b"%d,n\n" % i for i in range(50))
    source.write_bytes(data)
    outcome = engine.wait(engine.start({"source": str(source), "run": str(location),
                                        "chunk_size": 100}), timeout_s=120)
    assert outcome.error == "SourceInDestination", outcome
    assert f"source {source} is inside the run location {location}: " \
        in lambda_error_message(outcome.cause or "")
    assert source.read_bytes() == data
    assert sorted(p.name for p in source.parent.iterdir()) == ["part-00000.csv"]
    assert _report(location) is None and not (location / "lock.json").exists()
