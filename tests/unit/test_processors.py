"""Processors on local files: reading rows, jsonl, validate, noop and processor lookup."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3split.errors import ChunkInvalid, ChunkMisaligned, InvalidInput, InvalidOption
from s3split.processors.base import ChunkJob, ProcessResult
from s3split.processors.check import check_processor
from s3split.processors.dynamodb import BACKOFF_BASE, BACKOFF_CAP, TABLE, DynamoDBProcessor, backoff
from s3split.processors.jsonl import unique_names
from s3split.processors.reader import find_invalid_utf8, read_rows
from s3split.processors.registry import custom_processors, get_processor, processor_settings
from s3split.processors.validate import SCHEMA as SCHEMA_SETTING
from s3split.processors.validate import Schema, ValidateProcessor
from s3split.storage import Storage
from tests.support.jobs import make_job

JSONL: dict[str, str] = {}  # the environment of a run of jsonl: no setting
SCHEMA: dict[str, Any] = {
    "columns": {
        "id": {"type": "int", "required": True},
        "price": {"type": "float"},
        "name": {"type": "str", "required": True},
        "day": {"type": "date"},
        "at": {"type": "datetime"},
        "ok": {"type": "bool"},
    },
    "extra_columns": False,
}
VALIDATE_HEADER = "id,price,name,day,at,ok\n"


def read_jsonl(uri: str) -> list[Any]:
    return [json.loads(line) for line in Path(uri).read_text(encoding="utf-8").splitlines()]


def run(name: str, job: ChunkJob, config: dict[str, str] = JSONL) -> ProcessResult:
    return get_processor(name, config)(job, Storage())


def assert_accounted(result: ProcessResult) -> None:
    assert result.rows_in == result.rows_out + result.rows_rejected


def leftovers(directory: Path) -> list[str]:
    return sorted(os.listdir(directory)) if directory.exists() else []


def test_read_rows_returns_header_separately_and_source_lines(tmp_path: Path) -> None:
    job = make_job(tmp_path, 'a,"b\nc"\n1,"x\ny\nz"\n2,w\r\n\n3,v', source_line=101)
    with read_rows(job, Storage()) as rows:
        assert rows.header == ["a", "b\nc"]
        got = [(row.line, row.fields) for row in rows]
    assert got == [(101, ["1", "x\ny\nz"]), (104, ["2", "w"]), (105, []), (106, ["3", "v"])]
    assert rows.count == 4


def test_read_rows_without_header_starts_at_source_line(tmp_path: Path) -> None:
    job = make_job(tmp_path, "1;2\n3;4\n", has_header=False, source_line=7, delimiter=";")
    with read_rows(job, Storage()) as rows:
        assert rows.header is None
        assert [(r.line, r.fields) for r in rows] == [(7, ["1", "2"]), (8, ["3", "4"])]


def test_read_rows_of_an_empty_chunk(tmp_path: Path) -> None:
    with read_rows(make_job(tmp_path, b""), Storage()) as rows:
        assert rows.header is None
        assert list(rows) == []


def test_jsonl_quoted_fields_and_unicode(tmp_path: Path) -> None:
    chunk = (
        "id,name,note\r\n"
        '1,"Smith, John","he said ""hi""\nand left"\r\n'
        "2,Zoë,日本語 ✓ 🎉\r\n"
        '3,"",","\r\n'
    )
    job = make_job(tmp_path, chunk)
    result = run("jsonl", job)
    assert result == ProcessResult(3, 3, 0, job.output_uri, None, [])
    assert read_jsonl(job.output_uri) == [
        {"id": "1", "name": "Smith, John", "note": 'he said "hi"\nand left'},
        {"id": "2", "name": "Zoë", "note": "日本語 ✓ 🎉"},
        {"id": "3", "name": "", "note": ","},
    ]
    assert "Zoë" in Path(job.output_uri).read_text(encoding="utf-8")
    assert not Path(job.rejects_uri).exists()


def test_jsonl_without_header_uses_col_names(tmp_path: Path) -> None:
    job = make_job(tmp_path, "a,b\nc,d,e\n", has_header=False)
    result = run("jsonl", job)
    assert (result.rows_out, result.rows_rejected) == (2, 0)
    assert read_jsonl(job.output_uri) == [
        {"col1": "a", "col2": "b"},
        {"col1": "c", "col2": "d", "col3": "e"},
    ]


def test_jsonl_keeps_every_column_of_a_header_with_repeated_or_empty_names(tmp_path: Path) -> None:
    job = make_job(tmp_path, "a,a,,b\n1,2,3,4\n")
    run("jsonl", job)
    assert read_jsonl(job.output_uri) == [{"a": "1", "a_2": "2", "col3": "3", "b": "4"}]
    assert unique_names(["x", "x_2", "x"]) == ["x", "x_2", "x_3"]


def test_jsonl_rejects_ragged_rows_with_their_source_line(tmp_path: Path) -> None:
    chunk = 'id,text,n\n1,"multi\nline\nrecord",x\n2,short\n3,a,b\n4,a,b,extra\n'
    job = make_job(tmp_path, chunk, source_line=50)
    result = run("jsonl", job)
    assert_accounted(result)
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (4, 2, 2)
    assert result.rejects_uri == job.rejects_uri
    assert result.rejects == [
        {"line": 53, "reason": "expected 3 fields, got 2"},
        {"line": 55, "reason": "expected 3 fields, got 4"},
    ]
    assert read_jsonl(job.rejects_uri) == [
        {"line": 53, "reason": "expected 3 fields, got 2", "fields": ["2", "short"]},
        {"line": 55, "reason": "expected 3 fields, got 4", "fields": ["4", "a", "b", "extra"]},
    ]
    assert [r["id"] for r in read_jsonl(job.output_uri)] == ["1", "3"]


def test_jsonl_keeps_the_first_20_rejects_and_writes_all(tmp_path: Path) -> None:
    chunk = "a,b\n" + "".join("bad\n" if i % 2 else f"{i},ok\n" for i in range(60))
    job = make_job(tmp_path, chunk, source_line=2)
    result = run("jsonl", job)
    assert_accounted(result)
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (60, 30, 30)
    assert len(result.rejects) == 20
    assert result.rejects[0]["line"] == 3 and result.rejects[-1]["line"] == 41
    assert len(read_jsonl(job.rejects_uri)) == 30


def test_invalid_utf8_names_chunk_byte_and_source_line(tmp_path: Path) -> None:
    rows = "".join(f"{i},{'é' * 40}\n" for i in range(1000))
    good = ("id,text\n" + rows).encode()
    bad = good + b"1000,caf\xe9\n" + b"1001,more\n"
    job = make_job(tmp_path, bad, source_line=10)
    with pytest.raises(ChunkInvalid) as info:
        run("jsonl", job)
    message = str(info.value)
    assert job.chunk_uri in message
    assert f"invalid UTF-8 at byte {len(good) + 8} of the chunk" in message
    assert "(source line 1010)" in message
    assert leftovers(tmp_path / "results") == []


def test_truncated_utf8_at_end_of_chunk(tmp_path: Path) -> None:
    data = "id\n1\n€".encode()[:-1]
    with pytest.raises(ChunkInvalid, match=r"byte 5 of the chunk \(source line 4\)"):
        run("jsonl", make_job(tmp_path, data, source_line=3))


def test_invalid_utf8_found_by_read_ahead_while_reading_the_header(tmp_path: Path) -> None:
    data = b'id,text\n1,"multi\nline"\n2,caf\xe9\n3,x\n'
    with pytest.raises(ChunkInvalid, match=r"byte 28 of the chunk \(source line 7\)"):
        run("jsonl", make_job(tmp_path, data, source_line=5))


def test_invalid_utf8_in_the_header(tmp_path: Path) -> None:
    header = r"byte 1 of the chunk \(line 1 of the chunk \(the header\)\)"
    with pytest.raises(ChunkInvalid, match=header):
        run("jsonl", make_job(tmp_path, b"a\xff,b\n1,2\n"))


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=300),
    bad=st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf"]),
    at=st.integers(min_value=0),
    block=st.integers(min_value=1, max_value=16),
)
def test_find_invalid_utf8_agrees_with_bytes_decode(
    text: str, bad: bytes, at: int, block: int
) -> None:
    good = text.encode()
    cut = len(good[: at % (len(good) + 1)].decode("utf-8", "ignore").encode())
    data = good[:cut] + bad + good[cut:]
    with pytest.raises(UnicodeDecodeError) as info:
        data.decode("utf-8")
    expected = (info.value.start, data[: info.value.start].count(b"\n") + 1)
    assert find_invalid_utf8(io.BytesIO(data), block) == expected
    assert find_invalid_utf8(io.BytesIO(good), block) is None


def test_nul_byte_is_binary_data_at_its_source_line(tmp_path: Path) -> None:
    job = make_job(tmp_path, b"a,b\n1,2\n3,\x00\x01\x02\n", source_line=20)
    with pytest.raises(ChunkInvalid, match=r"binary data \(NUL byte\) at source line 21"):
        run("jsonl", job)


def test_binary_chunk_is_chunk_invalid(tmp_path: Path) -> None:
    with pytest.raises(ChunkInvalid, match=r"part-00003\.csv"):
        run("noop", make_job(tmp_path, bytes(range(256)) * 4))


def test_csv_error_is_chunk_invalid_with_line(tmp_path: Path) -> None:
    huge = "x" * (csv.field_size_limit() + 1)
    # A chunk claiming to be small: a field longer than the chunk is not a CSV the split wrote.
    job = replace(make_job(tmp_path, f"a,b\n1,2\n3,{huge}\n", source_line=2), bytes=0)
    with pytest.raises(ChunkInvalid, match=r"unreadable CSV at source line 3: field larger"):
        run("jsonl", job)


def test_failing_midway_leaves_no_output_or_rejects(tmp_path: Path) -> None:
    rows = "".join(f"{i},{'v' * 100}\n" for i in range(20_000))
    job = make_job(tmp_path, "a,b\nragged\n" + rows + "1,\x00\n")
    with pytest.raises(ChunkInvalid, match="binary data"):
        run("jsonl", job)
    assert leftovers(tmp_path / "results") == []
    assert leftovers(tmp_path / "rejects") == []


def test_a_rerun_replaces_the_output(tmp_path: Path) -> None:
    job = make_job(tmp_path, "a\n1\n2\n")
    run("jsonl", job)
    first = Path(job.output_uri).read_bytes()
    run("jsonl", job)
    assert Path(job.output_uri).read_bytes() == first
    assert leftovers(tmp_path / "results") == ["part-00003.jsonl"]


def test_noop_counts_rows_and_writes_an_empty_output(tmp_path: Path) -> None:
    job = make_job(tmp_path, 'a,b\n1,"2\n2"\nragged\n3,4\n')
    result = run("noop", job)
    assert result == ProcessResult(3, 3, 0, job.output_uri, None, [])
    assert Path(job.output_uri).read_bytes() == b""


def validate_config(schema: dict[str, Any] = SCHEMA) -> dict[str, str]:
    return {"S3SPLIT_SCHEMA": json.dumps(schema)}


def test_validate_types_required_and_rejects(tmp_path: Path) -> None:
    chunk = VALIDATE_HEADER + (
        "1,9.5,pen,2024-02-29,2024-02-29T10:00:00+01:00,yes\n"
        "2,,book,,,\n"
        "x,1e3,cup,2024-02-30,2024-01-01T25:00,maybe\n"
        "4,nan,,20240101,,TRUE\n"
        "5,1_0,ok,2024-01-01,2024-01-01 12:30,0\n"
        "6,1,two,3\n"
    )
    job = make_job(tmp_path, chunk, source_line=2)
    result = run("validate", job, validate_config())
    assert_accounted(result)
    assert (result.rows_in, result.rows_out, result.rows_rejected) == (6, 2, 4)
    assert read_jsonl(job.output_uri) == [
        {"id": 1, "price": 9.5, "name": "pen", "day": "2024-02-29",
         "at": "2024-02-29T10:00:00+01:00", "ok": True},
        {"id": 2, "price": None, "name": "book", "day": None, "at": None, "ok": None},
    ]
    reasons = {r["line"]: r["reason"] for r in result.rejects}
    assert reasons[4] == (
        "id: not a valid int: 'x'; day: not a valid date: '2024-02-30'; "
        "at: not a valid datetime: '2024-01-01T25:00'; ok: not a valid bool: 'maybe'"
    )
    assert reasons[5] == (
        "price: not a valid float: 'nan'; name: required; day: not a valid date: '20240101'"
    )
    assert reasons[6] == "price: not a valid float: '1_0'"
    assert reasons[7] == "expected 6 fields, got 4"
    assert read_jsonl(job.rejects_uri)[0]["fields"][0] == "x"


def test_validate_header_with_column_outside_the_schema(tmp_path: Path) -> None:
    chunk = "id,name,colour\n1,pen,red\n"
    with pytest.raises(ChunkInvalid, match="not in the schema: colour"):
        run("validate", make_job(tmp_path, chunk), validate_config())
    allowed = {**SCHEMA, "extra_columns": True}
    job = make_job(tmp_path, chunk)
    result = run("validate", job, validate_config(allowed))
    assert result.rows_out == 1
    assert read_jsonl(job.output_uri) == [{"id": 1, "name": "pen", "colour": "red"}]


def test_validate_header_missing_a_required_column(tmp_path: Path) -> None:
    with pytest.raises(ChunkInvalid, match=r"lacks required column\(s\) name"):
        run("validate", make_job(tmp_path, "id,price\n1,2\n"), validate_config())


def test_validate_without_header_is_positional(tmp_path: Path) -> None:
    schema = {"columns": {"n": {"type": "int"}, "flag": {"type": "bool"}}, "extra_columns": True}
    job = make_job(tmp_path, "1,no,extra\n2\n3,1\n", has_header=False, source_line=1)
    result = run("validate", job, validate_config(schema))
    assert read_jsonl(job.output_uri) == [{"n": 1, "flag": False, "col3": "extra"},
                                          {"n": 3, "flag": True}]
    assert result.rejects == [{"line": 2, "reason": "expected at least 2 fields, got 1"}]


def test_validate_extra_fields_never_take_a_schema_columns_name(tmp_path: Path) -> None:
    """Without a header, the fields beyond the schema's get generated names; a schema column
    already called ``col3`` (or ``col3_2``) keeps its value and the extra field its own."""
    schema = {"columns": {"col3": {"type": "str"}, "col3_2": {"type": "str"}},
              "extra_columns": True}
    job = make_job(tmp_path, "x,y,z,w\n", has_header=False, source_line=1)
    run("validate", job, validate_config(schema))
    assert read_jsonl(job.output_uri) == [{"col3": "x", "col3_2": "y", "col3_3": "z",
                                           "col4": "w"}]
    schema = {"columns": {"a": {"type": "int"}, "col3": {"type": "str"}}, "extra_columns": True}
    job = make_job(tmp_path, "1,x,y\n", has_header=False, source_line=1)
    result = run("validate", job, validate_config(schema))
    assert read_jsonl(job.output_uri) == [{"a": 1, "col3": "x", "col3_2": "y"}]
    assert (result.rows_out, result.rows_rejected) == (1, 0)


def test_validate_needs_a_valid_schema() -> None:
    with pytest.raises(InvalidOption, match="needs a schema"):
        get_processor("validate", {})
    with pytest.raises(InvalidOption, match="unknown type 'money'"):
        get_processor("validate", validate_config({"columns": {"a": {"type": "money"}}}))


def test_each_processor_reads_its_own_settings_from_the_environment(tmp_path: Path) -> None:
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(SCHEMA))
    env = {
        "S3SPLIT_DYNAMODB_TABLE": " orders ",
        "S3SPLIT_DYNAMODB_TYPES": '{"qty": "N", "paid": "BOOL"}',
        "S3SPLIT_SCHEMA": str(schema_file),
        "S3SPLIT_SQL": "SELECT 1 FROM chunk",
        "S3SPLIT_PROCESSORS": " upper = my_mod:upper , other=pkg.mod:Thing.make",
    }
    assert custom_processors(env) == {"upper": "my_mod:upper", "other": "pkg.mod:Thing.make"}
    assert custom_processors({}) == {}
    dynamodb = get_processor("dynamodb", env)
    assert isinstance(dynamodb, DynamoDBProcessor)
    assert (dynamodb.table, dynamodb.types) == ("orders", {"qty": "N", "paid": "BOOL"})
    validate = get_processor("validate", env)
    assert isinstance(validate, ValidateProcessor) and validate.schema == Schema.parse(SCHEMA)
    inline = processor_settings("validate", {"S3SPLIT_SCHEMA": json.dumps(SCHEMA)})
    assert inline.get(SCHEMA_SETTING) == SCHEMA
    assert processor_settings("validate", {"S3SPLIT_SCHEMA": "  "}).get(SCHEMA_SETTING) is None
    # a setting of another processor is neither read nor checked
    assert processor_settings("jsonl", env | {"S3SPLIT_SCHEMA": "/nonexistent"}).declared == ()
    with pytest.raises(KeyError):
        inline.get(TABLE)


@pytest.mark.parametrize(
    ("name", "env", "message"),
    [
        ("dynamodb", {"S3SPLIT_DYNAMODB_TYPES": '{"a": "NUMBER"}'},
         'S3SPLIT_DYNAMODB_TYPES: expected {"column": BOOL | N | S}, got {"a": "NUMBER"}'),
        ("dynamodb", {"S3SPLIT_DYNAMODB_TYPES": "N"}, "S3SPLIT_DYNAMODB_TYPES: not valid JSON"),
        ("validate", {"S3SPLIT_SCHEMA": "{bad"}, "S3SPLIT_SCHEMA: not valid JSON"),
        ("parquet", {"S3SPLIT_SCHEMA": "/nonexistent/schema.json"},
         "S3SPLIT_SCHEMA: cannot read /nonexistent/schema.json: No such file"),
        ("validate", {"S3SPLIT_SCHEMA": '{"cols": {}}'}, "S3SPLIT_SCHEMA: schema: expected"),
        ("jsonl", {"S3SPLIT_PROCESSORS": "upper=my_mod.upper"},
         "S3SPLIT_PROCESSORS: expected name=module:function, got 'upper=my_mod.upper'"),
    ],
)
def test_a_setting_that_cannot_be_read_is_named(name: str, env: dict[str, str],
                                                message: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        get_processor(name, env)
    assert str(caught.value).startswith(message)


def test_a_schema_file_that_is_not_a_json_object_is_named(tmp_path: Path) -> None:
    for content, problem in ((b"{nope", "is not valid JSON"), (b"\xff\xfe{", "cannot read"),
                             (b"[1]", "expected a JSON object")):
        path = tmp_path / "schema.json"
        path.write_bytes(content)
        with pytest.raises(InvalidOption, match=f"^S3SPLIT_SCHEMA: .*{problem}"):
            get_processor("validate", {"S3SPLIT_SCHEMA": str(path)})


def test_unknown_processor_names_itself_and_the_known_ones() -> None:
    with pytest.raises(InvalidOption) as info:
        get_processor("avro", {"S3SPLIT_PROCESSORS": "mine=x:y"})
    message = str(info.value)
    assert "'avro'" in message
    for name in ("jsonl", "validate", "parquet", "sql", "dynamodb", "noop", "mine"):
        assert name in message


def test_dynamodb_needs_a_table() -> None:
    with pytest.raises(InvalidOption, match="S3SPLIT_DYNAMODB_TABLE"):
        get_processor("dynamodb", {})


CUSTOM_MODULE = '''
from s3split.processors import ProcessResult, read_rows


def upper(job, storage):
    with read_rows(job, storage) as rows, storage.writer(job.output_uri) as out:
        for row in rows:
            out.write(",".join(rows.header + row.fields).upper().encode() + b"\\n")
    return ProcessResult(rows.count, rows.count, 0, job.output_uri, None, [])


class Csv:
    extension = "csv"

    def __call__(self, job, storage):
        return upper(job, storage)
'''


@pytest.fixture
def custom_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"s3split_custom_{random.randrange(10**9)}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(CUSTOM_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_custom_processor_from_config(tmp_path: Path, custom_module: str) -> None:
    processor = get_processor("up", {"S3SPLIT_PROCESSORS": f"up={custom_module}:upper"})
    assert processor.extension == "jsonl"
    job = make_job(tmp_path, "k,v\na,b\n")
    assert processor(job, Storage()).rows_out == 1
    assert Path(job.output_uri).read_text() == "K,V,A,B\n"


def test_custom_processor_class_keeps_its_extension(custom_module: str) -> None:
    processor = get_processor("c", {"S3SPLIT_PROCESSORS": f"c={custom_module}:Csv"})
    assert processor.extension == "csv"


def test_custom_processor_that_cannot_be_loaded(custom_module: str) -> None:
    for target in ("no_such_module_xyz:f", f"{custom_module}:missing"):
        with pytest.raises(InvalidOption, match="cannot be loaded"):
            get_processor("p", {"S3SPLIT_PROCESSORS": f"p={target}"})


@pytest.mark.parametrize(("module", "error"), [
    ("raise RuntimeError('no licence key')\n", "RuntimeError: no licence key"),
    ("def broken(:\n", "SyntaxError: "),
    ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
])
def test_a_processor_whose_import_fails_is_named_whatever_it_raises(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, error: str) -> None:
    """A custom processor's or an entry point's module runs its code when imported: an error
    other than ImportError or AttributeError came out of the worker unnamed."""
    name = f"s3split_failing_{random.randrange(10**9)}"
    (tmp_path / f"{name}.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    dist = tmp_path / f"{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[s3split.processors]\nplugged = {name}:f\n")
    try:
        for picked, env in [("mine", {"S3SPLIT_PROCESSORS": f"mine={name}:f"}),
                            ("plugged", {})]:
            with pytest.raises(InvalidOption) as caught:
                get_processor(picked, env)
            assert "cannot be loaded: " + error in str(caught.value)
            assert picked in str(caught.value) or name in str(caught.value)
    finally:
        sys.modules.pop(name, None)


def test_a_custom_processor_never_takes_a_name_another_processor_has(
        tmp_path: Path, custom_module: str) -> None:
    """``S3SPLIT_PROCESSORS=jsonl=mine:f`` ran the built-in jsonl, and a custom name an entry
    point also had ran the entry point: the user's code never ran, and nothing said so."""
    with pytest.raises(InvalidOption, match="jsonl is a built-in processor: name "):
        get_processor("jsonl", {"S3SPLIT_PROCESSORS": f"jsonl={custom_module}:upper"})
    dist = tmp_path / "s3split_named-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: s3split-named\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[s3split.processors]\nup = {custom_module}:Csv\n")
    env = {"S3SPLIT_PROCESSORS": f"up={custom_module}:upper"}
    with pytest.raises(InvalidOption, match=f"processor up is an installed entry point "
                                            f"\\({custom_module}:Csv\\)"):
        get_processor("up", env)
    with pytest.raises(InvalidInput, match="S3SPLIT_PROCESSORS names"):
        check_processor("up", env)


def test_entry_point_processor(
    tmp_path: Path, custom_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "s3split_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: s3split-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[s3split.processors]\nshout = {custom_module}:Csv\n"
    )
    processor = get_processor("shout", {})
    assert processor.extension == "csv"
    with pytest.raises(InvalidOption, match="shout"):
        get_processor("nope", {})


def test_backoff_is_jittered_and_capped() -> None:
    random.seed(1)
    for attempt in range(12):
        limit = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
        waits = [backoff(attempt) for _ in range(50)]
        assert all(0 <= w <= limit for w in waits)
        assert len(set(waits)) > 1


# -- the parser agrees with the split, whatever the shape ------------------------------------


@pytest.mark.parametrize("rows", [1, 3])
def test_a_chunk_with_other_records_than_the_manifest_writes_nothing(tmp_path: Path,
                                                                      rows: int) -> None:
    """The manifest says 2 records; the parser finds 1 or 3: ChunkMisaligned, no output."""
    job = make_job(tmp_path, 'a,b\n1,2\n3,4\n5,6\n' if rows == 3 else 'a,b\n"1\n2",x\n', rows=2)
    processor = get_processor("jsonl", JSONL)
    with pytest.raises(ChunkMisaligned, match=r"chunk 3 should hold 2 records \(manifest\) "
                                              rf"but the CSV parser finds (more than 2|{rows})"):
        processor(job, Storage())
    assert not os.path.exists(job.output_uri)


def test_records_end_where_csv_reader_ends_them(tmp_path: Path) -> None:
    """Bare CRs end records, quotes in unquoted fields are data, as the splitter counts."""
    job = make_job(tmp_path, 'h,x\r5\'10",a\r"q\rq"z,b\r\n', rows=2)
    result = get_processor("jsonl", JSONL)(job, Storage())
    assert read_jsonl(job.output_uri) == [{"h": "5'10\"", "x": "a"}, {"h": "q\rqz", "x": "b"}]
    assert (result.rows_in, result.rows_out) == (2, 2)


def test_a_field_larger_than_csvs_default_limit(tmp_path: Path) -> None:
    big = "x" * (1024 * 1024)
    job = make_job(tmp_path, f'id,text\n1,"{big}"\n', rows=1)
    get_processor("jsonl", JSONL)(job, Storage())
    assert read_jsonl(job.output_uri) == [{"id": "1", "text": big}]


def test_a_header_of_100k_columns(tmp_path: Path) -> None:
    names = [f"c{i % 50_000}" for i in range(100_000)]  # every name twice
    job = make_job(tmp_path, ",".join(names) + "\n" + ",".join("1" * 100_000) + "\n", rows=1)
    get_processor("jsonl", JSONL)(job, Storage())
    [record] = read_jsonl(job.output_uri)
    assert len(record) == 100_000
    assert record["c0"] == record["c0_2"] == "1"


def test_unique_names_keeps_every_name_distinct() -> None:
    assert unique_names(["a", "a", "a_2", "a", "", ""]) == ["a", "a_2", "a_2_2", "a_3", "col5",
                                                           "col6"]
