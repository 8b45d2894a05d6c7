"""The manifest: what a split produced, written last and only on success."""

from dataclasses import asdict, dataclass, field
from typing import Any

from s3split.records import corrupt, read_record
from s3split.storage import ObjectInfo, Storage

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
    delimiter: str | None = ","  # None: from a ``sep=`` line, else detected (``sniff``)
    quotechar: str = '"'
    strict: bool = False  # refuse what RFC 4180 forbids instead of reading it as csv.reader does
    encoding: str | None = None  # None: UTF-8, or what a UTF-16/32 byte order mark says
    skip_lines: int = 0  # physical lines before the header (a report's preamble), dropped


UTF8_OFFSETS = "UTF-8 bytes of the transcoded source"
SOURCE_OFFSETS = "source bytes"


@dataclass(frozen=True)
class SourceFormat:
    """How the source was read, as found (the settings say what was asked): chunks are always
    UTF-8 with ``delimiter``. Offsets (``data_start``, each chunk's ``source_offset``, an
    error's byte) count ``offsets``: source bytes, or, for a transcoded source, bytes of its
    UTF-8 text (the decompressed ones for a .gz/.zst source)."""

    delimiter: str = ","
    delimiter_from: str = "option"  # option, sep line, detected, default (one column)
    encoding: str = "utf-8"
    encoding_from: str = "default"  # default, byte order mark, option
    offsets: str = SOURCE_OFFSETS
    skip_lines: int = 0
    sep_line: bool = False  # an Excel ``sep=X`` line before the header (not a record)
    data_start: int = 0  # where the first record after the header begins

    @property
    def transcoded(self) -> bool:
        return self.offsets == UTF8_OFFSETS

    def describe(self) -> str:
        """One line for people: how the source was read."""
        shown = {"\t": "tab", " ": "space"}.get(self.delimiter, repr(self.delimiter))
        parts = [f"delimiter {shown} ({self.delimiter_from})",
                 f"encoding {self.encoding} ({self.encoding_from})"]
        if self.transcoded:
            parts[-1] += ", transcoded to UTF-8"
        if self.sep_line:
            parts.append("sep= line skipped")
        if self.skip_lines:
            parts.append(f"{self.skip_lines} preamble line{'s' if self.skip_lines != 1 else ''} "
                         "skipped")
        return ", ".join(parts)


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
    format: SourceFormat = field(default_factory=SourceFormat)
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
            "format": asdict(self.format),
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
    def read(cls, storage: Storage, uri: str, remedy: str) -> "Manifest":
        """The manifest at ``uri``; ``RunFileCorrupt`` saying ``remedy`` when it is not one."""
        document = read_record(storage, uri, remedy)
        try:
            return cls.from_dict(document)
        except KeyError as exc:
            raise corrupt(uri, f"not a manifest: no {exc} field", remedy) from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise corrupt(uri, f"not a manifest: {exc}", remedy) from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        return cls(
            source=ObjectInfo(**data["source"]),
            settings=SplitSettings(**data["settings"]),
            header=data["header"],
            header_bytes=data["header_bytes"],
            bom=data["bom"],
            chunks=[ChunkEntry(**c) for c in data["chunks"]],
            format=SourceFormat(**data["format"]) if "format" in data else _format_of(data),
            assembly=data.get("assembly"),
        )


def _format_of(data: dict[str, Any]) -> SourceFormat:
    """A manifest written before the format was recorded: UTF-8, the delimiter given."""
    return SourceFormat(delimiter=data["settings"].get("delimiter") or ",",
                        data_start=data["header_bytes"] + (3 if data["bom"] else 0))
