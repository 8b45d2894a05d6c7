"""Checking that a source is UTF-8 while it streams, at a cost below the scan's.

Python's decoder builds a string of every block (slow for text with wide characters); this
check compares instead. UTF-8 is valid exactly when no byte is C0, C1 or F5-FF, the bytes
the lead bytes (C2-F4) claim (the one, two or three after each, by its kind) are exactly
the continuation bytes (80-BF), and the second byte after E0, ED, F0 and F4 lies in their
narrower ranges (no overlong forms, surrogates or code points past U+10FFFF). Each class of
byte is one comparison over the block, packed to bits (``s3split.split.bits``), and the
claims are checked on the bits, 64 bytes a step; C0 and C1 are found by memchr, F5-FF by
the block's maximum. A block of ASCII costs one ``bytes.isascii``. Only a block found
invalid is decoded, to name the byte."""

import codecs
from typing import Final

import numpy as np
import numpy.typing as npt

from s3split.errors import SourceNotUtf8
from s3split.split import bits

# The lead bytes whose second byte has a narrower range than 80-BF: (bound, low) where the
# second byte must be at least bound (low: a lower one is wrong), or below it.
_SECOND = {0xE0: (0xA0, True), 0xED: (0xA0, False), 0xF0: (0x90, True), 0xF4: (0x90, False)}
# The same as a table of the range of the byte after each lead of three or four bytes (80-BF
# after the others); used where such leads are under one in SPARSE_LEADS bytes.
_LOW, _HIGH = np.full(256, 0x80, np.uint8), np.full(256, 0xBF, np.uint8)
for _lead, (_bound, _low) in _SECOND.items():
    if _low:
        _LOW[_lead] = _bound
    else:
        _HIGH[_lead] = _bound - 1
SPARSE_LEADS = 32
_HIGH_BITS = np.uint64(0x8080808080808080)
RESAMPLE = 16  # a dense source's blocks are checked whole; every 16th looks at its density
# Blocks with a non-ASCII byte in under one 8-byte word in GATHER_UNDER gather those words to
# check: above that, finding and gathering them costs more than the check of the whole
# block saves (measured: at one word in 6, the gathering took 30 % longer).
GATHER_UNDER = 16
ENCODING_HINT = ("pass --encoding with the source's encoding (cp1252 for most Windows and "
                 "Excel files, latin-1, utf-16, ...)")


class Utf8Check:
    """Checks a source's bytes in order (``check`` per block, ``finish`` at the end); a
    character cut by a block's end waits for the next block. Each returns the source offset
    of the first byte UTF-8 does not allow, or -1 (``byte``: its value)."""

    def __init__(self) -> None:
        self.carry = b""  # the start of a character the last block ended inside
        self.byte = 0
        self._packer = bits.Packer()
        self._words: npt.NDArray[np.uint64] = np.empty(0, np.uint64)
        self._dense, self._spans = False, 0  # whether the last block was mostly non-ASCII

    def check(self, data: bytes, offset: int) -> int:
        """``data`` starts at source byte ``offset``."""
        if not self.carry and data.isascii():
            return -1
        whole = self.carry + data if self.carry else data
        start = offset - len(self.carry)
        cut = _complete(whole)
        found = self._non_ascii(np.frombuffer(whole, np.uint8, cut))
        raw = whole[:cut] if len(found) == cut else found.tobytes()  # (the same bytes)
        if not _valid(found, raw, self._packer):
            return self._first_invalid(whole[:cut], start)
        self.carry = whole[cut:]
        return -1

    def finish(self, offset: int) -> int:
        """At the source's end (``offset``): a character cut short there is invalid."""
        if not self.carry:
            return -1
        self.byte = self.carry[0]
        return offset - len(self.carry)

    def _non_ascii(self, a: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The 8-byte words of ``a`` that hold a byte above 7F and the word after each (where
        a character begun in one ends), in order, and ``a``'s last bytes: UTF-8 exactly when
        ``a`` is. Cuts between them fall where ASCII stands, so no character spans a cut;
        text with a few accents shrinks to a fraction to check."""
        self._spans += 1
        if self._dense and self._spans % RESAMPLE:  # (as the last block was: look again now
            return a  # and then, text changes slowly)
        whole = len(a) // 8
        words = a[:whole * 8].view(np.uint64)
        if len(self._words) < whole:
            self._words = np.empty(whole, np.uint64)
        high = np.bitwise_and(words, _HIGH_BITS, out=self._words[:whole])
        self._dense = int(np.count_nonzero(high)) * GATHER_UNDER > whole
        if self._dense:  # checking it all costs less than gathering
            return a
        flagged = np.flatnonzero(high)
        keep = np.zeros(whole + 1, bool)
        keep[flagged] = True
        keep[flagged + 1] = True
        gathered = words[np.flatnonzero(keep[:whole])].view(np.uint8)
        return np.concatenate((gathered, a[whole * 8:]))

    def _first_invalid(self, data: bytes, start: int) -> int:
        try:
            codecs.utf_8_decode(data, "strict", True)
        except UnicodeDecodeError as exc:
            self.byte = data[exc.start]
            return start + exc.start
        raise AssertionError(f"bytes at {start} counted as invalid UTF-8 decode")


def not_utf8(uri: str, offset: int, line: int, byte: int) -> SourceNotUtf8:
    """The error for byte ``offset`` (value ``byte``, on ``line``), as both the single pass
    and the range split raise it."""
    return SourceNotUtf8(f"{uri}: not UTF-8: byte {offset} (line {line}) is 0x{byte:02X}, "
                         f"which UTF-8 does not allow there; {ENCODING_HINT}")


# Compressed data that UTF-8 refuses at its second byte: a source named like a plain one
# (``orders.csv`` holding gzip, ``orders.csv.GZ``) is told to take its real name, not an encoding.
MAGIC: Final = ((b"\x1f\x8b", "gzip", ".gz"), (b"\x28\xb5\x2f\xfd", "zstd", ".zst"))


def compressed(uri: str, start: bytes) -> SourceNotUtf8 | None:
    """The error for a source whose first bytes ``start`` are gzip's or zstd's magic."""
    for magic, kind, suffix in MAGIC:
        if start.startswith(magic):
            return SourceNotUtf8(f"{uri}: not UTF-8: byte 1 (line 1) is 0x{magic[1]:02X}: it "
                                 f"starts as {kind}-compressed data does; give it a name "
                                 f"ending in {suffix} to have it decompressed")
    return None


def line_ends(data: bytes) -> int:
    """Line ends in ``data``: LF, CRLF and bare CR each count once."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _complete(data: bytes) -> int:
    """Where the last complete character ends: before a lead byte in the last three bytes
    whose character goes past the end, followed only by continuation bytes (so the bytes
    held back hold no delimiter, quote or line end, and anything invalid is found now)."""
    n = len(data)
    for at in range(max(0, n - 3), n):
        byte = data[at]
        if byte >= 0xC0 and at + _length(byte) > n and \
                all(0x80 <= b < 0xC0 for b in data[at + 1:]):
            return at
    return n


def _cut_short(tail: bytes) -> bool:
    """Whether a lead byte in ``tail`` claims more bytes than follow it there."""
    return any(byte >= 0xC0 and _length(byte) > len(tail) - at for at, byte in enumerate(tail))


def _length(lead: int) -> int:
    return 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


def _valid(a: npt.NDArray[np.uint8], raw: bytes, packer: bits.Packer) -> bool:
    """Whether ``a`` (``raw``'s bytes, no character cut at its end) is UTF-8; see the module
    docstring. Each class of byte (continuation, lead, lead of three or four) is one
    comparison, packed to bits; the rest works on the bits; a byte is found in ``raw`` by
    memchr."""
    top = int(a.max()) if len(a) else 0
    if top < 0x80:
        return True
    if top > 0xF4:
        return False
    if b"\xc0" in raw or b"\xc1" in raw:
        return False
    if _cut_short(raw[-3:]):  # (its claims past the end: lost by the shifts at a word's end)
        return False
    conts = packer.pack(np.less, a.view(np.int8), -64)  # 80-BF
    claims = bits.later(packer.pack(np.greater_equal, a, 0xC0), 1)  # what each lead claims
    if top >= 0xE0:
        threes = packer.pack(np.greater_equal, a, 0xE0)
        claims |= bits.later(threes, 2)
        if top >= 0xF0:
            claims |= bits.later(packer.pack(np.greater_equal, a, 0xF0), 3)
        if not _seconds_ok(a, raw, threes, packer):
            return False
    # The claimed bytes are the continuation bytes: then no two claims overlap (a lead inside
    # another's claim would be claimed, and is not a continuation byte), so every
    # continuation byte is claimed exactly once.
    return bool(np.array_equal(claims, conts))


def _seconds_ok(a: npt.NDArray[np.uint8], raw: bytes, threes: bits.Words,
                packer: bits.Packer) -> bool:
    """The second bytes after E0 and ED (and F0 and F4) in their ranges. Few leads of three
    or four bytes (``threes``, under one in ``SPARSE_LEADS`` bytes): each one's second byte
    gathered and looked up; many (text in CJK characters): each narrow lead that occurs
    (found by memchr) as bits, moved one byte on, against the bytes below A0 (or 90)."""
    if bits.count(threes) * SPARSE_LEADS < len(a):
        at = bits.positions(threes)
        leads, after = a[at], a[np.minimum(at + 1, len(a) - 1)]  # (no lead ends ``a``)
        return not np.any((after < _LOW[leads]) | (after > _HIGH[leads]))
    below: dict[int, bits.Words] = {}
    for lead, (bound, low) in _SECOND.items():
        if bytes((lead,)) not in raw:
            continue
        if bound not in below:  # (80 to bound - 1: the int8 view puts them below bound - 256)
            below[bound] = packer.pack(np.less, a.view(np.int8), bound - 256)
        seconds = bits.later(packer.equal(a, lead), 1)
        if (seconds & below[bound] if low else seconds & ~below[bound]).any():
            return False
    return True
