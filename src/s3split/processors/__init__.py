"""What a worker does with one chunk.

Every processor reads the chunk through ``read_rows`` (streamed, one record at a
time) and writes its output with ``Storage.writer``, so an output that exists is
complete. Rows a processor cannot use are rejected, not fatal: they are counted,
written to ``rejects_uri`` and the chunk still succeeds. A chunk that cannot be
read at all (bad UTF-8, binary data, unparseable CSV) raises ``ChunkInvalid``.
"""

from __future__ import annotations

import codecs
import csv
import importlib
import importlib.metadata
import io
import json
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, localcontext
from functools import cache, partial
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Protocol, cast
from weakref import WeakKeyDictionary

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from s3split.errors import ChunkInvalid, ChunkMisaligned, InvalidOption, TransientError
from s3split.storage import Storage
from s3split.transient import is_transient

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import WriteRequestTypeDef

ENTRY_POINT_GROUP = "s3split.processors"
MAX_REJECT_SAMPLES = 20
BATCH_SIZE = 25
BACKOFF_BASE = 0.05
BACKOFF_CAP = 5.0
RETRY_ROUNDS = 8
SCAN_BLOCK = 1024 * 1024
FIELD_SIZE_LIMIT = csv.field_size_limit()  # the csv module's default, for small chunks
DYNAMODB_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})
DYNAMODB_TYPES = frozenset({"N", "S", "BOOL"})

_ENCODER = json.JSONEncoder(ensure_ascii=False)
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

Record = dict[str, Any]


@dataclass(frozen=True)
class ChunkJob:
    """Everything a processor needs about one chunk."""

    index: int
    chunk_uri: str
    output_uri: str
    rejects_uri: str
    source_line: int
    has_header: bool
    delimiter: str
    quotechar: str
    run_id: str
    manifest_etag: str
    rows: int = -1  # records the manifest counts in the chunk (-1: not known, not checked)
    bytes: int = 0  # the chunk's size: no field can be longer


@dataclass(frozen=True)
class ProcessResult:
    """What became of a chunk's records: ``rows_in == rows_out + rows_rejected``."""

    rows_in: int
    rows_out: int
    rows_rejected: int
    output_uri: str | None
    rejects_uri: str | None
    rejects: list[dict[str, Any]] = field(default_factory=list)


class Processor(Protocol):
    @property
    def extension(self) -> str: ...

    def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult: ...


class Row(NamedTuple):
    line: int
    fields: list[str]


class ChunkRows(Iterator[Row]):
    """The records of one chunk, streamed; ``header`` holds the header's fields (or None)."""

    def __init__(self, job: ChunkJob, storage: Storage) -> None:
        self._job = job
        self._storage = storage
        stream = storage.open_read(job.chunk_uri)
        # newline="": CR, LF and CRLF end lines, as csv.reader expects and the splitter assumes.
        self._text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        _allow_fields_up_to(job.bytes)
        self._reader = csv.reader(
            self._checked_lines(), delimiter=job.delimiter, quotechar=job.quotechar
        )
        self._header_lines: int | None = None if job.has_header else 0
        self.count = 0
        try:
            self.header = self._next_fields() if job.has_header else None
        except BaseException:
            self.close()
            raise
        self._header_lines = self._reader.line_num

    def __next__(self) -> Row:
        first_line = self._reader.line_num + 1
        fields = self._next_fields()
        if fields is None:
            self.close()
            self._check_count(final=True)
            raise StopIteration
        self.count += 1
        self._check_count(final=False)
        return Row(self._source_line(first_line), fields)

    def _check_count(self, final: bool) -> None:
        """The parser must find the records the splitter counted; if not, the chunk's records
        are cut in the wrong places and no output of it may count."""
        expected = self._job.rows
        if expected >= 0 and (self.count > expected or (final and self.count != expected)):
            found = f"{self.count}" if final else f"more than {expected}"
            raise ChunkMisaligned(
                f"{self._job.chunk_uri}: chunk {self._job.index} should hold {expected} records "
                f"(manifest) but the CSV parser finds {found}: the split and the parser disagree")

    def __enter__(self) -> ChunkRows:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._text.close()

    def _checked_lines(self) -> Iterator[str]:
        for number, line in enumerate(self._text, 1):
            if "\x00" in line:
                raise ChunkInvalid(
                    f"{self._job.chunk_uri}: binary data (NUL byte) at {self._where(number)}"
                )
            yield line

    def _next_fields(self) -> list[str] | None:
        try:
            return next(self._reader, None)
        except UnicodeDecodeError as exc:
            raise self._invalid_utf8(exc) from None
        except csv.Error as exc:
            where = self._where(self._reader.line_num)
            raise ChunkInvalid(f"{self._job.chunk_uri}: unreadable CSV at {where}: {exc}") from None

    def _source_line(self, chunk_line: int, header_lines: int | None = None) -> int:
        header_lines = self._header_lines if header_lines is None else header_lines
        return self._job.source_line + chunk_line - 1 - (header_lines or 0)

    def _where(self, chunk_line: int) -> str:
        header_lines = self._header_lines
        if header_lines is None:
            header_lines = self._count_header_lines()
        if chunk_line <= header_lines:
            return f"line {chunk_line} of the chunk (the header)"
        return f"source line {self._source_line(chunk_line, header_lines)}"

    def _count_header_lines(self) -> int:
        """Lines of the header, for errors found before it is read (decoding reads ahead)."""
        job = self._job
        with self._storage.open_read(job.chunk_uri) as stream:
            text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
            reader = csv.reader(text, delimiter=job.delimiter, quotechar=job.quotechar)
            with suppress(csv.Error):
                next(reader, None)
            return reader.line_num

    def _invalid_utf8(self, exc: UnicodeDecodeError) -> ChunkInvalid:
        uri = self._job.chunk_uri
        with self._storage.open_read(uri) as stream:
            found = find_invalid_utf8(stream)
        if found is None:
            return ChunkInvalid(f"{uri}: invalid UTF-8 ({exc.reason})")
        offset, chunk_line = found
        return ChunkInvalid(
            f"{uri}: invalid UTF-8 at byte {offset} of the chunk ({self._where(chunk_line)})"
        )


def _allow_fields_up_to(size: int) -> None:
    """csv's field size limit (128 KiB by default, process-wide; a worker reads one chunk at a
    time) must not fail a chunk whose record is as large as the chunk itself."""
    csv.field_size_limit(max(FIELD_SIZE_LIMIT, size))


def read_rows(job: ChunkJob, storage: Storage) -> ChunkRows:
    """Stream the chunk's records; the header (when ``job.has_header``) is ``.header``."""
    return ChunkRows(job, storage)


def find_invalid_utf8(stream: IO[bytes], block: int = SCAN_BLOCK) -> tuple[int, int] | None:
    """Byte offset of the first byte that is not UTF-8, and the 1-based line it is on."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = newlines = 0
    while True:
        data = stream.read(block)
        pending = decoder.getstate()[0]
        try:
            decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            before = (pending + data)[: exc.start]
            return offset - len(pending) + exc.start, newlines + before.count(b"\n") + 1
        if not data:
            return None
        offset += len(data)
        newlines += data.count(b"\n")


class Reject(Exception):
    """A row a processor cannot use; ``str(exc)`` is the reason."""


Convert = Callable[[Row], Record]


class _Rejects:
    """Counts rejected rows, keeps the first few, writes all of them (only if any) to ``uri``."""

    def __init__(self, uri: str, storage: Storage) -> None:
        self.uri = uri
        self._storage = storage
        self._files = ExitStack()
        self._out: IO[bytes] | None = None
        self.count = 0
        self.samples: list[dict[str, Any]] = []

    def __enter__(self) -> _Rejects:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._files.__exit__(kind, exc, tb)

    def add(self, row: Row, reason: str) -> None:
        self.count += 1
        if len(self.samples) < MAX_REJECT_SAMPLES:
            self.samples.append({"line": row.line, "reason": reason})
        if self._out is None:
            self._out = self._files.enter_context(self._storage.writer(self.uri))
        self._out.write(_json_line({"line": row.line, "reason": reason, "fields": row.fields}))

    def result(self, rows_in: int, rows_out: int, output_uri: str) -> ProcessResult:
        rejects_uri = self.uri if self.count else None
        return ProcessResult(rows_in, rows_out, self.count, output_uri, rejects_uri, self.samples)


def _accepted(rows: Iterable[Row], convert: Convert, rejects: _Rejects) -> Iterator[Record]:
    for row in rows:
        try:
            yield convert(row)
        except Reject as exc:
            rejects.add(row, str(exc))


def _json_line(record: Mapping[str, Any]) -> bytes:
    return (_ENCODER.encode(record) + "\n").encode()


def _write_jsonl(
    job: ChunkJob, storage: Storage, converter: Callable[[list[str] | None], Convert]
) -> ProcessResult:
    with read_rows(job, storage) as rows:
        convert = converter(rows.header)
        with storage.writer(job.output_uri) as out, _Rejects(job.rejects_uri, storage) as rejects:
            written = 0
            for record in _accepted(rows, convert, rejects):
                out.write(_json_line(record))
                written += 1
    return rejects.result(rows.count, written, job.output_uri)


@cache
def column_names(count: int) -> tuple[str, ...]:
    """Names of the columns of a chunk without a header: ``col1`` .. ``colN``."""
    return tuple(f"col{i}" for i in range(1, count + 1))


def unique_names(header: list[str]) -> list[str]:
    """The header as keys: empty names become ``colN``, repeated ones get ``_2``, ``_3`` ..
    (linear in the columns: each base name remembers the next suffix to try)."""
    names: list[str] = []
    taken: set[str] = set()
    next_suffix: dict[str, int] = {}
    for number, name in enumerate(header, 1):
        base = name or f"col{number}"
        candidate, suffix = base, next_suffix.get(base, 2)
        while candidate in taken:
            candidate, suffix = f"{base}_{suffix}", suffix + 1
        next_suffix[base] = suffix
        taken.add(candidate)
        names.append(candidate)
    return names


def _ragged(expected: int, got: int) -> Reject:
    return Reject(f"expected {expected} fields, got {got}")


def _object_converter(header: list[str] | None) -> Convert:
    if header is None:
        return lambda row: dict(zip(column_names(len(row.fields)), row.fields, strict=True))
    keys = unique_names(header)

    def convert(row: Row) -> Record:
        if len(row.fields) != len(keys):
            raise _ragged(len(keys), len(row.fields))
        return dict(zip(keys, row.fields, strict=True))

    return convert


class JsonlProcessor:
    """Each record becomes one JSON object keyed by the header; ragged rows are rejected."""

    extension = "jsonl"

    def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult:
        return _write_jsonl(job, storage, _object_converter)


class NoopProcessor:
    """Reads and counts the rows and writes an empty output: for benchmarks of orchestration."""

    extension = "jsonl"

    def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult:
        with read_rows(job, storage) as rows:
            rows_in = sum(1 for _ in rows)
        with storage.writer(job.output_uri):
            pass
        return ProcessResult(rows_in, rows_in, 0, job.output_uri, None, [])


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


def _parse_bool(value: str) -> bool:
    return _BOOLS[value.lower()]


PARSERS: dict[str, Callable[[str], Any]] = {
    "int": _parse_int,
    "float": _parse_float,
    "str": str,
    "date": _parse_date,
    "datetime": _parse_datetime,
    "bool": _parse_bool,
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
        return _write_jsonl(job, storage, partial(_validator, self.schema, job.chunk_uri))


def _dynamodb_number(text: str) -> str:
    """``text`` as a DynamoDB number (38 digits, 1e-130 .. 1e126); ValueError if it is not."""
    if not _NUMBER.fullmatch(text):
        raise ValueError
    with localcontext(prec=1000):
        number = Decimal(text)
        digits = number.normalize().as_tuple().digits
    if number and (len(digits) > 38 or not -130 <= number.adjusted() <= 125):
        raise ValueError
    return str(number)


def _attribute(kind: str, text: str) -> dict[str, Any]:
    if kind == "N":
        return {"N": _dynamodb_number(text)}
    if kind == "BOOL":
        return {"BOOL": _parse_bool(text)}
    return {"S": text}


def _item_converter(header: list[str] | None, types: Mapping[str, str], keys: list[str]) -> Convert:
    names = unique_names(header) if header is not None else None

    def convert(row: Row) -> Record:
        if names is not None and len(row.fields) != len(names):
            raise _ragged(len(names), len(row.fields))
        item: Record = {}
        errors: list[str] = []
        for name, text in zip(names or column_names(len(row.fields)), row.fields, strict=True):
            if text == "":
                continue
            kind = types.get(name, "S")
            try:
                item[name] = _attribute(kind, text)
            except (ValueError, KeyError):
                errors.append(f"{name}: not a valid {kind}: {text[:40]!r}")
        missing = [key for key in keys if key not in item]
        if missing:
            errors.append(f"missing key attribute(s): {', '.join(missing)}")
        if errors:
            raise Reject("; ".join(errors))
        return item

    return convert


def _identity(item: Record, keys: list[str]) -> tuple[Any, ...]:
    values = (next(iter(item[key].items())) for key in keys)
    return tuple(Decimal(value) if kind == "N" else value for kind, value in values)


def backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): full jitter, capped."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


def _dynamodb_error(exc: ClientError, table: str) -> Exception:
    error = exc.response.get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", "")
    if is_transient(exc):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return TransientError(f"DynamoDB table {table}: {code or status}: {message}")
    if code == "ResourceNotFoundException":
        return InvalidOption(f"DynamoDB table not found: {table}")
    if code == "ValidationException":
        return ChunkInvalid(f"DynamoDB table {table} refused a batch: {message}")
    return exc


_KEY_TYPES: WeakKeyDictionary[DynamoDBClient, dict[str, dict[str, str]]] = WeakKeyDictionary()


@cache
def default_dynamodb_client() -> DynamoDBClient:
    return boto3.client("dynamodb", config=DYNAMODB_CONFIG)


class DynamoDBProcessor:
    """Imports the rows into a DynamoDB table, 25 puts per BatchWriteItem; reruns overwrite.

    The output is one line ``{"imported": n}``, written once every row is in the table.
    """

    extension = "jsonl"

    def __init__(
        self,
        table: str,
        types: Mapping[str, str],
        client: DynamoDBClient | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.table = table
        self.types = dict(types)
        self._client = client
        self._sleep = sleep

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = default_dynamodb_client()
        return self._client

    def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult:
        key_types = self.key_types()
        types = {**key_types, **self.types}
        with read_rows(job, storage) as rows, _Rejects(job.rejects_uri, storage) as rejects:
            convert = _item_converter(rows.header, types, list(key_types))
            imported = self._import(_accepted(rows, convert, rejects), list(key_types))
        with storage.writer(job.output_uri) as out:
            out.write(_json_line({"imported": imported}))
        return rejects.result(rows.count, imported, job.output_uri)

    def key_types(self) -> dict[str, str]:
        """The table's key attributes (partition first) and their types; asked once per client."""
        known = _KEY_TYPES.setdefault(self.client, {})
        if self.table not in known:
            known[self.table] = self._describe_keys()
        for name, kind in known[self.table].items():
            self._check_key_type(name, kind)
        return known[self.table]

    def _describe_keys(self) -> dict[str, str]:
        try:
            table = self.client.describe_table(TableName=self.table)["Table"]
        except ClientError as exc:
            raise _dynamodb_error(exc, self.table) from None
        except (BotoConnectionError, HTTPClientError) as exc:
            raise TransientError(f"DynamoDB table {self.table}: {exc}") from None
        defined = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
        keys = sorted(table["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
        return {k["AttributeName"]: defined[k["AttributeName"]] for k in keys}

    def _check_key_type(self, name: str, kind: str) -> None:
        where = f"DynamoDB table {self.table}: key {name} is of type {kind}"
        if kind not in DYNAMODB_TYPES:
            raise InvalidOption(f"{where}, which s3split cannot write")
        if self.types.get(name, kind) != kind:
            raise InvalidOption(f"{where}; S3SPLIT_DYNAMODB_TYPES says {self.types[name]}")

    def _import(self, items: Iterable[Record], keys: list[str]) -> int:
        count = 0
        batch: dict[tuple[Any, ...], Record] = {}
        for item in items:
            count += 1
            identity = _identity(item, keys)
            if identity not in batch and len(batch) == BATCH_SIZE:
                self._write_batch(list(batch.values()))
                batch = {}
            batch[identity] = item
        if batch:
            self._write_batch(list(batch.values()))
        return count

    def _write_batch(self, items: list[Record]) -> None:
        pending = self._send([{"PutRequest": {"Item": item}} for item in items])
        for attempt in range(RETRY_ROUNDS):
            if not pending:
                return
            self._sleep(backoff(attempt))
            pending = self._send(pending)
        if pending:
            raise TransientError(f"DynamoDB table {self.table}: {len(pending)} items still "
                                 f"unprocessed after {RETRY_ROUNDS} retries")

    def _send(self, requests: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
        request_items = cast("dict[str, list[WriteRequestTypeDef]]", {self.table: list(requests)})
        try:
            response = self.client.batch_write_item(RequestItems=request_items)
        except ClientError as exc:
            raise _dynamodb_error(exc, self.table) from None
        except (BotoConnectionError, HTTPClientError) as exc:
            raise TransientError(f"DynamoDB table {self.table}: {exc}") from None
        return response.get("UnprocessedItems", {}).get(self.table, [])


@dataclass(frozen=True)
class ProcessorConfig:
    """Deployment configuration, from the environment only (never from an event)."""

    dynamodb_table: str | None = None
    dynamodb_types: dict[str, str] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    custom: dict[str, str] = field(default_factory=dict)
    idempotency_table: str | None = None  # custom processors run idempotently (idempotency.py)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ProcessorConfig:
        schema = _load_schema(env.get("S3SPLIT_SCHEMA", "").strip())
        if schema is not None:
            try:
                Schema.parse(schema)
            except InvalidOption as exc:
                raise InvalidOption(f"S3SPLIT_SCHEMA: {exc}") from None
        return cls(
            dynamodb_table=env.get("S3SPLIT_DYNAMODB_TABLE", "").strip() or None,
            dynamodb_types=_parse_types(env.get("S3SPLIT_DYNAMODB_TYPES", "").strip()),
            schema=schema,
            custom=_parse_custom(env.get("S3SPLIT_PROCESSORS", "")),
            idempotency_table=env.get("S3SPLIT_IDEMPOTENCY_TABLE", "").strip() or None,
        )


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidOption(f"{what} is not valid JSON: {exc}") from None


def _load_schema(value: str) -> dict[str, Any] | None:
    if not value:
        return None
    if value.startswith("{"):
        document = _load_json(value, "S3SPLIT_SCHEMA")
    else:
        try:
            with open(value, encoding="utf-8") as f:
                document = _load_json(f.read(), f"S3SPLIT_SCHEMA file {value}")
        except OSError as exc:
            raise InvalidOption(f"S3SPLIT_SCHEMA: cannot read {value}: {exc.strerror}") from None
    if not isinstance(document, dict):
        raise InvalidOption("S3SPLIT_SCHEMA: expected a JSON object")
    return document


def _parse_types(value: str) -> dict[str, str]:
    types = _load_json(value, "S3SPLIT_DYNAMODB_TYPES") if value else {}
    if not isinstance(types, dict) or not all(t in DYNAMODB_TYPES for t in types.values()):
        raise InvalidOption(f"S3SPLIT_DYNAMODB_TYPES: expected {{\"column\": "
                            f"{' | '.join(sorted(DYNAMODB_TYPES))}}}, got {value}")
    return types


def _parse_custom(value: str) -> dict[str, str]:
    custom: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        name, _, target = (part.strip() for part in entry.partition("="))
        if not name or ":" not in target:
            raise InvalidOption(f"S3SPLIT_PROCESSORS: expected name=module:function, got {entry!r}")
        custom[name] = target
    return custom


def _as_processor(target: Any, origin: str) -> Processor:
    if isinstance(target, type):
        target = target()
    if not callable(target):
        raise InvalidOption(f"processor {origin} is not callable")
    if not hasattr(target, "extension"):
        return _FunctionProcessor(target)
    return cast(Processor, target)


@dataclass(frozen=True)
class _FunctionProcessor:
    function: Callable[[ChunkJob, Storage], ProcessResult]
    extension: str = "jsonl"

    def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult:
        return self.function(job, storage)


def _load_target(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidOption(f"processor {target} cannot be loaded: {exc}") from None
    return found


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _builtin(name: str, config: ProcessorConfig, dynamodb: DynamoDBClient | None) -> Processor:
    if name == "jsonl":
        return JsonlProcessor()
    if name == "noop":
        return NoopProcessor()
    if name == "validate":
        if config.schema is None:
            raise InvalidOption("processor validate needs a schema (S3SPLIT_SCHEMA)")
        return ValidateProcessor(Schema.parse(config.schema))
    if config.dynamodb_table is None:
        raise InvalidOption("processor dynamodb needs a table (S3SPLIT_DYNAMODB_TABLE)")
    return DynamoDBProcessor(config.dynamodb_table, config.dynamodb_types, dynamodb)


BUILTINS = ("jsonl", "validate", "dynamodb", "noop")


def get_processor(
    name: str, config: ProcessorConfig, *, dynamodb: DynamoDBClient | None = None
) -> Processor:
    """A built-in processor, else an entry point of group ``s3split.processors``, else a custom one.

    An entry point or custom target is a callable ``(job, storage) -> ProcessResult`` (its
    ``extension`` attribute, default ``jsonl``, names the output's type) or a class of them.
    """
    if name in BUILTINS:
        return _builtin(name, config, dynamodb)
    entry_points = _entry_points()
    if name in entry_points:
        try:
            target = entry_points[name].load()
        except (ImportError, AttributeError) as exc:
            raise InvalidOption(f"processor {name} cannot be loaded: {exc}") from None
        return _as_processor(target, name)
    if name in config.custom:
        return _as_processor(_load_target(config.custom[name]), config.custom[name])
    known = sorted({*BUILTINS, *entry_points, *config.custom})
    raise InvalidOption(f"unknown processor {name!r}; known: {', '.join(known)}")
