"""What a worker does with one chunk.

Every processor reads the chunk through ``read_rows`` (streamed, one record at a
time) and writes its output with ``Storage.writer``, so an output that exists is
complete. Rows a processor cannot use are rejected, not fatal: they are counted,
written to ``rejects_uri`` and the chunk still succeeds. A chunk that cannot be
read at all (bad UTF-8, binary data, unparseable CSV) raises ``ChunkInvalid``.

The modules: ``base`` (ChunkJob, ProcessResult, the Processor protocol), ``reader`` (a
chunk's records), ``rejects``, the built-ins ``jsonl`` (and noop), ``validate`` and
``dynamodb``, ``registry`` (name -> processor, the configuration), ``settings`` (what a
run records for its resume), ``check`` (Plan's check) and ``idempotency``.

This package re-exports what a custom processor (and a caller picking one) uses.
"""

from s3split.processors.base import ChunkJob, Processor, ProcessResult, Record
from s3split.processors.dynamodb import DYNAMODB_CONFIG, DynamoDBProcessor
from s3split.processors.jsonl import JsonlProcessor, NoopProcessor
from s3split.processors.reader import Row, read_rows
from s3split.processors.registry import (
    BUILTINS,
    ENTRY_POINT_GROUP,
    ProcessorConfig,
    get_processor,
)
from s3split.processors.rejects import MAX_REJECT_SAMPLES, Reject
from s3split.processors.validate import Schema, ValidateProcessor

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
    "ProcessorConfig",
    "Record",
    "Reject",
    "Row",
    "Schema",
    "ValidateProcessor",
    "get_processor",
    "read_rows",
]
