"""How a source is to be read, checked before anything is read: the CSV dialect's two
characters, the encoding, the preamble, how chunks close. Free of numpy (the scanner's), so
a command checks its options without importing it."""

from dataclasses import dataclass

from s3split.errors import InvalidOption
from s3split.split.encoding import codec_name
from s3split.split.manifest import SplitSettings

MAX_SKIP_LINES = 1_000_000


@dataclass(frozen=True)
class Dialect:
    """The two characters that shape a CSV file's records."""

    delimiter: bytes = b","
    quote: bytes = b'"'

    @classmethod
    def of(cls, delimiter: str, quotechar: str) -> "Dialect":
        """Validate and encode the user's delimiter and quote character."""
        for name, char in (("delimiter", delimiter), ("quotechar", quotechar)):
            if len(char) != 1 or not char.isascii() or char in "\r\n":
                raise InvalidOption(f"invalid {name} {char!r}: must be one ASCII character, "
                                    "not CR or LF")
        if delimiter == quotechar:
            raise InvalidOption(f"delimiter and quotechar must differ (both {delimiter!r})")
        return cls(delimiter.encode(), quotechar.encode())


def validate_settings(settings: SplitSettings) -> None:
    Dialect.of(settings.delimiter or ",", settings.quotechar)
    if settings.encoding is not None:
        codec_name(settings.encoding)
    if not 0 <= settings.skip_lines <= MAX_SKIP_LINES:
        raise InvalidOption(f"invalid skip lines {settings.skip_lines}: must be 0 to "
                            f"{MAX_SKIP_LINES:,}")
    if (settings.chunk_size is None) == (settings.chunk_rows is None):
        raise InvalidOption("give exactly one of chunk size and chunk rows")
    for name, value in (("chunk size", settings.chunk_size), ("chunk rows", settings.chunk_rows)):
        if value is not None and value < 1:
            raise InvalidOption(f"invalid {name} {value}: must be at least 1")
