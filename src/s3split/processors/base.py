"""What a processor is given and returns: the types every processor (built-in or custom) uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from s3split.storage import Storage

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
    manifest_etag: str  # the split's identity: the manifest's version (a new split, a new one)
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
    # The records the output holds, where that is not one per accepted record (``sql``: the
    # rows its query returned); None: ``rows_out``.
    records_written: int | None = None


class Processor(Protocol):
    @property
    def extension(self) -> str: ...

    def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult: ...
