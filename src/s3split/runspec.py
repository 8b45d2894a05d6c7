"""A run: its settings (small enough to travel in the state machine's state) and its layout.

    <location>/chunks/part-NNNNN.csv + manifest.json   the split
    <location>/results/part-NNNNN.<ext>                 what the processor wrote
    <location>/status/part-NNNNN.json                   one record per chunk attempt outcome
    <location>/report.json                              written by Summarize
    <location>/run.json                                 this spec, for resume
"""

from dataclasses import asdict, dataclass
from typing import Any

from s3split.manifest import MANIFEST_NAME, SplitSettings
from s3split.storage import join


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    source: str
    location: str
    chunk_size: int
    lanes: int
    wait_seconds: int
    processor: str
    tolerate: str
    # How to read the source (as `s3split split` takes them); chunk_rows replaces chunk_size.
    chunk_rows: int | None = None
    header: bool = True
    delimiter: str = ","
    quotechar: str = '"'
    strict: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSpec":
        return cls(**data)

    @property
    def split_settings(self) -> SplitSettings:
        return SplitSettings(chunk_size=None if self.chunk_rows else self.chunk_size,
                             chunk_rows=self.chunk_rows, header=self.header,
                             delimiter=self.delimiter, quotechar=self.quotechar,
                             strict=self.strict)

    @property
    def chunks(self) -> str:
        return join(self.location, "chunks")

    @property
    def manifest(self) -> str:
        return join(self.location, "chunks", MANIFEST_NAME)

    @property
    def report(self) -> str:
        return join(self.location, "report.json")

    @property
    def spec(self) -> str:
        return join(self.location, "run.json")

    @property
    def status_dir(self) -> str:
        return join(self.location, "status")

    def status(self, index: int) -> str:
        return join(self.location, "status", f"part-{index:05d}.json")

    def result(self, index: int, extension: str) -> str:
        return join(self.location, "results", f"part-{index:05d}.{extension}")

    def rejects(self, index: int) -> str:
        return join(self.location, "results", f"part-{index:05d}.rejects.jsonl")
