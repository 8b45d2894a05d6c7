"""parse_size: human byte sizes."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3split.errors import InvalidOption
from s3split.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("64MiB", 64 * 1024**2),
        ("500KB", 500_000),
        ("97", 97),
        ("1", 1),
        ("1b", 1),
        ("1k", 1024),
        ("1K", 1024),
        ("2KiB", 2048),
        ("3mb", 3_000_000),
        ("1M", 1024**2),
        ("1GiB", 1024**3),
        ("2GB", 2_000_000_000),
        ("1TiB", 1024**4),
        ("1.5KiB", 1536),
        (" 7 MiB ", 7 * 1024**2),
        (42, 42),
    ],
)
def test_accepts(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text", ["junk", "", "  ", "MiB", "12XB", "1.2.3", "-5", "5 MiB extra", "0x10", "1e6", "five"])
def test_rejects_junk_naming_the_value(text: str) -> None:
    with pytest.raises(InvalidOption) as info:
        parse_size(text)
    assert f"invalid size {text!r}" in str(info.value)
    assert "64MiB" in str(info.value)  # and says what would do


@pytest.mark.parametrize("text", ["0", "0KB", "0MiB", "0.4", 0, -3])
def test_rejects_zero(text: str | int) -> None:
    with pytest.raises(InvalidOption) as info:
        parse_size(text)
    assert str(info.value) == f"invalid size {text!r}: must be at least 1 byte"


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 10**12), unit=st.sampled_from(["", "b", "KiB", "MB", "gib"]))
def test_number_times_unit(n: int, unit: str) -> None:
    factor = {"": 1, "b": 1, "KiB": 1024, "MB": 1000**2, "gib": 1024**3}[unit]
    assert parse_size(f"{n}{unit}") == n * factor


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (64 * 1024**2, "64.0 MiB"),
                    (3 * 1024**4, "3.0 TiB")])
def test_format_size(n: int, text: str) -> None:
    assert format_size(n) == text
