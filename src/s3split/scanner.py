"""Finding CSV record boundaries in raw bytes, a block at a time.

A record ends at a newline that is not inside a quoted field. In RFC 4180 a
byte is inside a quoted field exactly when an odd number of quote characters
precede it (a doubled quote ``""`` toggles twice), so the whole scan state at
any byte offset is one bool, and a block can be scanned with C-level bytes
methods and no per-row Python loop.
"""

from dataclasses import dataclass

from s3split.errors import InvalidOption

NEWLINE = b"\n"


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


@dataclass(frozen=True)
class BlockCount:
    """What a span of bytes holds: record ends, newlines, and the quote state after it."""

    records: int
    lines: int
    in_quotes: bool


class Scanner:
    """Counts and finds record ends (newlines outside quoted fields)."""

    def __init__(self, quote: bytes = b'"') -> None:
        self.quote = quote
        self._pair = quote + quote
        self._not_marks = bytes(range(256)).translate(None, quote + NEWLINE)

    def count(self, data: bytes, in_quotes: bool) -> BlockCount:
        """Count the record ends in ``data``, which starts in quote state ``in_quotes``."""
        if self.quote not in data:
            lines = data.count(NEWLINE)
            return BlockCount(0 if in_quotes else lines, lines, in_quotes)
        # Keep only quotes and newlines, then drop adjacent quote pairs: that
        # keeps the parity at every newline, and what is left is mostly newlines.
        marks = data.translate(None, self._not_marks)
        lines = marks.count(NEWLINE)
        quotes = len(marks) - lines
        pieces = marks.replace(self._pair, b"").split(self.quote)
        quoted = pieces[0::2] if in_quotes else pieces[1::2]
        quoted_newlines = sum(map(len, quoted))
        return BlockCount(lines - quoted_newlines, lines, in_quotes ^ bool(quotes & 1))

    def find_record_end(self, data: bytes, start: int, in_quotes: bool) -> int:
        """Index just past the first record end at or after ``start``, or -1 if none."""
        quote, pos = self.quote, start
        while True:
            if in_quotes:
                close = data.find(quote, pos)
                if close < 0:
                    return -1
                pos, in_quotes = close + 1, False
                continue
            newline = data.find(NEWLINE, pos)
            if newline < 0:
                return -1
            opening = data.find(quote, pos, newline)
            if opening < 0:
                return newline + 1
            pos, in_quotes = opening + 1, True

    def find_nth_record_end(self, data: bytes, start: int, n: int, in_quotes: bool) -> int:
        """Index just past the ``n``-th record end at or after ``start``, or -1."""
        pos = start
        for _ in range(n):
            pos = self.find_record_end(data, pos, in_quotes)
            if pos < 0:
                return -1
            in_quotes = False
        return pos

    def last_opening_quote(self, data: bytes, in_quotes: bool = True) -> int:
        """Where the last quoted field in ``data`` began, or -1 if it began before ``data``.

        ``in_quotes`` is the state at the end of ``data``. A quote right after a
        closing quote is the second half of an escaped ``""`` and opens nothing.
        """
        quote = self.quote
        at = data.rfind(quote)
        if at >= 0 and not in_quotes:
            at = data.rfind(quote, 0, at)  # the last quote closed; the one before it opened
        while at > 0 and data[at - 1:at] == quote:
            at = data.rfind(quote, 0, at - 1)
        return at
