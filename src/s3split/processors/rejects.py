"""Rows a processor cannot use: counted, the first few kept for the status, all written to
the chunk's rejects file (only when there are any)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from types import TracebackType
from typing import IO, Any

from s3split.processors.base import ProcessResult, Record
from s3split.processors.reader import Row
from s3split.storage import Storage

MAX_REJECT_SAMPLES = 20

_ENCODER = json.JSONEncoder(ensure_ascii=False)


class Reject(Exception):
    """A row a processor cannot use; ``str(exc)`` is the reason."""


Convert = Callable[[Row], Record]


class Rejects:
    """Counts rejected rows, keeps the first few, writes all of them (only if any) to ``uri``."""

    def __init__(self, uri: str, storage: Storage) -> None:
        self.uri = uri
        self._storage = storage
        self._files = ExitStack()
        self._out: IO[bytes] | None = None
        self.count = 0
        self.samples: list[dict[str, Any]] = []

    def __enter__(self) -> Rejects:
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
        self._out.write(json_line({"line": row.line, "reason": reason, "fields": row.fields}))

    def result(self, rows_in: int, rows_out: int, output_uri: str) -> ProcessResult:
        rejects_uri = self.uri if self.count else None
        return ProcessResult(rows_in, rows_out, self.count, output_uri, rejects_uri, self.samples)


def accepted(rows: Iterable[Row], convert: Convert, rejects: Rejects) -> Iterator[Record]:
    for row in rows:
        try:
            yield convert(row)
        except Reject as exc:
            rejects.add(row, str(exc))


def json_line(record: Mapping[str, Any]) -> bytes:
    return (_ENCODER.encode(record) + "\n").encode()
