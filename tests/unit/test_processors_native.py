"""The built-in processors on DuckDB: the same outputs as the Python reader's, which path each
shape of chunk takes, and the sandbox a query runs in."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3split.errors import ChunkInvalid, ChunkMisaligned, DestinationUnwritable, InvalidOption
from s3split.processors import native
from s3split.processors.base import ChunkJob, ProcessResult
from s3split.processors.registry import get_processor
from s3split.storage import Storage
from tests.support.fuzz import SETTINGS, Source, any_sources, ragged_sources, unterminated
from tests.support.jobs import make_job

JSONL: dict[str, str] = {}  # the environment of a run of jsonl: no setting
CORPUS = st.one_of(any_sources, ragged_sources())


def records(data: bytes, delimiter: str, quotechar: str) -> list[list[str]]:
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
    return list(csv.reader(text, delimiter=delimiter, quotechar=quotechar))


def chunk_job(tmp: Path, data: bytes, header: bool = True, delimiter: str = ",",
              quotechar: str = '"') -> ChunkJob:
    count = len(records(data, delimiter, quotechar)) - (1 if header and data else 0)
    job = make_job(tmp, data, has_header=header, delimiter=delimiter, rows=max(count, 0))
    return replace(job, quotechar=quotechar)


def sql_config(query: str, output: str = "jsonl") -> dict[str, str]:
    return {"S3SPLIT_SQL": query, "S3SPLIT_SQL_FORMAT": output}


@contextmanager
def native_off(monkeypatch: pytest.MonkeyPatch, off: bool) -> Iterator[None]:
    with monkeypatch.context() as patch:
        if off:
            patch.setenv(native.NATIVE_ENV, "0")
        yield


def outcome(name: str, job: ChunkJob, config: dict[str, str], tag: str
            ) -> tuple[Any, ...]:
    """What a processor made of ``job``: its counts, output records and rejects (or its error)."""
    job = replace(job, output_uri=f"{job.output_uri}.{tag}", rejects_uri=f"{job.rejects_uri}.{tag}")
    try:
        result = get_processor(name, config)(job, Storage())
    except Exception as exc:
        return (type(exc).__name__, str(exc))
    out = Path(job.output_uri).read_text(encoding="utf-8").splitlines()
    rejects = Path(job.rejects_uri)
    return (result.rows_in, result.rows_out, result.rows_rejected, result.rejects,
            [json.loads(line) for line in out],
            rejects.read_text(encoding="utf-8") if rejects.exists() else None)


def both_paths(monkeypatch: pytest.MonkeyPatch, name: str, job: ChunkJob,
               config: dict[str, str] = JSONL) -> tuple[Any, Any]:
    with native_off(monkeypatch, True):
        python = outcome(name, job, config, "python")
    with native_off(monkeypatch, False):
        duck = outcome(name, job, config, "duck")
    return python, duck


def path_of(job: ChunkJob) -> str:
    """``duckdb``, or the reason the chunk is read by the Python reader."""
    try:
        with native.native_chunk(job, Storage()) as chunk:
            native.checked_count(job, chunk.count())
    except native.Fallback as exc:
        return str(exc)
    return "duckdb"


def assert_both_paths_agree_on(source: Source, name: str, config: dict[str, str]) -> None:
    if unterminated(source):
        return  # the splitter refuses these: no chunk ever holds one
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        job = chunk_job(Path(tmp), source.data, source.header, source.delimiter,
                        source.quotechar)
        python, duck = both_paths(patch, name, job, config)
        assert duck == python


@settings(SETTINGS, max_examples=200)
@given(source=CORPUS)
def test_jsonl_on_duckdb_writes_what_the_python_reader_writes(source: Source) -> None:
    assert_both_paths_agree_on(source, "jsonl", JSONL)


@settings(SETTINGS, max_examples=100)
@given(source=CORPUS)
def test_sql_on_duckdb_writes_what_the_python_reader_writes_on_the_fuzz_corpus(
        source: Source) -> None:
    assert_both_paths_agree_on(source, "sql", sql_config("SELECT * FROM chunk"))


TEXT_SCHEMA = {"S3SPLIT_SCHEMA": json.dumps({"columns": {"zz": {"type": "str"}},
                                               "extra_columns": True})}


@settings(SETTINGS, max_examples=150)
@given(source=CORPUS)
def test_validate_on_duckdb_writes_what_the_python_reader_writes_on_the_fuzz_corpus(
        source: Source) -> None:
    assert_both_paths_agree_on(source, "validate", TEXT_SCHEMA)


REFUSED = "DuckDB: Invalid Input Error: CSV Error on Line: 2"
EXPORT = (b'id,contact,note\r\n1,"Okafor, Farid",plain\r\n2,"M\xc3\xbcller, Zo\xc3\xab",'
          b'"two\r\nlines"\r\n3,"Silva, In\xc3\xaas",\r\n')


SHAPES = [
    (EXPORT, "duckdb"),
    (EXPORT.replace(b"\r\n", b"\n"), "duckdb"),
    (b"a,b\n1,2\n", "duckdb"),
    (b"a,b\n1,x\"y\n", "a quote inside an unquoted field or text after a closing quote"),
    (b"a,b\n1,\"x\"y\n", "a quote inside an unquoted field or text after a closing quote"),
    (b"a,b\r1,2\r", "a CR not followed by LF"),
    (b"a,b\r\n1,2\n", "LF and CRLF line endings mixed"),
    (b"a,b\n1,\x002\n", "a NUL byte"),
    (b"A,a\n1,2\n", "header names that differ only in case"),
    (b"a,b\n1,2\n\n3,4\n", "DuckDB read 2 records, the manifest 3 (it skips a blank line, an "
                          "empty record to the Python reader)"),
    (b"a,b\n1,2,\n", f"{REFUSED}: Expected Number of Columns: 2 Found: 3"),
    (b"a,b\r\n1,2,\r\n", f"{REFUSED}: Expected Number of Columns: 2 Found: 3"),
    (b"a,b\n1,2,", f"{REFUSED}: Expected Number of Columns: 2 Found: 3"),
    (b'a,b\n1,2,""\n', f"{REFUSED}: Expected Number of Columns: 2 Found: 3"),
    (b"a,b\n1,2\n3,4,\n5,6\n", "DuckDB: Invalid Input Error: CSV Error on Line: 3: Expected "
                             "Number of Columns: 2 Found: 3"),
    (b"a,b\n1\n", f"{REFUSED}: Expected Number of Columns: 2 Found: 1"),
    (b"a,b,c\n1,2,\n,,\n", "duckdb"),
    (b'a,b\n"",""\n', "duckdb"),
    (b"a,b\n1,2\r", "a CR not followed by LF"),
    (b'a,b\n1,"2\r"\n', "a CR not followed by LF"),
    (b'a,b\r\n1,"2\r\n3"\r\n', "duckdb"),
    (b"a\n1\n", "1 column(s): DuckDB takes 2 to 2000 here (to it a blank line is a record "
                "of one column; a query of very many columns binds slowly)"),
]


@pytest.mark.parametrize(("data", "expected"), SHAPES)
def test_which_reader_each_shape_of_chunk_takes(tmp_path: Path, data: bytes, expected: str,
                                                ) -> None:
    assert path_of(chunk_job(tmp_path, data)) == expected


@pytest.mark.parametrize("data", [data for data, _ in SHAPES])
def test_each_shape_of_chunk_writes_what_the_python_reader_writes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data: bytes) -> None:
    python, duck = both_paths(monkeypatch, "jsonl", chunk_job(tmp_path, data))
    assert duck == python


@settings(SETTINGS, max_examples=200)
@given(source=CORPUS, block=st.integers(1, 9))
def test_the_shape_checks_find_a_problem_in_blocks_of_any_size(source: Source, block: int
                                                               ) -> None:
    """(Which problem is named first may depend on the blocks: the first block's first.)"""
    whole = native.unreadable_shape(source.data, source.quotechar, source.delimiter)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(native, "SCAN_BLOCK", block)
        blocks = native.unreadable_shape(source.data, source.quotechar, source.delimiter)
    assert (blocks is None) == (whole is None)


def test_a_delimiter_outside_ascii_takes_the_python_reader(tmp_path: Path) -> None:
    job = chunk_job(tmp_path, "a¦b\n1¦2\n".encode(), delimiter="¦")
    assert path_of(job) == "a delimiter or quote outside ASCII (the shape checks read bytes)"
    result = get_processor("jsonl", JSONL)(job, Storage())
    assert (result.rows_in, result.rows_out) == (1, 1)


@pytest.mark.parametrize("name", ["jsonl", "parquet"])
def test_a_chunk_of_the_header_alone_writes_an_empty_output(tmp_path: Path, name: str) -> None:
    job = replace(chunk_job(tmp_path, b"a,b\r\n"), output_uri=str(tmp_path / f"out.{name}"))
    assert path_of(job) == "duckdb"
    result = get_processor(name, JSONL)(job, Storage())
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (0, 0, 0)
    if name == "parquet":
        assert parquet_rows(job.output_uri) == []
    else:
        assert Path(job.output_uri).read_bytes() == b""


@pytest.mark.parametrize(("name", "config", "message"), [
    ("sql", sql_config("SELECT * FROM chunk"), "cannot be the query's table"),
    ("parquet", {}, "cannot be written as Parquet"),
    ("parquet", {"S3SPLIT_SCHEMA": json.dumps({"columns": {"a": {"type": "int"},
                                                           "A": {"type": "int"}}})},
     "cannot be written as Parquet"),
])
def test_columns_that_differ_only_in_case_are_named_as_such(
        tmp_path: Path, name: str, config: dict[str, str], message: str) -> None:
    """DuckDB's names ignore ASCII case: the chunk failed naming DuckDB's struct_pack."""
    job = replace(chunk_job(tmp_path, b"A,a\n1,2\n"), output_uri=str(tmp_path / "out"))
    with pytest.raises(ChunkInvalid, match=f"{message}: columns 'A' and 'a' differ only in case"):
        get_processor(name, config)(job, Storage())
    job = replace(chunk_job(tmp_path, "É,é\n1,2\n".encode()), output_uri=str(tmp_path / "out"))
    get_processor(name, config if name == "sql" else {})(job, Storage())  # (not ASCII: apart)
    assert Path(job.output_uri).stat().st_size > 0


def test_a_ragged_row_is_rejected_by_the_python_reader(tmp_path: Path) -> None:
    job = chunk_job(tmp_path, b"a,b\n1,2\n3\n")
    assert path_of(job) == ("DuckDB: Invalid Input Error: CSV Error on Line: 3: Expected Number "
                            "of Columns: 2 Found: 1")
    result = get_processor("jsonl", {})(job, Storage())
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (2, 1, 1)


def test_a_count_neither_reader_finds_is_chunk_misaligned(tmp_path: Path) -> None:
    job = replace(chunk_job(tmp_path, EXPORT), rows=4)
    with pytest.raises(ChunkMisaligned, match="should hold 4 records"):
        get_processor("jsonl", {})(job, Storage())
    assert not Path(job.output_uri).exists()
    assert list(Path(job.output_uri).parent.iterdir()) == []  # nor DuckDB's file under another name


def test_a_directory_in_the_outputs_place_is_named_as_the_python_path_names_it(
        tmp_path: Path) -> None:
    job = chunk_job(tmp_path, EXPORT)
    Path(job.output_uri).mkdir(parents=True)
    with pytest.raises(DestinationUnwritable, match="a directory has that name"):
        get_processor("jsonl", JSONL)(job, Storage())
    assert [p.name for p in Path(job.output_uri).parent.iterdir()] == [Path(job.output_uri).name]


def test_chunks_of_runs_in_other_directories_are_read_on_duckdb_each(tmp_path: Path) -> None:
    """A worker keeps its database between chunks; a chunk elsewhere (another run) is read
    in one that reaches its directories."""
    for run in ("one", "two", "one"):
        job = chunk_job(tmp_path / run, EXPORT)
        assert path_of(job) == "duckdb"
        python, duck = both_paths(pytest.MonkeyPatch(), "jsonl", job)
        assert duck == python and duck[:3] == (3, 3, 0)


def test_a_run_directory_named_like_a_pattern_reads_its_own_chunk_only(tmp_path: Path) -> None:
    """DuckDB reads a file name as a pattern (``run[A]`` matches ``runA``, not itself)."""
    other = chunk_job(tmp_path / "runA", b"id,contact,note\r\n7,x,y\r\n8,x,y\r\n9,x,y\r\n")
    job = chunk_job(tmp_path / "run[A]", EXPORT)
    assert Path(other.chunk_uri).name == Path(job.chunk_uri).name
    python, duck = both_paths(pytest.MonkeyPatch(), "jsonl", job)
    assert duck == python and duck[:3] == (3, 3, 0)


def test_chunks_and_outputs_in_s3_are_read_once_and_written_on_duckdb(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.support.aws import mocked_s3

    local = chunk_job(tmp_path, EXPORT)
    with mocked_s3(monkeypatch, "bucket") as client:
        storage = Storage(client)
        client.put_object(Bucket="bucket", Key="run/chunks/part-00003.csv", Body=EXPORT)
        job = replace(local, chunk_uri="s3://bucket/run/chunks/part-00003.csv",
                      output_uri="s3://bucket/run/results/part-00003.jsonl",
                      rejects_uri="s3://bucket/run/rejects/part-00003.jsonl")
        with native.native_chunk(job, storage) as chunk:
            assert native.checked_count(job, chunk.count()) == 3
            scratch = Path(chunk.directory)
        reads: list[str] = []
        client.meta.events.register("before-parameter-build.s3.GetObject",
                                    lambda params, **_: reads.append(params["Key"]))
        result = get_processor("jsonl", JSONL)(job, storage)
        assert result == ProcessResult(3, 3, 0, job.output_uri, None, [])
        assert reads == ["run/chunks/part-00003.csv"]  # the header read from the local copy
        written = client.get_object(Bucket="bucket", Key="run/results/part-00003.jsonl")
        lines = written["Body"].read().decode().splitlines()
    assert [json.loads(line) for line in lines] == outcome("jsonl", local, JSONL, "local")[4]
    assert not scratch.exists()  # the chunk's copy and the output's are gone, and it too


def test_no_scratch_directory_is_left_between_chunks(tmp_path: Path) -> None:
    """A worker may end without any clean-up (a Lambda environment frozen, an engine's worker
    stopped): between chunks nothing of one is left on the disk."""
    job = chunk_job(tmp_path, EXPORT)
    for _ in range(2):
        with native.native_chunk(job, Storage()) as chunk:
            assert Path(chunk.directory).is_dir()
        assert not Path(chunk.directory).exists()


def test_the_native_path_writes_the_export_as_json_lines(tmp_path: Path) -> None:
    job = chunk_job(tmp_path, EXPORT)
    result = get_processor("jsonl", {})(job, Storage())
    assert result == ProcessResult(3, 3, 0, job.output_uri, None, [])
    lines = Path(job.output_uri).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": "1", "contact": "Okafor, Farid", "note": "plain"},
        {"id": "2", "contact": "Müller, Zoë", "note": "two\r\nlines"},
        {"id": "3", "contact": "Silva, Inês", "note": ""},
    ]


SCHEMA: dict[str, Any] = {"columns": {
    "i": {"type": "int"}, "f": {"type": "float"}, "d": {"type": "date"},
    "t": {"type": "datetime"}, "b": {"type": "bool"}, "s": {"type": "str", "required": True},
}, "extra_columns": True}
VALUES = {
    "i": ["1", "-7", "+3", "007", "1.0", "x", "", "12345678901234567890", "٣"],
    "f": ["1", "1.", ".5", "-2.5e3", "1e400", "nan", "inf", "", "1,5", "0x1"],
    "d": ["2020-02-29", "2021-02-29", "0000-01-01", "2020-1-1", "", "20200101"],
    "t": ["2020-01-01T10:00:00", "2020-01-01 23:59:59", "2020-01-01 24:00:00", "",
          "2020-01-01T10:00:00Z", "2020-01-01T10:00", "2020-01-01T10:00:00.5"],
    "b": ["true", "FALSE", "Yes", "no", "1", "0", "", "y", "truth"],
    "s": ["a", "", "é, \"q\""],
}


@settings(SETTINGS, max_examples=150)
@given(rows=st.lists(st.fixed_dictionaries({k: st.sampled_from(v) for k, v in VALUES.items()}),
                     max_size=8), extra=st.booleans())
def test_validate_on_duckdb_writes_what_the_python_reader_writes(
        rows: list[dict[str, str]], extra: bool) -> None:
    names = [*SCHEMA["columns"], *(["more"] if extra else [])]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    writer.writerows([*row.values(), *(["x"] if extra else [])] for row in rows)
    config = {"S3SPLIT_SCHEMA": json.dumps(SCHEMA)}
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        job = chunk_job(Path(tmp), out.getvalue().encode())
        python, duck = both_paths(patch, "validate", job, config)
        assert duck == python


def test_validate_on_duckdb_converts_what_it_accepts_as_python_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ("i,f,d,t,b,s,more\n+3,1.,2020-02-29,2020-01-01 23:59:59,Yes,\"é, x\",m\n"
            "007,.5,2021-03-01,2020-01-01T00:00:00,0,a,\n,-2.5e3,,,,b,\n").encode()
    job = chunk_job(tmp_path, data)
    assert path_of(job) == "duckdb"
    python, duck = both_paths(monkeypatch, "validate", job, {"S3SPLIT_SCHEMA": json.dumps(SCHEMA)})
    assert duck == python
    assert python[:3] == (3, 3, 0)


def parquet_rows(uri: str) -> list[tuple[Any, ...]]:
    import duckdb

    return duckdb.connect().execute("SELECT * FROM read_parquet(?)", [uri]).fetchall()


def parquet_types(uri: str) -> list[str]:
    import duckdb

    found = duckdb.connect().execute("DESCRIBE SELECT * FROM read_parquet(?)", [uri])
    return [str(row[1]) for row in found.fetchall()]


@pytest.mark.parametrize("native_on", [True, False])
def test_parquet_is_typed_by_the_schema_on_either_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native_on: bool) -> None:
    data = ("i,f,d,t,b,s,more\n3,1.5,2020-02-29,2020-01-01 23:59:59,Yes,\"é, x\",m\n"
            ",,,,,b,\n").encode()
    job = replace(chunk_job(tmp_path, data), output_uri=str(tmp_path / "out.parquet"))
    with native_off(monkeypatch, not native_on):
        result = get_processor("parquet", {"S3SPLIT_SCHEMA": json.dumps(SCHEMA)})(job, Storage())
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (2, 2, 0)
    assert parquet_types(job.output_uri) == ["BIGINT", "DOUBLE", "DATE",
                                             "TIMESTAMP WITH TIME ZONE", "BOOLEAN", "VARCHAR",
                                             "VARCHAR"]
    import datetime as dt
    assert parquet_rows(job.output_uri) == [
        (3, 1.5, dt.date(2020, 2, 29), dt.datetime(2020, 1, 1, 23, 59, 59, tzinfo=dt.UTC),
         True, "é, x", "m"),
        (None, None, None, None, None, "b", ""),
    ]


def test_parquet_rejects_what_validate_rejects(tmp_path: Path) -> None:
    data = b"i,f,d,t,b,s\n1,x,,,,a\n2,,,,,b\n3\n"
    job = replace(chunk_job(tmp_path, data), output_uri=str(tmp_path / "out.parquet"))
    result = get_processor("parquet", {"S3SPLIT_SCHEMA": json.dumps(SCHEMA)})(job, Storage())
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (3, 1, 2)
    assert [r["line"] for r in result.rejects] == [2, 4]
    assert parquet_rows(job.output_uri)[0][0] == 2
    assert len(Path(job.rejects_uri).read_text().splitlines()) == 2


@pytest.mark.parametrize("native_on", [True, False])
def test_parquet_rejects_an_int_beyond_64_bits_as_a_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native_on: bool) -> None:
    """validate takes any int (JSON holds it); a BIGINT column cannot: the whole chunk failed
    writing its Parquet, where only the row should be rejected."""
    data = (b"i,s\n99999999999999999999,a\n-9223372036854775808,b\n9223372036854775808,c\n"
            b"9223372036854775807,d\n")
    job = replace(chunk_job(tmp_path, data), output_uri=str(tmp_path / "out.parquet"))
    with native_off(monkeypatch, not native_on):
        result = get_processor("parquet", {"S3SPLIT_SCHEMA": json.dumps(SCHEMA)})(job, Storage())
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (4, 2, 2)
    assert [r["line"] for r in result.rejects] == [2, 4]
    assert "i: not a 64-bit int: '99999999999999999999'" in result.rejects[0]["reason"]
    assert parquet_rows(job.output_uri) == [(-(1 << 63), "b"), ((1 << 63) - 1, "d")]


def test_records_without_a_field_are_read_as_no_value_not_as_their_json(tmp_path: Path) -> None:
    """Records of no field (blank lines of a chunk without a header) go to DuckDB as ``{}``:
    DuckDB took those lines for JSON values, not objects, and gave their text as a field."""
    job = chunk_job(tmp_path, b"\n\r\n", header=False)
    assert job.rows == 2
    query = "SELECT count(*) AS n, count(col1) AS given, string_agg(col1) AS texts FROM chunk"
    result = get_processor("sql", sql_config(query))(job, Storage())
    assert (result.rows_in, result.rows_out) == (2, 2)
    assert json.loads(Path(job.output_uri).read_text()) == {"n": 2, "given": 0, "texts": None}
    job = replace(job, output_uri=str(tmp_path / "out.parquet"))
    get_processor("parquet", {})(job, Storage())
    assert parquet_rows(job.output_uri) == [(None,), (None,)]


def test_parquet_without_a_schema_is_text(tmp_path: Path) -> None:
    job = replace(chunk_job(tmp_path, EXPORT), output_uri=str(tmp_path / "out.parquet"))
    get_processor("parquet", {})(job, Storage())
    assert parquet_rows(job.output_uri)[1] == ("2", "Müller, Zoë", "two\r\nlines")
    assert set(parquet_types(job.output_uri)) == {"VARCHAR"}


@pytest.mark.parametrize(("data", "path", "counts"), [
    (EXPORT, "duckdb", (3, 3, 0)),
    (EXPORT.replace(b"\r\n3,", b"\r\n\r\n3,"),
     "DuckDB read 3 records, the manifest 4 (it skips a blank line, an empty record to the "
     "Python reader)", (4, 3, 1)),
])
def test_sql_runs_the_query_on_either_path(tmp_path: Path, data: bytes, path: str,
                                           counts: tuple[int, int, int]) -> None:
    job = chunk_job(tmp_path, data)
    assert path_of(job) == path
    query = "SELECT contact, length(note) AS n FROM chunk WHERE id <> '1' ORDER BY id;"
    result = get_processor("sql", sql_config(query))(job, Storage())
    assert (result.rows_in, result.rows_out, result.rows_rejected) == counts
    assert [json.loads(line) for line in Path(job.output_uri).read_text().splitlines()] == [
        {"contact": "Müller, Zoë", "n": 10}, {"contact": "Silva, Inês", "n": 0}]


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT 1; SELECT 2", "expected a single SELECT"),
    ("COPY chunk TO '/tmp/x.csv'", "got COPY"),
    ("INSTALL httpfs", "got "),
    ("ATTACH '/tmp/x.db'", "got ATTACH"),
    ("SELEC 1", "not valid SQL"),
])
def test_sql_refuses_anything_but_a_single_select(query: str, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        get_processor("sql", sql_config(query))


@pytest.mark.parametrize("query", [
    "SELECT id FROM chunk -- the ids",
    "SELECT id FROM chunk; -- the ids",
    "SELECT id FROM chunk /* the ids */;;",
    "-- the ids\nSELECT id /* ; */ FROM chunk ; -- ;\n",
    "SELECT id FROM chunk --",
])
@pytest.mark.parametrize("fallback", [False, True])
def test_sql_takes_a_query_with_comments_and_semicolons_around_it(
        tmp_path: Path, query: str, fallback: bool) -> None:
    """The query is put inside the COPY that writes its result: a comment or ``;`` at its
    end took the rest of that statement with it, and every chunk failed."""
    job = chunk_job(tmp_path, EXPORT + (b'9,"a "b" c",x\r\n' if fallback else b""))
    assert (path_of(job) == "duckdb") is not fallback
    result = get_processor("sql", sql_config(query))(job, Storage())
    assert result.rows_out == 3 + fallback
    ids = [json.loads(line)["id"] for line in Path(job.output_uri).read_text().splitlines()]
    assert ids == ["1", "2", "3"] + ["9"] * fallback


@pytest.mark.parametrize("query", [
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM read_parquet('https://example.com/x.parquet')",
    "SELECT * FROM query('SELECT * FROM read_text(''/etc/hostname'')')",
])
def test_sql_reaches_no_file_but_the_chunk(tmp_path: Path, query: str) -> None:
    job = chunk_job(tmp_path, EXPORT)
    with pytest.raises(ChunkInvalid, match="the S3SPLIT_SQL query failed on this chunk"):
        get_processor("sql", sql_config(query))(job, Storage())
    assert not Path(job.output_uri).exists()


@pytest.mark.parametrize("fallback", [False, True])
def test_sql_reaches_no_file_in_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fallback: bool) -> None:
    """DuckDB reaches its temporary directory, by default ``.tmp`` in the working directory:
    a user's query read the files there, on either path (and the worker's database did)."""
    (tmp_path / "cwd" / ".tmp").mkdir(parents=True)
    (tmp_path / "cwd" / ".tmp" / "secret.txt").write_text("not the query's")
    monkeypatch.chdir(tmp_path / "cwd")
    data = EXPORT + (b'9,"a "b" c",x\r\n' if fallback else b"")
    job = chunk_job(tmp_path, data)
    assert (path_of(job) == "duckdb") is not fallback
    for query in ("SELECT content FROM read_text('.tmp/secret.txt')",
                  f"SELECT content FROM read_text('{tmp_path}/cwd/.tmp/secret.txt')"):
        with pytest.raises(ChunkInvalid, match="Permission Error"):
            get_processor("sql", sql_config(query))(job, Storage())
    for _ in range(2):  # the worker's kept database spills into each chunk's scratch too
        with native.native_chunk(chunk_job(tmp_path / "worker", EXPORT), Storage()) as chunk:
            with pytest.raises(native.Fallback, match="Permission Error"):
                chunk.execute(f"SELECT content FROM read_text('{tmp_path}/cwd/.tmp/secret.txt')")
            spill = chunk.execute("SELECT current_setting('temp_directory')")
            assert spill is not None and Path(spill[0]).parent == Path(chunk.directory)
            assert Path(spill[0]).is_dir()


def test_sql_writes_parquet(tmp_path: Path) -> None:
    job = replace(chunk_job(tmp_path, EXPORT), output_uri=str(tmp_path / "out.parquet"))
    processor = get_processor("sql", sql_config("SELECT count(*) AS n FROM chunk", "parquet"))
    assert processor.extension == "parquet"
    processor(job, Storage())
    assert parquet_rows(job.output_uri) == [(3,)]


def test_sql_from_a_file_is_recorded_as_its_text_for_a_resume(tmp_path: Path) -> None:
    from s3split.processors.recorded_settings import record, resume_environment
    from s3split.processors.registry import processor_settings

    query = tmp_path / "q.sql"
    query.write_text("SELECT id FROM chunk\n")
    settings = processor_settings("sql", {"S3SPLIT_SQL_FILE": str(query),
                                          "S3SPLIT_SQL_FORMAT": "parquet"})
    recorded = record(settings)
    assert recorded == {"S3SPLIT_SQL": "SELECT id FROM chunk", "S3SPLIT_SQL_FORMAT": "parquet"}
    assert resume_environment(recorded, "processor.json", "sql", {}) == recorded
    assert resume_environment(recorded, "processor.json", "sql",
                              {"S3SPLIT_SQL_FILE": str(query)}) == {"S3SPLIT_SQL_FORMAT": "parquet"}


@pytest.mark.parametrize(("env", "message"), [
    ({"S3SPLIT_SQL": "SELECT 1", "S3SPLIT_SQL_FILE": "q.sql"}, "both set"),
    ({"S3SPLIT_SQL_FILE": "/nonexistent/q.sql"}, "cannot read /nonexistent/q.sql"),
    ({}, "sql needs a query"),
    ({"S3SPLIT_SQL": "SELECT 1", "S3SPLIT_SQL_FORMAT": "csv"}, "expected jsonl or parquet"),
])
def test_sql_settings_errors_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        get_processor("sql", env)


def test_an_unreadable_header_of_an_s3_chunk_is_named_by_its_uri(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.support.aws import mocked_s3

    data = b"id,n\xff\r\n1,2\r\n"
    with mocked_s3(monkeypatch, "bucket") as client:
        client.put_object(Bucket="bucket", Key="run/chunks/part-00003.csv", Body=data)
        job = replace(make_job(tmp_path, data, rows=1),
                      chunk_uri="s3://bucket/run/chunks/part-00003.csv",
                      output_uri="s3://bucket/run/results/part-00003.jsonl",
                      rejects_uri="s3://bucket/run/rejects/part-00003.jsonl")
        with pytest.raises(ChunkInvalid, match=r"^s3://bucket/run/chunks/part-00003.csv: "
                                               r"invalid UTF-8 at byte 4 .*the header"):
            get_processor("jsonl", JSONL)(job, Storage(client))


@pytest.mark.parametrize(("memory", "limit"), [("1024", "614.0 MiB"), ("128", "76.0 MiB")])
def test_duckdb_may_take_a_share_of_the_functions_memory(
        memory: str, limit: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """60 % of the function's memory, where the runtime says it (DuckDB's default, 80 % of
    the machine's, lets each lane on one machine plan for most of it)."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory)
    connection = native.sandboxed(str(tmp_path))
    assert connection.execute("SELECT current_setting('memory_limit')").fetchone() == (limit,)


def test_a_query_beyond_its_memory_fails_the_chunk_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
    job = chunk_job(tmp_path, EXPORT)
    query = "SELECT string_agg(repeat('x', 1000), '') AS s FROM chunk, range(200000)"
    with pytest.raises(ChunkInvalid, match="the S3SPLIT_SQL query failed on this chunk: "
                                           "Out of Memory Error"):
        get_processor("sql", sql_config(query))(job, Storage())
    assert not Path(job.output_uri).exists()
