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


def next_target(data_start: int, chunk_size: int, boundary: int) -> int:
    """The first target after a chunk that closed at ``boundary``."""
    return data_start + ((boundary - data_start) // chunk_size + 1) * chunk_size


def target_between(data_start: int, chunk_size: int, last: int, end: int) -> bool:
    """Whether a target lies in ``(last, end]``."""
    return (end - data_start) // chunk_size > (last - data_start) // chunk_size


def swallowed_by_header(header: bytes, following: bytes) -> bool:
    """Whether a record end followed by ``following`` (its next byte; empty: not known yet)
    may not close a chunk, the header ending in a bare CR."""
    return header.endswith(b"\r") and following[:1] in (b"\n", b"")


def before_lf(data: bytes, after: bytes, end: int) -> bool:
    """Whether an LF follows the record end ``end`` of ``data`` (``after``: the byte that
    follows ``data``): where the header ends in a bare CR, such an end is not eligible."""
    return (data[end:end + 1] or after[:1]) == b"\n"
