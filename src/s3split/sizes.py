"""Human byte sizes: ``64MiB``, ``500KB``, ``97``."""

import re
from decimal import Decimal

from s3split.errors import InvalidOption

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_size(text: str | int) -> int:
    """Bytes in ``text``; K/M/G and KiB/MiB/GiB are binary, KB/MB/GB decimal (as GNU split)."""
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.fullmatch(text)
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _UNITS:
            raise InvalidOption(f"invalid size {text!r}: expected a number with an optional unit "
                                "such as 97, 500KB or 64MiB")
        value = int(Decimal(match.group(1)) * _UNITS[unit])
    if value < 1:
        raise InvalidOption(f"invalid size {text!r}: must be at least 1 byte")
    return value


def format_size(n: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def format_mb(n: float) -> str:
    """What the CLI prints, in one (decimal) unit family: ``2_500_000`` -> ``2.5 MB``."""
    return f"{n / 1e6:,.1f} MB" if n >= 100_000 else f"{n:,.0f} bytes"


# Below this many bytes a rate measures start-up (processes, an engine), not throughput.
RATE_FROM_BYTES = 10_000_000


def format_rate(n: float, seconds: float) -> str | None:
    """``12.3 MB/s``, or None where a rate would mean nothing (too little, too quick)."""
    if n < RATE_FROM_BYTES or seconds <= 0:
        return None
    return f"{n / 1e6 / seconds:,.1f} MB/s"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 chunk``, ``2 chunks``, ``1,000 rows``: the noun agrees with the count."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
