"""The streaming UTF-8 check against Python's decoder, on any bytes cut into any blocks."""

from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3split.split import utf8
from s3split.split.utf8 import Utf8Check

# Characters of every width (those at the edges of the narrower second-byte ranges too), and
# bytes and pairs that are wrong where they stand.
VALID = ["a", ",", "\n", "\u00e9", "\u07ff", "\u0800", "\u0fff", "\ud7ff", "\ue000",
         "\uffff", "\U00010000", "\U0001f600", "\U000fffff", "\U00100000", "\U0010ffff",
         "\u6771"]
WRONG = [b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xc2", b"\xe0\x80\x80", b"\xe0\x9f\xbf",
         b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf",
         b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xff", b"\xe2\x82", b"\xf0\x9f\x98"]
pieces = st.lists(st.one_of(st.sampled_from(VALID).map(str.encode),
                            st.sampled_from(WRONG)), max_size=300)
mostly_valid = st.lists(st.sampled_from(VALID).map(str.encode), max_size=300)


def first_invalid(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return -1


def checked(data: bytes, cuts: list[int]) -> tuple[int, int]:
    """The first offset the check refuses and its byte, cutting ``data`` at ``cuts``."""
    check, pos = Utf8Check(), 0
    for cut in [*sorted(c for c in set(cuts) if 0 < c < len(data)), len(data)]:
        if cut > pos:
            found = check.check(data[pos:cut], pos)
            if found >= 0:
                return found, check.byte
            pos = cut
    found = check.finish(len(data))
    return found, check.byte if found >= 0 else -1


# The second bytes of leads of three and four bytes: gathered (few such leads), or as bits.
@pytest.mark.parametrize("sparse_leads", [10**9, 0], ids=["gathered", "as bits"])
@settings(max_examples=400, deadline=None)
@given(parts=st.one_of(pieces, mostly_valid, mostly_valid.map(lambda p: [*p, b"\xff", *p])),
       cuts=st.lists(st.integers(1, 1200), max_size=4))
def test_the_check_finds_the_first_byte_the_decoder_refuses(sparse_leads: int,
                                                            parts: list[bytes],
                                                            cuts: list[int]) -> None:
    data = b"".join(parts)
    expected = first_invalid(data)
    with mock.patch.object(utf8, "SPARSE_LEADS", sparse_leads):
        found, byte = checked(data, cuts)
    assert found == expected
    if expected >= 0:
        assert byte == data[expected]


# A character cut short right before a lead the block's end holds back: where the bytes the
# check keeps end on a 64-byte word, the shift of the truncated character's claims drops the
# claim past that end, which must not make it look complete.
@pytest.mark.parametrize("short", [b"\xc3", b"\xe2\x82", b"\xe2", b"\xf0\x9f\x98", b"\xf0\x9f",
                                   b"\xf0"])
@pytest.mark.parametrize("held", [b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98"])
@pytest.mark.parametrize("words", [1, 2, 16384])
def test_a_character_cut_short_at_a_words_end_before_a_held_lead(short: bytes, held: bytes,
                                                                 words: int) -> None:
    kept = b"a" * (64 * words - len(short)) + short
    rest = {b"\xc3": b"\xa9", b"\xe2\x82": b"\xac", b"\xf0\x9f\x98": b"\x80"}[held] + b"\n"
    data = kept + held + rest
    assert first_invalid(data) == len(kept) - len(short)
    assert checked(data, [len(kept) + len(held)]) == (len(kept) - len(short), short[0])
