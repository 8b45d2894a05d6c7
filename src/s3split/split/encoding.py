"""A source's encoding: found from its byte order mark or given (``--encoding``), and the
stream the splitter reads, which is UTF-8 whatever the source's encoding.

A UTF-8 source (no option, no BOM, or ``--encoding utf-8``) is read as it is: offsets count
source bytes, and ``utf8.Utf8Check`` refuses a byte UTF-8 does not allow. Any other encoding
(a UTF-16 or UTF-32 BOM in either byte order, or ``--encoding cp1252``, ``latin-1``, ...) is
decoded and encoded again as UTF-8 while it streams (``Transcoder``); offsets then count the
bytes of that UTF-8 text, and such a source always takes the single pass (ranges of it
cannot be cut without decoding all that precedes them).
"""

import codecs
from types import TracebackType
from typing import IO, Final, cast

from s3split.errors import InvalidOption, SourceUndecodable

UTF8_BOM: Final = b"\xef\xbb\xbf"
# UTF-32 first: its LE mark starts with UTF-16 LE's.
BOMS: Final = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
               (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"), (UTF8_BOM, "utf-8"))
PEEK: Final = 4
FROM_BOM, FROM_OPTION, DEFAULT = "byte order mark", "option", "default"


def codec_name(name: str) -> str:
    """The codec's canonical name (``cp1252``, ``utf-16-le``), or InvalidOption for a name
    that is not a text encoding Python knows."""
    try:
        info = codecs.lookup(name)
        "a\n".encode(info.name).decode(info.name)  # (refuses bytes-to-bytes codecs: base64)
    except (LookupError, ValueError, TypeError):
        raise InvalidOption(f"unknown encoding {name!r}: give a Python codec name such as "
                            "utf-8, cp1252, latin-1, utf-16") from None
    return "utf-8" if info.name == "utf-8-sig" else info.name


def bom_of(start: bytes) -> tuple[bytes, str] | None:
    """The byte order mark ``start`` begins with and the encoding it names."""
    for mark, encoding in BOMS:
        if start.startswith(mark):
            return mark, encoding
    return None


def family(encoding: str) -> str:
    """utf-16 for utf-16, utf-16-le and utf-16-be (a BOM names the byte order)."""
    return encoding[:6] if encoding.startswith(("utf-16", "utf-32")) else encoding


def choose(uri: str, start: bytes, option: str | None) -> tuple[str, str, int]:
    """The source's encoding, where it came from, and how many bytes of BOM to drop before
    transcoding (0 for UTF-8: the splitter records a UTF-8 BOM itself)."""
    found = bom_of(start)
    given = codec_name(option) if option else None
    if found is None:
        if given is None:
            return "utf-8", DEFAULT, 0
        if given in ("utf-16", "utf-32"):  # no mark: Python would guess; say which order
            raise InvalidOption(f"{uri}: --encoding {option} needs a byte order mark and the "
                                f"source has none; pass --encoding {given}-le or {given}-be")
        return given, FROM_OPTION, 0
    mark, encoding = found
    if given is not None and family(given) != family(encoding):
        raise InvalidOption(f"{uri}: it starts with the byte order mark of {encoding}, but "
                            f"--encoding {option} was given; drop --encoding (the mark says "
                            f"{encoding}) or pass --encoding {encoding}")
    if given is not None and given != family(given) and given != encoding:
        raise InvalidOption(f"{uri}: it starts with the byte order mark of {encoding}, but "
                            f"--encoding {option} names the other byte order; drop --encoding")
    origin = FROM_BOM if given is None else FROM_OPTION
    return encoding, origin, 0 if encoding == "utf-8" else len(mark)


class Transcoder:
    """A source in another encoding read as UTF-8 bytes: ``read`` decodes what it reads and
    encodes it again. Not seekable (a resume reads and drops up to its offset);
    ``source_bytes`` counts what was read of the source itself."""

    def __init__(self, raw: IO[bytes], encoding: str, uri: str, skipped: int,
                 origin: str) -> None:
        self.raw, self.encoding, self.uri, self.origin = raw, encoding, uri, origin
        self.decoder = codecs.getincrementaldecoder(encoding)("strict")
        self.source_bytes = skipped
        self.lines = 0  # line ends in the text decoded so far (for errors)
        self.last = ""  # its last character (a CRLF cut by two reads is one line end)

    def read(self, size: int = -1) -> bytes:
        while True:
            data = self.raw.read(size)
            pending = self.decoder.getstate()[0]
            try:
                text = self.decoder.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                raise self._undecodable(pending + data, len(pending), exc) from None
            self.source_bytes += len(data)
            self._count_lines(text)
            out = text.encode("utf-8", "surrogatepass")
            if out or not data:
                return out

    def _count_lines(self, text: str) -> None:
        if text:
            self.lines += _line_ends(self.last + text) - _line_ends(self.last)
            self.last = text[-1]

    def _undecodable(self, data: bytes, pending: int,
                     exc: UnicodeDecodeError) -> SourceUndecodable:
        """``data``: the bytes held back from the last read (``pending`` of them) and this
        read's; the decoder's offsets count from its start, as ``exc.object``'s do."""
        offset = self.source_bytes - pending + exc.start
        before = data[:exc.start].decode(self.encoding, "replace")
        line = self.lines + _line_ends(self.last + before) - _line_ends(self.last) + 1
        bad = " ".join(f"0x{byte:02X}" for byte in data[exc.start:exc.end])
        hint = ("the byte order mark says so but the text is not; check the file, or pass "
                "--encoding with its real encoding" if self.origin == FROM_BOM else
                "pass --encoding with the source's real encoding (utf-8, cp1252, latin-1, ...)")
        return SourceUndecodable(f"{self.uri}: not {self.encoding}: {bad} at source byte {offset} "
                                 f"(line {line}) does not decode ({exc.reason}); {hint}")

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> "Transcoder":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Replay:
    """A stream whose first bytes were read to look for a BOM: they are read again first."""

    def __init__(self, raw: IO[bytes], start: bytes) -> None:
        self.raw, self.start = raw, start

    def read(self, size: int = -1) -> bytes:
        if not self.start:
            return self.raw.read(size)
        head, self.start = self.start, b""
        if size < 0:
            return head + self.raw.read()
        return head if len(head) >= size else head + self.raw.read(size - len(head))

    def seekable(self) -> bool:
        return self.raw.seekable()

    def seek(self, offset: int) -> int:
        self.start = b""
        return self.raw.seek(offset)


def replay(raw: IO[bytes], start: bytes) -> IO[bytes]:
    return cast(IO[bytes], Replay(raw, start))


def peek(raw: IO[bytes]) -> bytes:
    """The stream's first ``PEEK`` bytes (fewer only at its end)."""
    start = b""
    while len(start) < PEEK and (more := raw.read(PEEK - len(start))):
        start += more
    return start


def _line_ends(text: str) -> int:
    return text.count("\n") + text.count("\r") - text.count("\r\n")
