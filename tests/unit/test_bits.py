"""The bit arrays of the scanner's fast path against a model: the same bits as one Python int."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from s3split.split import bits

# Words that are mostly empty or mostly full, so that runs cross word boundaries.
word = st.one_of(st.just(0), st.just(2**64 - 1), st.integers(0, 2**64 - 1),
                 st.sampled_from([1, 2**63, 2**63 + 1, 0x8000000000000001 ^ (2**64 - 1)]))
arrays = st.lists(word, min_size=1, max_size=6)


def words(values: list[int]) -> bits.Words:
    return np.array(values, dtype=bits.WORD)


def model(values: list[int]) -> int:
    return sum(v << (64 * i) for i, v in enumerate(values))


def set_bits(values: list[int]) -> list[int]:
    whole = model(values)
    return [i for i in range(64 * len(values)) if whole >> i & 1]


@settings(max_examples=300, deadline=None)
@given(values=arrays, data=st.data())
def test_questions_of_rank_and_place(values: list[int], data: st.DataObject) -> None:
    b, where = words(values), set_bits(values)
    ranked = bits.Ranked(b)
    assert ranked.total == bits.count(b) == len(where)
    assert bits.positions(b).tolist() == where
    for pos in data.draw(st.lists(st.integers(-2, 64 * len(values) + 2), max_size=8)):
        assert ranked.count_below(pos) == sum(1 for i in where if i < pos)
        assert bits.first_from(b, pos) == next((i for i in where if i >= pos), -1)
        assert bits.last_below(b, pos) == max((i for i in where if i < pos), default=-1)
        if 0 <= pos < 64 * len(values):
            assert bits.bit(b, pos) == (pos in where)
    for k in data.draw(st.lists(st.integers(-1, len(where) + 1), max_size=4)):
        assert ranked.nth(k) == (where[k] if 0 <= k < len(where) else -1)


@settings(max_examples=300, deadline=None)
@given(values=arrays, first=st.integers(0, 1), k=st.integers(1, 63), start=st.integers(0, 1))
def test_shifts_and_the_running_parity(values: list[int], first: int, k: int,
                                       start: int) -> None:
    b, whole, size = words(values), model(values), 64 * len(values)
    full = (1 << size) - 1
    assert model(bits.later(b, k).tolist()) == (whole << k) & full
    assert model(bits.byte_before(b, first).tolist()) == ((whole << 1) | first) & full
    assert model(bits.byte_after(b).tolist()) == whole >> 1
    parity = [start ^ (bin(whole & ((2 << i) - 1)).count("1") & 1) for i in range(size)]
    got = bits.prefix_parity(b, start)
    assert [bits.bit(got, i) for i in range(size)] == parity
    assert b.tolist() == values  # (the input is left as it was)


def test_set_bit_and_packing() -> None:
    a = np.frombuffer(b'x"' * 40 + b'"', np.uint8)  # 81 bytes: two words, the second partly
    packed = bits.Packer().equal(a, ord('"'))
    assert bits.positions(packed).tolist() == [*range(1, 80, 2), 80]
    bits.set_bit(packed, 80, 0)
    bits.set_bit(packed, 0, 1)
    assert bits.positions(packed).tolist() == [0, *range(1, 80, 2)]
    assert bits.Packer().pack(np.greater_equal, a, 0x80).tolist() == [0, 0]
