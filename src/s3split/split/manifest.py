"""The manifest: what a split produced, written last and only on success."""

from dataclasses import asdict, dataclass, field
from typing import Any

from s3split.storage import ObjectInfo

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def chunk_name(index: int) -> str:
    return f"part-{index:05d}.csv"


@dataclass(frozen=True)
class SplitSettings:
    """How to split; part of a manifest's identity (same source + settings = same chunks)."""

    chunk_size: int | None = 64 * 1024 * 1024
    chunk_rows: int | None = None
    header: bool = True
    delimiter: str = ","
    quotechar: str = '"'
    strict: bool = False  # refuse what RFC 4180 forbids instead of reading it as csv.reader does


@dataclass(frozen=True)
class ChunkEntry:
    index: int
    uri: str
    bytes: int
    rows: int
    source_offset: int
    source_line: int  # 1-based line of the chunk's first record in the source


@dataclass(frozen=True)
class ResumeToken:
    """Where to continue a split: the next chunk starts at a record boundary ``offset``.

    At a record boundary the quote state is always "outside", so offset, the next
    chunk index and the running counters are the whole state.
    """

    offset: int
    next_index: int
    rows_before: int
    lines_before: int
    source_etag: str | None = None
    source_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ResumeToken":
        return cls(**data)


@dataclass
class Manifest:
    source: ObjectInfo
    settings: SplitSettings
    header: str
    header_bytes: int
    bom: bool
    chunks: list[ChunkEntry] = field(default_factory=list)
    # How the chunks were written, when not streamed through the splitter (a parallel split:
    # {"scan": "ranges", "ranges": R, "jobs": J, "chunks": [method of chunk 0, ...]}). Kept
    # out of the chunk entries so that sequential and parallel manifests agree on them.
    assembly: dict[str, Any] | None = None
    # The stored manifest's version (its ETag) when it was read from storage: the split's
    # identity, which a split made again changes. Not part of the document.
    version: str | None = field(default=None, compare=False)

    @property
    def count(self) -> int:
        return len(self.chunks)

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.chunks)

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in self.chunks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "source": asdict(self.source),
            "settings": asdict(self.settings),
            "header": self.header,
            "header_bytes": self.header_bytes,
            "bom": self.bom,
            "count": self.count,
            "rows": self.rows,
            "bytes": self.bytes,
            "chunks": [asdict(c) for c in self.chunks],
        } | ({"assembly": self.assembly} if self.assembly is not None else {})

    def summary(self) -> dict[str, Any]:
        """The manifest without its chunk list: small enough for logs and state payloads."""
        doc = self.to_dict()
        del doc["chunks"]
        if "assembly" in doc:  # its per-chunk list as a count per method
            assembly = dict(doc["assembly"])
            methods = assembly.pop("chunks", [])
            assembly["methods"] = {m: methods.count(m) for m in sorted(set(methods))}
            doc["assembly"] = assembly
        return doc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        return cls(
            source=ObjectInfo(**data["source"]),
            settings=SplitSettings(**data["settings"]),
            header=data["header"],
            header_bytes=data["header_bytes"],
            bom=data["bom"],
            chunks=[ChunkEntry(**c) for c in data["chunks"]],
            assembly=data.get("assembly"),
        )
