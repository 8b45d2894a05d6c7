"""Which processor a name picks: one table of the built-ins (name -> how it is built from the
deployment's configuration), then entry points of group ``s3split.processors``, then custom
processors named in ``S3SPLIT_PROCESSORS``. The configuration comes from the environment
only, never from an event."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from s3split.errors import InvalidOption
from s3split.processors.base import ChunkJob, Processor, ProcessResult
from s3split.processors.dynamodb import DYNAMODB_TYPES, DynamoDBProcessor
from s3split.processors.jsonl import JsonlProcessor, NoopProcessor
from s3split.processors.validate import Schema, ValidateProcessor
from s3split.storage import Storage

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ENTRY_POINT_GROUP = "s3split.processors"


@dataclass(frozen=True)
class ProcessorConfig:
    """Deployment configuration, from the environment only (never from an event)."""

    dynamodb_table: str | None = None
    dynamodb_types: dict[str, str] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    custom: dict[str, str] = field(default_factory=dict)
    idempotency_table: str | None = None  # custom processors run idempotently (idempotency.py)
    sql: str | None = None  # the sql processor's query (S3SPLIT_SQL, or S3SPLIT_SQL_FILE's)
    sql_format: str | None = None  # its output: jsonl (default) or parquet

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ProcessorConfig:
        schema = _load_schema(_setting(env, "S3SPLIT_SCHEMA"))
        if schema is not None:
            try:
                Schema.parse(schema)
            except InvalidOption as exc:
                raise InvalidOption(f"S3SPLIT_SCHEMA: {exc}") from None
        return cls(
            dynamodb_table=env.get("S3SPLIT_DYNAMODB_TABLE", "").strip() or None,
            dynamodb_types=_parse_types(_setting(env, "S3SPLIT_DYNAMODB_TYPES")),
            schema=schema,
            custom=_parse_custom(env.get("S3SPLIT_PROCESSORS", "")),
            idempotency_table=env.get("S3SPLIT_IDEMPOTENCY_TABLE", "").strip() or None,
            sql=_load_sql(env.get("S3SPLIT_SQL", "").strip(),
                          env.get("S3SPLIT_SQL_FILE", "").strip()),
            sql_format=env.get("S3SPLIT_SQL_FORMAT", "").strip() or None,
        )


SSM_PREFIX = "ssm:"
SSM_MAX_AGE_S = 60.0  # a changed parameter reaches warm functions within this long
_ssm_cache: dict[str, tuple[float, str]] = {}


def _setting(env: Mapping[str, str], name: str) -> str:
    """A setting's value; ``ssm:NAME`` reads SSM parameter NAME (the template keeps settings
    of up to 4 KB there: a Lambda function's environment holds 4 KB in all)."""
    value = env.get(name, "").strip()
    if not value.startswith(SSM_PREFIX):
        return value
    parameter = value.removeprefix(SSM_PREFIX)
    now = time.monotonic()
    cached = _ssm_cache.get(parameter)
    if cached is None or now - cached[0] > SSM_MAX_AGE_S:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            found = boto3.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
        except (ClientError, BotoCoreError) as exc:
            raise InvalidOption(f"{name}: cannot read SSM parameter {parameter}: {exc}") from None
        cached = _ssm_cache[parameter] = (now, found.strip())
    return cached[1]


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


def _load_sql(text: str, path: str) -> str | None:
    if text and path:
        raise InvalidOption("S3SPLIT_SQL and S3SPLIT_SQL_FILE are both set: set one")
    if not path:
        return text or None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidOption(f"S3SPLIT_SQL_FILE: cannot read {path}: {exc}") from None


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


Factory = Callable[[ProcessorConfig, "DynamoDBClient | None"], Processor]


@dataclass(frozen=True)
class Builtin:
    """How a built-in processor is built, and the ``S3SPLIT_*`` settings it reads (a run
    records them so that its resume uses them too: see :mod:`s3split.processors.settings`).

    ``build`` raises InvalidOption naming the setting it lacks; it calls no AWS service.
    """

    build: Factory
    settings: tuple[str, ...] = ()


def _jsonl(config: ProcessorConfig, dynamodb: DynamoDBClient | None) -> Processor:
    return JsonlProcessor()


def _noop(config: ProcessorConfig, dynamodb: DynamoDBClient | None) -> Processor:
    return NoopProcessor()


def _validate(config: ProcessorConfig, dynamodb: DynamoDBClient | None) -> Processor:
    if config.schema is None:
        raise InvalidOption("validate needs a schema: set S3SPLIT_SCHEMA to the schema's JSON "
                            "or the path of a JSON file")
    return ValidateProcessor(Schema.parse(config.schema))


def _parquet(config: ProcessorConfig, dynamodb: DynamoDBClient | None) -> Processor:
    from s3split.processors.parquet import ParquetProcessor

    return ParquetProcessor(Schema.parse(config.schema) if config.schema is not None else None)


def _sql(config: ProcessorConfig, dynamodb: DynamoDBClient | None) -> Processor:
    if config.sql is None:
        raise InvalidOption("sql needs a query: set S3SPLIT_SQL to a SELECT ... FROM chunk, or "
                            "S3SPLIT_SQL_FILE to the path of a file holding one")
    from s3split.processors.sql import SqlProcessor

    return SqlProcessor(config.sql, config.sql_format or "jsonl")


def _dynamodb(config: ProcessorConfig, dynamodb: DynamoDBClient | None) -> Processor:
    if config.dynamodb_table is None:
        raise InvalidOption("dynamodb needs a table: set S3SPLIT_DYNAMODB_TABLE")
    return DynamoDBProcessor(config.dynamodb_table, config.dynamodb_types, dynamodb)


BUILTINS: Mapping[str, Builtin] = MappingProxyType({
    "jsonl": Builtin(_jsonl),
    "validate": Builtin(_validate, ("S3SPLIT_SCHEMA",)),
    "dynamodb": Builtin(_dynamodb, ("S3SPLIT_DYNAMODB_TABLE", "S3SPLIT_DYNAMODB_TYPES")),
    "noop": Builtin(_noop),
    "parquet": Builtin(_parquet, ("S3SPLIT_SCHEMA",)),
    "sql": Builtin(_sql, ("S3SPLIT_SQL", "S3SPLIT_SQL_FORMAT")),
})


def processor_names(config: ProcessorConfig) -> set[str]:
    """Every name a run may pick: built-ins, entry points and custom ones (none imported)."""
    return {*BUILTINS, *_entry_points(), *config.custom}


def check_known(name: str, config: ProcessorConfig) -> None:
    """InvalidOption when processor ``name`` cannot run with ``config``: an unknown name, or a
    built-in without a setting it needs. A custom processor is checked by name only: its code
    is the worker's to load."""
    builtin = BUILTINS.get(name)
    if builtin is not None:
        builtin.build(config, None)
    elif name not in processor_names(config):
        raise _unknown(name, config)


def _unknown(name: str, config: ProcessorConfig) -> InvalidOption:
    known = ", ".join(sorted(processor_names(config)))
    return InvalidOption(f"unknown processor {name!r}; known: {known}")


def get_processor(
    name: str, config: ProcessorConfig, *, dynamodb: DynamoDBClient | None = None
) -> Processor:
    """A built-in processor, else an entry point of group ``s3split.processors``, else a custom one.

    An entry point or custom target is a callable ``(job, storage) -> ProcessResult`` (its
    ``extension`` attribute, default ``jsonl``, names the output's type) or a class of them.
    """
    builtin = BUILTINS.get(name)
    if builtin is not None:
        return builtin.build(config, dynamodb)
    entry_points = _entry_points()
    if name in entry_points:
        try:
            target = entry_points[name].load()
        except (ImportError, AttributeError) as exc:
            raise InvalidOption(f"processor {name} cannot be loaded: {exc}") from None
        return _as_processor(target, name)
    if name in config.custom:
        return _as_processor(_load_target(config.custom[name]), config.custom[name])
    raise _unknown(name, config)
