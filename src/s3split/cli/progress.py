"""Progress of a run, read from its status records (what the workers wrote)."""

from contextlib import suppress
from dataclasses import dataclass, field

from s3split.errors import RunFileCorrupt
from s3split.pipeline.chunk import OK, status_problem
from s3split.pipeline.layout import RunLayout
from s3split.records import read_record
from s3split.split.manifest import Manifest
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
            with suppress(RunFileCorrupt):  # (the run itself names what is wrong with it)
                self.total = Manifest.read(self.storage, manifest, "").count
        status_dir = layout.status_dir
        for name in self.storage.list(status_dir):
            if name in self._seen or not name.endswith(".json"):
                continue
            try:
                status = read_record(self.storage, join(status_dir, name), "")
            except RunFileCorrupt:
                continue
            if status_problem(status) is not None:
                continue
            self._seen.add(name)
            if status["state"] == OK:
                self.ok += 1
                self.rows += status["rows_in"]
                self.bytes += status["bytes"]
            else:
                self.failed += 1
        return self
