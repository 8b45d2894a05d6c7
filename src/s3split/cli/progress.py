"""Progress of a run, read from its status records (what the workers wrote). Only counts: a
record is taken for what its state and counts say (a record that is not one is passed over;
the run itself names what is wrong with it)."""

from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from s3split.errors import RunFileCorrupt
from s3split.pipeline.chunk import FAILED, OK
from s3split.pipeline.layout import RunLayout
from s3split.records import read_record
from s3split.storage import Storage, join


@dataclass
class RunProgress:
    """Counts that only grow; each status record is read once."""

    location: str
    storage: Storage
    total: int | None = None
    ok: int = 0
    failed: int = 0
    rows: int = 0
    bytes: int = 0
    _seen: set[str] = field(default_factory=set)

    def poll(self) -> "RunProgress":
        layout = RunLayout(self.location)
        manifest = layout.manifest
        if self.total is None and self.storage.exists(manifest):
            with suppress(RunFileCorrupt):
                self.total = _count(read_record(self.storage, manifest, ""), "count")
        status_dir = layout.status_dir
        for name in self.storage.list(status_dir):
            if name in self._seen or not name.endswith(".json"):
                continue
            try:
                status = read_record(self.storage, join(status_dir, name), "")
            except RunFileCorrupt:
                continue
            rows, size = _count(status, "rows_in"), _count(status, "bytes")
            if status.get("state") not in (OK, FAILED) or (
                    status.get("state") == OK and (rows is None or size is None)):
                continue
            self._seen.add(name)
            if status["state"] == OK:
                self.ok += 1
                self.rows += rows or 0
                self.bytes += size or 0
            else:
                self.failed += 1
        return self


def _count(document: dict[str, Any], name: str) -> int | None:
    value = document.get(name)
    return value if type(value) is int and value >= 0 else None
