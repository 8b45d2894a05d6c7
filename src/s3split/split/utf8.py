"""Checking that a source is UTF-8 while it streams, at a cost far below the scan's.

Python's decoder builds a string of every block (slow for text with wide characters); this
check counts instead. UTF-8 is valid exactly when no byte is C0, C1 or F5-FF, each lead
byte (C2-F4) is followed by the continuation bytes (80-BF) its kind claims (one, two or
three), every continuation byte is claimed (the counts of both agree), and the second byte
after E0, ED, F0 and F4 lies in their narrower ranges (no overlong forms, surrogates or code
points past U+10FFFF). Each is a comparison over the whole block or a count; a block of
ASCII costs one ``bytes.isascii``. Only a block found invalid is decoded, to name the byte.
"""

import codecs

import numpy as np
import numpy.typing as npt

from s3split.errors import SourceNotUtf8

# The second byte's range after the lead bytes that have a narrower one than 80-BF.
_SECOND = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}
_HIGH_BITS = np.uint64(0x8080808080808080)
RESAMPLE = 16  # a dense source's blocks are checked whole; every 16th looks at its density
ENCODING_HINT = ("pass --encoding with the source's encoding (cp1252 for most Windows and "
                 "Excel files, latin-1, utf-16, ...)")


class Utf8Check:
    """Checks a source's bytes in order (``check`` per block, ``finish`` at the end); a
    character cut by a block's end waits for the next block. Each returns the source offset
    of the first byte UTF-8 does not allow, or -1 (``byte``: its value)."""

    def __init__(self) -> None:
        self.carry = b""  # the start of a character the last block ended inside
        self.byte = 0
        self._masks: list[npt.NDArray[np.bool_]] = []
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
        if not _valid(found, self._buffers(len(found))):
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
        flagged = np.flatnonzero(high)
        self._dense = len(flagged) * 4 > whole
        if self._dense:  # checking it all costs less than gathering
            return a
        keep = np.zeros(whole + 1, bool)
        keep[flagged] = True
        keep[flagged + 1] = True
        gathered = words[np.flatnonzero(keep[:whole])].view(np.uint8)
        return np.concatenate((gathered, a[whole * 8:]))

    def _buffers(self, n: int) -> list[npt.NDArray[np.bool_]]:
        """Masks reused across blocks (fresh ones would cost page faults each block)."""
        if not self._masks or len(self._masks[0]) < n:
            self._masks = [np.empty(max(n, 1), bool) for _ in range(4)]
        return [m[:n] for m in self._masks]

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


def _length(lead: int) -> int:
    return 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


def _valid(a: npt.NDArray[np.uint8], masks: list[npt.NDArray[np.bool_]]) -> bool:
    """Whether ``a`` (no character cut at its end) is UTF-8; see the module docstring."""
    lead, cont, work, work2 = masks
    np.greater_equal(a, 0xC0, out=lead)
    np.less(a.view(np.int8), -64, out=cont)  # 80-BF
    leads, conts = int(np.count_nonzero(lead)), int(np.count_nonzero(cont))
    if not leads:
        return not conts
    if np.any(np.greater(lead[:-1], cont[1:], out=work[:-1])) or lead[-1]:
        return False  # a lead byte not followed by a continuation byte
    if int(np.count_nonzero(np.greater_equal(a, 0xC2, out=work))) != leads:
        return False  # C0 or C1
    claimed = leads
    three = np.greater_equal(a, 0xE0, out=work)
    threes = int(np.count_nonzero(three))
    if threes:
        claimed += threes
        if len(a) < 2 or np.any(np.greater(three[:-2], cont[2:], out=work2[:-2])) \
                or three[-2:].any():
            return False
        four = np.greater_equal(a, 0xF0, out=work)
        fours = int(np.count_nonzero(four))
        if fours:
            claimed += fours
            if len(a) < 3 or np.any(np.greater(four[:-3], cont[3:], out=work2[:-3])) \
                    or four[-3:].any() or np.any(np.greater(a, 0xF4, out=work)):
                return False
        if not _seconds_ok(a, fours > 0, work):
            return False
    return claimed == conts


def _seconds_ok(a: npt.NDArray[np.uint8], fours: bool, work: npt.NDArray[np.bool_]) -> bool:
    """The second bytes after E0 and ED (and F0 and F4) in their ranges."""
    for lead, (low, high) in _SECOND.items():
        if lead >= 0xF0 and not fours:
            continue
        found = np.equal(a[:-1], lead, out=work[:-1])
        if found.any():
            seconds = a[1:][found]
            if seconds.min() < low or seconds.max() > high:
                return False
    return True
