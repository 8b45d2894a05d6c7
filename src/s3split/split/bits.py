"""A block's byte classes as bit arrays, and the questions the scans ask of them.

Bit ``i`` of word ``w`` stands for byte ``64 * w + i`` of the block. numpy compares a block
with a byte in one pass and packs the answers eight to a byte (``Packer``); from there on every
step works on 64 bytes at once: a class of a megabyte is 16,384 words. What the scans need of
a class is a count, a shift by one byte (the byte before or after each byte), the running
parity of quotes (``prefix_parity``) and, rarely, where a set bit lies (``first_from``,
``last_below``, ``nth``, ``positions``).
"""

from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

Words = npt.NDArray[np.uint64]
WORD: Final = np.dtype("<u8")  # (bit i of a word is byte i of its eight: little-endian)
_ONE, _TOP = np.uint64(1), np.uint64(63)
_DOUBLINGS: Final = tuple(np.uint64(1 << k) for k in range(6))  # shifts by 1, 2, 4 ... 32
Compare = Callable[..., Any]  # a numpy comparison ufunc: (array, value, out=mask)


class Packer:
    """Compares blocks with a value into bit arrays, in a mask reused across blocks (fresh
    megabyte-sized masks would cost more in page faults than the comparisons)."""

    def __init__(self) -> None:
        self._mask = np.zeros(0, bool)

    def equal(self, a: npt.NDArray[Any], value: int) -> Words:
        return self.pack(np.equal, a, value)

    def pack(self, compare: Compare, a: npt.NDArray[Any], value: int) -> Words:
        """``compare(a, value)`` as bits, the bits past ``a``'s end clear."""
        n = len(a)
        padded = -(-n // 64) * 64
        if len(self._mask) < padded:
            self._mask = np.zeros(padded, bool)
        mask = self._mask[:padded]
        compare(a, value, out=mask[:n])
        mask[n:] = False
        words: Words = np.packbits(mask, bitorder="little").view(WORD)
        return words


def count(b: Words) -> int:
    return int(np.bitwise_count(b).sum())


def bit(b: Words, pos: int) -> int:
    return int(b[pos >> 6] >> np.uint64(pos & 63)) & 1


def set_bit(b: Words, pos: int, value: int) -> None:
    mask = np.uint64(1 << (pos & 63))
    if value:
        b[pos >> 6] |= mask
    else:
        b[pos >> 6] &= ~mask


def byte_before(b: Words, first: int) -> Words:
    """Bit ``i`` set where bit ``i - 1`` of ``b`` is; bit 0 is ``first`` (the byte before the
    block)."""
    out = later(b, 1)
    if first:
        out[0] |= _ONE
    return out


def later(b: Words, k: int) -> Words:
    """Bit ``i`` set where bit ``i - k`` of ``b`` is (0 < ``k`` < 64; the first ``k`` bits
    clear)."""
    out: Words = b << np.uint64(k)
    out[1:] |= b[:-1] >> np.uint64(64 - k)
    return out


def byte_after(b: Words) -> Words:
    """Bit ``i`` set where bit ``i + 1`` of ``b`` is (the last bit of the array clear)."""
    out: Words = b >> _ONE
    out[:-1] |= b[1:] << _TOP
    return out


def prefix_parity(q: Words, start: int) -> Words:
    """Bit ``i``: ``start`` xor the parity of the set bits of ``q`` up to and including ``i``
    (within a word by six doubling steps, across words by the parity of the words before)."""
    x = q.copy()
    work = np.empty_like(x)
    for step in _DOUBLINGS:
        np.left_shift(x, step, out=work)
        np.bitwise_xor(x, work, out=x)
    parity = x >> _TOP  # each word's own
    before = np.bitwise_xor.accumulate(parity)
    before ^= parity
    if start:
        before ^= _ONE
    np.bitwise_xor(x, np.negative(before), out=x)  # (0 - 1 is every bit set)
    return x


def _lowest(word: int) -> int:
    return (word & -word).bit_length() - 1


def first_from(b: Words, pos: int) -> int:
    """The first set bit at or after ``pos``, or -1."""
    w = max(pos, 0) >> 6
    if w >= len(b):
        return -1
    word = int(b[w]) >> (max(pos, 0) & 63) << (max(pos, 0) & 63)
    if word:
        return w * 64 + _lowest(word)
    rest = np.flatnonzero(b[w + 1:])
    if not len(rest):
        return -1
    w += 1 + int(rest[0])
    return w * 64 + _lowest(int(b[w]))


def last_below(b: Words, pos: int) -> int:
    """The last set bit before ``pos``, or -1 (looking back a little first: the caller's bit
    is usually near)."""
    if pos <= 0:
        return -1
    w = min(pos >> 6, len(b))
    if w < len(b) and pos & 63:
        word = int(b[w]) & ((1 << (pos & 63)) - 1)
        if word:
            return w * 64 + word.bit_length() - 1
    for low in (max(w - 64, 0), 0):
        rest = np.flatnonzero(b[low:w])
        if len(rest):
            w = low + int(rest[-1])
            return w * 64 + int(b[w]).bit_length() - 1
        w = low
    return -1


class Ranked:
    """A bit array and, once asked a rank, the count of set bits before each word: each
    question after the first costs a few steps, however many a block is asked."""

    def __init__(self, b: Words) -> None:
        self.b = b
        self.total = count(b)
        self._upto: npt.NDArray[np.int64] | None = None  # set bits up to each word's end

    def upto(self) -> npt.NDArray[np.int64]:
        if self._upto is None:
            self._upto = np.cumsum(np.bitwise_count(self.b), dtype=np.int64)
        return self._upto

    def count_below(self, pos: int) -> int:
        """Set bits before position ``pos``."""
        if pos <= 0:
            return 0
        w = pos >> 6
        if w >= len(self.b):
            return self.total
        found = int(self.upto()[w - 1]) if w else 0
        return found + (int(self.b[w]) & ((1 << (pos & 63)) - 1)).bit_count()

    def nth(self, k: int) -> int:
        """The ``k``-th set bit (from 0), or -1."""
        if not 0 <= k < self.total:
            return -1
        upto = self.upto()
        w = int(np.searchsorted(upto, k, side="right"))
        word = int(self.b[w])
        for _ in range(k - (int(upto[w - 1]) if w else 0)):
            word &= word - 1  # (drops the lowest set bit)
        return w * 64 + _lowest(word)


def positions(b: Words) -> npt.NDArray[np.int64]:
    """Every set bit's position, in order (unpacking only the words that hold one, when
    those are under half)."""
    words = np.flatnonzero(b)
    if len(words) * 2 > len(b):
        every: npt.NDArray[np.int64] = np.flatnonzero(
            np.unpackbits(b.view(np.uint8), bitorder="little").view(bool))
        return every
    at = np.flatnonzero(np.unpackbits(b[words].view(np.uint8), bitorder="little").view(bool))
    found: npt.NDArray[np.int64] = words[at >> 6] * 64 + (at & 63)
    return found
