"""Where a chunk closes: the one rule the single pass (``splitter``) and the range scan
(``ranges``) both follow, so that both give the same chunks.

By size, a chunk closes at the first record end at or after a *target*: the end of the header
(``data_start``) plus a whole number of chunk sizes. Targets are absolute: each depends only on
where the header ends and on the chunk size, never on where the chunk before closed. That is
what makes the range scan possible: a scan of any byte range knows every target inside it
without knowing anything of the ranges before it, reports the first eligible record end after
each, and the ranges combine by simply taking those in order. (A target counted from the
previous chunk's end would make every range wait for the one before it.) A record longer than
a chunk passes several targets: its end serves the first, and the next target is the first
one after it.

One record end is not eligible: where the header ends in a bare CR, a chunk may not start with
an LF (``csv.reader`` would read the header's CR and that LF as one line end), so the chunk
goes on past such an end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

    from s3split.split.scanner import Positions

LF = 0x0A


def next_target(data_start: int, chunk_size: int, boundary: int) -> int:
    """The first target after a chunk that closed at ``boundary``."""
    return data_start + ((boundary - data_start) // chunk_size + 1) * chunk_size


def target_between(data_start: int, chunk_size: int, last: int, end: int) -> bool:
    """Whether a target lies in ``(last, end]``."""
    return (end - data_start) // chunk_size > (last - data_start) // chunk_size


def first_after_targets(data_start: int, chunk_size: int, base: int,
                        eligible: Positions) -> npt.NDArray[np.bool_]:
    """Which of the eligible record ends of a block at ``base`` (offsets in the block, in
    order) are the first at or after a target: those with a target between them and the
    eligible end before them (or the block's start)."""
    k = (eligible + (base - data_start)) // chunk_size
    before = np.empty_like(k)
    if len(k):
        before[0] = (base - data_start) // chunk_size
        before[1:] = k[:-1]
    first: npt.NDArray[np.bool_] = k > before
    return first


def swallowed_by_header(header: bytes, following: bytes) -> bool:
    """Whether a record end followed by ``following`` (its next byte; empty: not known yet)
    may not close a chunk, the header ending in a bare CR."""
    return header.endswith(b"\r") and following[:1] in (b"\n", b"")


def not_before_lf(data: bytes, after: bytes, ends: Positions) -> npt.NDArray[np.bool_]:
    """Which record ends of ``data`` (``after``: the byte that follows it) no LF follows: where
    the header ends in a bare CR, only those are eligible."""
    padded = np.frombuffer(data + (after or b"\0"), np.uint8)
    eligible: npt.NDArray[np.bool_] = padded[ends] != LF
    return eligible
