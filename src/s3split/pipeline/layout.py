"""Where a run keeps its files, under its location. The one place these names are written.

    <location>/chunks/part-NNNNN.csv + manifest.json   the split
    <location>/results/part-NNNNN.<ext>                 what the processor wrote
    <location>/rejects/part-NNNNN.jsonl                 the rows it rejected (kept out of
                                                        results/, so results/* is data only)
    <location>/status/part-NNNNN.json                   one record per chunk attempt outcome
    <location>/report.json                              written by Summarize
    <location>/results.jsonl                            ``--merge``: the results in order
    <location>/run.json                                 the run's settings, for resume
    <location>/processor.json                           its processor's settings, for resume
    <location>/lock.json                                the run lock (pipeline.run_lock)
    <location>/ranges/                                  a range split's scratch (pipeline.ranges)
"""

from dataclasses import dataclass

from s3split.split.manifest import MANIFEST_NAME
from s3split.storage import join

CHUNKS = "chunks"
RESULTS = "results"
REJECTS = "rejects"
STATUS = "status"
RANGES = "ranges"


@dataclass(frozen=True)
class RunLayout:
    location: str

    @property
    def chunks(self) -> str:
        return join(self.location, CHUNKS)

    @property
    def manifest(self) -> str:
        return join(self.location, CHUNKS, MANIFEST_NAME)

    @property
    def report(self) -> str:
        return join(self.location, "report.json")

    @property
    def merged(self) -> str:
        return self.merged_as("jsonl")

    @property
    def merged_files(self) -> tuple[str, ...]:
        """Every name ``--merge`` may write (a new start deletes them all)."""
        return tuple(self.merged_as(extension) for extension in ("jsonl", "parquet"))

    def merged_as(self, extension: str) -> str:
        return join(self.location, f"results.{extension}")

    @property
    def spec(self) -> str:
        return join(self.location, "run.json")

    @property
    def processor(self) -> str:
        return join(self.location, "processor.json")

    @property
    def manifest_remedy(self) -> str:
        """What to do about a manifest that is not one (the resume splits the source again)."""
        return f"delete it to split the source again (s3split run --resume {self.location})"

    @property
    def lock(self) -> str:
        return join(self.location, "lock.json")

    @property
    def ranges(self) -> str:
        return join(self.location, RANGES)

    @property
    def folders(self) -> tuple[str, ...]:
        names = (CHUNKS, RESULTS, REJECTS, STATUS, RANGES)
        return tuple(join(self.location, name) for name in names)

    @property
    def status_dir(self) -> str:
        return join(self.location, STATUS)

    def status(self, index: int) -> str:
        return join(self.location, STATUS, f"part-{index:05d}.json")

    def result(self, index: int, extension: str) -> str:
        return join(self.location, RESULTS, f"part-{index:05d}.{extension}")

    def rejects(self, index: int) -> str:
        return join(self.location, REJECTS, f"part-{index:05d}.jsonl")
