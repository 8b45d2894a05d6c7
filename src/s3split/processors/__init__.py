"""What a worker does with one chunk.

Every processor reads the chunk through ``read_rows`` (streamed, one record at a
time) and writes its output with ``Storage.writer``, so an output that exists is
complete. Rows a processor cannot use are rejected, not fatal: they are counted,
written to ``rejects_uri`` and the chunk still succeeds. A chunk that cannot be
read at all (bad UTF-8, binary data, unparseable CSV) raises ``ChunkInvalid``.

The modules: ``base`` (ChunkJob, ProcessResult, the Processor protocol), ``reader`` (a
chunk's records), ``rejects``, the built-ins ``jsonl`` (and noop), ``validate``, ``parquet``,
``sql`` and ``dynamodb`` (each declaring the settings it reads), ``settings`` (what a
declared setting is and how it is read), ``registry`` (name -> processor), ``check`` (Plan's
check), ``recorded_settings`` (what a run records for its resume) and ``idempotency``.

This package re-exports what a custom processor (and a caller picking one) uses; a built-in
processor's module is imported when one of its names is first used, not with the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from s3split.processors.base import ChunkJob, Processor, ProcessResult, Record
from s3split.processors.reader import Row, read_rows
from s3split.processors.registry import BUILTINS, ENTRY_POINT_GROUP, get_processor
from s3split.processors.rejects import MAX_REJECT_SAMPLES, Reject
from s3split.processors.settings import Setting, Settings

if TYPE_CHECKING:
    from s3split.processors.dynamodb import DYNAMODB_CONFIG, DynamoDBProcessor
    from s3split.processors.jsonl import JsonlProcessor, NoopProcessor
    from s3split.processors.validate import Schema, ValidateProcessor

_LAZY = {"DYNAMODB_CONFIG": "dynamodb", "DynamoDBProcessor": "dynamodb",
         "JsonlProcessor": "jsonl", "NoopProcessor": "jsonl", "Schema": "validate",
         "ValidateProcessor": "validate"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "BUILTINS",
    "DYNAMODB_CONFIG",
    "ENTRY_POINT_GROUP",
    "MAX_REJECT_SAMPLES",
    "ChunkJob",
    "DynamoDBProcessor",
    "JsonlProcessor",
    "NoopProcessor",
    "ProcessResult",
    "Processor",
    "Record",
    "Reject",
    "Row",
    "Schema",
    "Setting",
    "Settings",
    "ValidateProcessor",
    "get_processor",
    "read_rows",
]
