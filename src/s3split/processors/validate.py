"""The ``validate`` processor: a schema (typed, required and extra columns) checked row by
row; rows that match are written as typed JSON, the others rejected with their reasons."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

from s3split.errors import ChunkInvalid, InvalidOption
from s3split.processors.base import ChunkJob, ProcessResult, Record
from s3split.processors.jsonl import unique_names, write_jsonl
from s3split.processors.reader import Row
from s3split.processors.rejects import Convert, Reject
from s3split.storage import Storage

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
            shown = text if len(text) <= 40 else text[:40] + "..."
            raise ValueError(f"{self.name}: not a valid {self.type}: {shown!r}") from None


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
    if kind not in PARSERS:
        raise InvalidOption(f"schema column {name!r}: unknown type {kind!r}; "
                            f"known: {', '.join(PARSERS)}")
    return Column(name, kind, bool(spec.get("required", False)))


def _validator(schema: Schema, uri: str, header: list[str] | None) -> Convert:
    names = unique_names(header) if header is not None else list(schema.columns)
    if header is not None:
        schema.check_header(names, uri)
    columns = [schema.columns.get(name) for name in names]
    exact = header is not None or not schema.extra_columns

    def convert(row: Row) -> Record:
        count = len(row.fields)
        if count != len(names) and (exact or count < len(names)):
            raise Reject(f"expected {'' if exact else 'at least '}{len(names)} fields, got {count}")
        record: Record = {}
        errors: list[str] = []
        for number, text in enumerate(row.fields):
            column = columns[number] if number < len(columns) else None
            if column is None:
                record[names[number] if number < len(names) else f"col{number + 1}"] = text
                continue
            try:
                record[column.name] = column.value(text)
            except ValueError as exc:
                errors.append(str(exc))
        if errors:
            raise Reject("; ".join(errors))
        return record

    return convert


class ValidateProcessor:
    """Rows that match the schema are written as typed JSON; the others are rejected."""

    extension = "jsonl"

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult:
        return write_jsonl(job, storage, partial(_validator, self.schema, job.chunk_uri))
