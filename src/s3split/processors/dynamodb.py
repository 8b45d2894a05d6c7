"""The ``dynamodb`` processor: rows imported into a table, 25 puts per BatchWriteItem, with
the table's key types checked and unprocessed items retried with jittered backoff."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, localcontext
from functools import cache
from typing import TYPE_CHECKING, Any, cast
from weakref import WeakKeyDictionary

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from s3split.errors import ChunkInvalid, InvalidOption, TransientError
from s3split.processors.base import ChunkJob, ProcessResult, Record
from s3split.processors.jsonl import column_names, ragged, unique_names
from s3split.processors.reader import Row, read_rows
from s3split.processors.rejects import Convert, Reject, Rejects, accepted, json_line
from s3split.processors.settings import Setting, Settings, json_document
from s3split.processors.validate import parse_bool
from s3split.storage import Storage
from s3split.transient import is_transient

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import WriteRequestTypeDef

BATCH_SIZE = 25
BACKOFF_BASE = 0.05
BACKOFF_CAP = 5.0
RETRY_ROUNDS = 8
DYNAMODB_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})
DYNAMODB_TYPES = frozenset({"N", "S", "BOOL"})


def _column_types(text: str) -> dict[str, str]:
    types = json_document(text)
    if not isinstance(types, dict) or not all(isinstance(t, str) and t in DYNAMODB_TYPES
                                              for t in types.values()):
        raise InvalidOption(f"expected {{\"column\": {' | '.join(sorted(DYNAMODB_TYPES))}}}, "
                            f"got {text}")
    return types


# The table is where the rows go: recorded, but never taken from a record (a resume's user
# sets it again). The column types are ``ssm:NAME`` in the template.
TABLE = Setting("S3SPLIT_DYNAMODB_TABLE", str, recorded_as=str, destination=True)
TYPES = Setting("S3SPLIT_DYNAMODB_TYPES", _column_types, recorded_as=dict, from_ssm=True)

_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


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
        return {"BOOL": parse_bool(text)}
    return {"S": text}


def _item_converter(header: list[str] | None, types: Mapping[str, str], keys: list[str]) -> Convert:
    names = unique_names(header) if header is not None else None

    def convert(row: Row) -> Record:
        if names is not None and len(row.fields) != len(names):
            raise ragged(len(names), len(row.fields))
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
    settings = (TABLE, TYPES)

    @classmethod
    def from_settings(cls, settings: Settings) -> DynamoDBProcessor:
        table = settings.required(TABLE, "dynamodb needs a table: set S3SPLIT_DYNAMODB_TABLE")
        types: dict[str, str] = settings.get(TYPES) or {}
        return cls(table, types)

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
        with read_rows(job, storage) as rows, Rejects(job.rejects_uri, storage) as rejects:
            convert = _item_converter(rows.header, types, list(key_types))
            imported = self._import(accepted(rows, convert, rejects), list(key_types))
        with storage.writer(job.output_uri) as out:
            out.write(json_line({"imported": imported}))
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
