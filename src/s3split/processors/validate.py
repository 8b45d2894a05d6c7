"""The ``validate`` processor: a schema (typed, required and extra columns) checked row by
row; rows that match are written as typed JSON, the others rejected with their reasons."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from s3split.errors import ChunkInvalid, InvalidOption
from s3split.processors.base import ChunkJob, ProcessResult, Record
from s3split.processors.jsonl import unique_names, write_jsonl
from s3split.processors.reader import Row
from s3split.processors.rejects import Convert, Reject
from s3split.processors.settings import Setting, Settings, json_object_or_file
from s3split.storage import Storage

if TYPE_CHECKING:
    from s3split.processors.native import NativeChunk


def _schema_document(text: str) -> dict[str, Any]:
    document = json_object_or_file(text)
    Schema.parse(document)
    return document


# The schema (validate's and parquet's): inline JSON or a JSON file's path, recorded as its
# document; ``ssm:NAME`` in the template (a schema may outgrow a function's environment).
SCHEMA = Setting("S3SPLIT_SCHEMA", _schema_document, recorded_as=dict, from_ssm=True)

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _parse_int(value: str) -> int:
    if not _INT.fullmatch(value):
        raise ValueError
    return int(value)


def _parse_float(value: str) -> float:
    number = float(value) if _FLOAT.fullmatch(value) else math.nan
    if not math.isfinite(number):
        raise ValueError
    return number


def _parse_date(value: str) -> str:
    if not _DATE.fullmatch(value):
        raise ValueError
    return date.fromisoformat(value).isoformat()


def _parse_datetime(value: str) -> str:
    return datetime.fromisoformat(value).isoformat()


def parse_bool(value: str) -> bool:
    return _BOOLS[value.lower()]


PARSERS: dict[str, Callable[[str], Any]] = {
    "int": _parse_int,
    "float": _parse_float,
    "str": str,
    "date": _parse_date,
    "datetime": _parse_datetime,
    "bool": parse_bool,
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool

    def value(self, text: str) -> Any:
        """The typed value of one field; ValueError says what is wrong with it."""
        if text == "":
            if self.required:
                raise ValueError(f"{self.name}: required")
            return None
        try:
            return PARSERS[self.type](text)
        except (ValueError, KeyError):
            raise ValueError(f"{self.name}: not a valid {self.type}: {shown(text)}") from None


def shown(text: str) -> str:
    """A field's text as a reason shows it: quoted, cut after 40 characters."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


@dataclass(frozen=True)
class Schema:
    columns: dict[str, Column]
    extra_columns: bool

    @classmethod
    def parse(cls, document: Any) -> Schema:
        """A schema document, checked; InvalidOption says what is wrong with it."""
        columns = document.get("columns") if isinstance(document, dict) else None
        if not isinstance(columns, dict) or not columns:
            raise InvalidOption('schema: expected {"columns": {"name": {"type": ...}, ...}}')
        parsed = {name: _parse_column(name, spec) for name, spec in columns.items()}
        return cls(parsed, bool(document.get("extra_columns", False)))

    def check_header(self, names: list[str], uri: str) -> None:
        present = set(names)
        missing = [c.name for c in self.columns.values() if c.required and c.name not in present]
        if missing:
            raise ChunkInvalid(f"{uri}: header lacks required column(s) {', '.join(missing)}")
        unknown = [name for name in names if name not in self.columns]
        if unknown and not self.extra_columns:
            raise ChunkInvalid(f"{uri}: header has column(s) not in the schema: "
                               f"{', '.join(unknown)} (set extra_columns to allow them)")


def _parse_column(name: str, spec: Any) -> Column:
    if not isinstance(spec, dict):
        raise InvalidOption(f"schema column {name!r}: expected an object, got {spec!r}")
    kind = spec.get("type", "str")
    if not isinstance(kind, str) or kind not in PARSERS:
        raise InvalidOption(f"schema column {name!r}: unknown type {kind!r}; "
                            f"known: {', '.join(PARSERS)}")
    return Column(name, kind, bool(spec.get("required", False)))


def schema_converter(schema: Schema, uri: str, header: list[str] | None) -> Convert:
    names = unique_names(header) if header is not None else list(schema.columns)
    if header is not None:
        schema.check_header(names, uri)
    columns = [schema.columns.get(name) for name in names]
    exact = header is not None or not schema.extra_columns
    extra_name = _extra_names(set(names))

    def convert(row: Row) -> Record:
        count = len(row.fields)
        if count != len(names) and (exact or count < len(names)):
            raise Reject(f"expected {'' if exact else 'at least '}{len(names)} fields, got {count}")
        record: Record = {}
        errors: list[str] = []
        for number, text in enumerate(row.fields):
            column = columns[number] if number < len(columns) else None
            if column is None:
                record[names[number] if number < len(names) else extra_name(number + 1)] = text
                continue
            try:
                record[column.name] = column.value(text)
            except ValueError as exc:
                errors.append(str(exc))
        if errors:
            raise Reject("; ".join(errors))
        return record

    return convert


def _extra_names(taken: set[str]) -> Callable[[int], str]:
    """The name of field N beyond the schema's: ``colN``, or ``colN_2``, ``colN_3`` ... when a
    schema column has that name (an extra field must never overwrite a checked value)."""
    cache: dict[int, str] = {}

    def name(number: int) -> str:
        if number not in cache:
            base = candidate = f"col{number}"
            suffix = 2
            while candidate in taken:
                candidate, suffix = f"{base}_{suffix}", suffix + 1
            cache[number] = candidate
        return cache[number]

    return name


# Each type in SQL: the fields DuckDB may convert itself (a subset of what the Python parser
# takes: a field outside it sends the chunk to the Python reader), the value as validate
# writes it to JSON, and as a typed (Parquet) column.
_DIGITS = "[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}"  # (str.format templates: braces doubled)
_CLOCK = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
_SQL: dict[str, tuple[str, str, str]] = {
    "int": ("regexp_full_match({v}, '[+-]?[0-9]{{1,18}}')", "CAST({v} AS BIGINT)",
            "CAST({v} AS BIGINT)"),
    "float": ("regexp_full_match({v}, '[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?') "
              "AND isfinite(TRY_CAST({v} AS DOUBLE))", "CAST({v} AS DOUBLE)",
              "CAST({v} AS DOUBLE)"),
    "str": ("true", "{v}", "{v}"),
    "date": (f"regexp_full_match({{v}}, '{_DIGITS}') AND NOT starts_with({{v}}, '0000') "
             "AND TRY_CAST({v} AS DATE) IS NOT NULL", "{v}", "CAST({v} AS DATE)"),
    "datetime": (f"regexp_full_match({{v}}, '{_DIGITS}[T ]{_CLOCK}') AND NOT "
                 "starts_with({v}, '0000') AND TRY_CAST({v} AS TIMESTAMP) IS NOT NULL",
                 "replace({v}, ' ', 'T')", "CAST({v} AS TIMESTAMPTZ)"),
    "bool": ("lower({v}) IN ('true', '1', 'yes', 'false', '0', 'no')",
             "lower({v}) IN ('true', '1', 'yes')", "lower({v}) IN ('true', '1', 'yes')"),
}
SQL_TYPES = {"int": "BIGINT", "float": "DOUBLE", "str": "VARCHAR", "date": "DATE",
             "datetime": "TIMESTAMPTZ", "bool": "BOOLEAN"}


def native_select(schema: Schema, chunk: NativeChunk, header: bool, typed: bool) -> str:
    """The SELECT of the rows validate accepts, as validate writes them (``typed``: as typed
    columns); a row it would reject (or that DuckDB cannot judge as the Python parser does)
    raises, and the chunk goes to the Python reader (Fallback)."""
    from s3split.processors.native import Fallback, quote_identifier

    names = chunk.names if header else list(schema.columns)
    if len(names) != len(chunk.names):
        raise Fallback("a positional chunk with other columns than the schema")
    fields, checks = [], []
    for number, name in enumerate(names, 1):
        column, v = schema.columns.get(name), chunk.column(number)
        if column is None:
            fields.append(f"{chunk.text(number)} AS {quote_identifier(name)}")
            continue
        valid, as_json, as_typed = (part.format(v=v) for part in _SQL[column.type])
        checks.append(f"({v} IS NOT NULL AND {valid})" if column.required
                      else f"({v} IS NULL OR ({valid}))")
        value = as_typed if typed else as_json
        fields.append(f"CASE WHEN {v} IS NULL THEN NULL ELSE {value} END AS "
                      f"{quote_identifier(column.name)}")
    ok = " AND ".join(checks) or "true"
    return (f"SELECT {', '.join(fields)} FROM {chunk.source} "
            f"WHERE CASE WHEN {ok} THEN true ELSE error('a row validate rejects') END")


class ValidateProcessor:
    """Rows that match the schema are written as typed JSON; the others are rejected.
    DuckDB writes a chunk whose every row it accepts (native.py), the Python reader every
    other one (and all the rejects)."""

    extension = "jsonl"
    settings = (SCHEMA,)

    @classmethod
    def from_settings(cls, settings: Settings) -> ValidateProcessor:
        return cls(Schema.parse(settings.required(
            SCHEMA, "validate needs a schema: set S3SPLIT_SCHEMA to the schema's JSON or the "
                    "path of a JSON file")))

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult:
        from s3split.processors import native

        try:
            with native.native_chunk(job, storage) as chunk:
                self.check_header(job, chunk)
                select = native_select(self.schema, chunk, job.has_header, typed=False)
                return native.written(job, storage, chunk, select, "json")
        except native.Fallback:
            return write_jsonl(job, storage, partial(schema_converter, self.schema, job.chunk_uri))

    def check_header(self, job: ChunkJob, chunk: NativeChunk) -> None:
        if job.has_header:
            self.schema.check_header(chunk.names, job.chunk_uri)
