"""Powertools idempotency for custom processors: a chunk's side effects happen once.

The worker skips a chunk whose status record says ok, but that check comes before the work:
a processor whose side effects were done when its status write (or the response) was lost,
or two deliveries of one chunk at the same time, would do them again. A custom processor is
therefore run through Powertools' ``idempotent_function`` with a DynamoDB persistence layer
(``S3SPLIT_IDEMPOTENCY_TABLE``), keyed by the processor's name, the run, the chunk and the
split's identity (the manifest's version: a split made again, after its chunks expired or
with other settings, may cut chunk N elsewhere, so an earlier chunk N's record must not
answer for it). A repeated delivery gets the saved
``ProcessResult`` back without calling the processor; one that finds another attempt in
progress raises ``ChunkInProgress``, which the state machine retries for longer than the
worker's timeout: an attempt killed mid-chunk leaves its record in progress until its
invocation's time limit (the registered Lambda context), after which a retry runs the chunk
again. Each fresh start of a run has a run id of its own, so a new run of an unchanged
source processes every chunk again rather than getting the last run's results.

The built-in processors are idempotent by construction (outputs written whole, DynamoDB puts
of the same keys) and are never wrapped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyInconsistentStateError,
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.idempotency.serialization.dataclass import (
    DataclassSerializer,
)

from s3split.errors import ChunkInProgress, TransientError
from s3split.processors.base import ChunkJob, Processor, ProcessResult
from s3split.processors.registry import is_builtin
from s3split.processors.settings import Setting
from s3split.storage import Storage
from s3split.transient import is_transient

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

# How long a completed record answers repeated deliveries: beyond the state machine's retries
# and a resume the same day. A new start never reuses it: its run id is its own.
EXPIRES_AFTER_SECONDS = 24 * 60 * 60
_RESULTS = DataclassSerializer(ProcessResult)
# The deployment's idempotency table (the worker's alone; never recorded: not a run's setting).
TABLE = Setting("S3SPLIT_IDEMPOTENCY_TABLE", str)


def idempotency_key(job: ChunkJob) -> dict[str, Any]:
    """What identifies one delivery of a chunk (hashed by Powertools, prefixed by processor)."""
    return {"run_id": job.run_id, "chunk": job.index, "manifest_etag": job.manifest_etag}


class ChunkIdempotency:
    """The deployment's idempotency table; ``guard`` makes a custom processor idempotent."""

    def __init__(self, table: str, client: DynamoDBClient | None = None, *,
                 expires_after_seconds: int = EXPIRES_AFTER_SECONDS) -> None:
        self.table = table
        self.expires_after_seconds = expires_after_seconds
        if client is None:
            from s3split.processors.dynamodb import default_dynamodb_client

            client = default_dynamodb_client()
        self.persistence = DynamoDBPersistenceLayer(table_name=table, boto3_client=client)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ,
                 client: DynamoDBClient | None = None) -> ChunkIdempotency | None:
        """The store when the deployment names a table (``S3SPLIT_IDEMPOTENCY_TABLE``)."""
        table = TABLE.read(env)
        return None if table is None else cls(table, client)

    def guard(self, name: str, processor: Processor,
              context: LambdaContext | None = None) -> Processor:
        """``processor`` (named ``name``) made idempotent, unless it is a built-in.

        ``context`` is the invocation's: an attempt killed mid-chunk blocks others only until
        its time limit. Without it, until the record expires.
        """
        if is_builtin(name):
            return processor
        config = IdempotencyConfig(raise_on_no_idempotency_key=True,
                                   expires_after_seconds=self.expires_after_seconds)
        if context is not None:
            config.register_lambda_context(context)
        return IdempotentProcessor(processor, name, self.table, self.persistence, config)


@dataclass(frozen=True)
class IdempotentProcessor:
    """Calls ``processor`` once per idempotency key; repeats get the saved result."""

    processor: Processor
    name: str
    table: str
    persistence: DynamoDBPersistenceLayer
    config: IdempotencyConfig

    @property
    def extension(self) -> str:
        return self.processor.extension

    def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult:
        once = idempotent_function(
            self._run, data_keyword_argument="key", persistence_store=self.persistence,
            config=self.config, output_serializer=_RESULTS, key_prefix=f"s3split.{self.name}")
        where = f"chunk {job.index} of run {job.run_id} (processor {self.name})"
        try:
            return cast(ProcessResult, once(key=idempotency_key(job), job=job, storage=storage))
        except IdempotencyAlreadyInProgressError:
            raise ChunkInProgress(
                f"{where} is already in progress in another attempt (idempotency table "
                f"{self.table}); retry once it is done or its time limit has passed") from None
        except IdempotencyInconsistentStateError as exc:
            raise TransientError(f"{where}: idempotency table {self.table}: {exc}") from None
        except IdempotencyPersistenceLayerError as exc:
            if exc.__cause__ is not None and is_transient(exc.__cause__):
                raise TransientError(f"{where}: idempotency table {self.table}: "
                                     f"{exc.__cause__}") from exc
            raise

    def _run(self, *, key: dict[str, Any], job: ChunkJob, storage: Storage) -> ProcessResult:
        return self.processor(job, storage)
