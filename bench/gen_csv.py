"""Deterministic CSV generator for the splitter benchmarks.

    python bench/gen_csv.py OUT --size 1GiB [--seed 42] [--lf] [--stats-json FILE]

Writes a header plus records until at least ``--size`` bytes are written (it stops at
the first record boundary at or past the target). The output is a pure function of
(size, seed, line ending). It streams block by block and never holds the file in memory:
a pool of pre-rendered record tails is built once from the seed, and each block is a
random draw from the pool prefixed with a running integer id.

Record shape (10 columns)::

    id,customer,amount,qty,created,updated,city,status,comment,score

- ``amount``/``score`` decimals (``score`` empty in ~10% of records)
- ``created`` a date, ``updated`` an ISO timestamp
- ``city`` unicode text (Zürich, 東京, Москва, ...)
- ``comment`` free text: empty in ~15%, a quoted comma in ~30%, doubled quotes ("") in
  ~8%, an embedded line break (CRLF, or LF with ``--lf``) in ~5% of records.

CRLF record endings by default (RFC 4180); ``--lf`` for LF.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

HEADER = (
    "id",
    "customer",
    "amount",
    "qty",
    "created",
    "updated",
    "city",
    "status",
    "comment",
    "score",
)

POOL_SIZE = 1 << 16
BLOCK_ROWS = 20_000

P_EMBEDDED_NEWLINE = 0.05
P_QUOTED_COMMA = 0.30
P_DOUBLED_QUOTE = 0.08
P_EMPTY_COMMENT = 0.15
P_EMPTY_SCORE = 0.10

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)
_EXP = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}

FIRST = (
    "Ana",
    "Bo",
    "Chen",
    "Dara",
    "Émile",
    "Farah",
    "Gus",
    "Hana",
    "Ivan",
    "Jo",
    "Kai",
    "Lena",
    "Mateo",
    "Noor",
    "Olek",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tomás",
    "Uma",
    "Vik",
    "Wen",
    "Xia",
    "Yusuf",
    "Zoë",
)
LAST = (
    "Smith",
    "Müller",
    "García",
    "Nguyen",
    "O'Brien",
    "Kowalski",
    "Rossi",
    "Tanaka",
    "Ivanova",
    "Dubois",
    "Silva",
    "Kim",
    "Novak",
    "Haddad",
    "Jensen",
    "Øvergaard",
)
CITIES = (
    "Zürich",
    "São Paulo",
    "Kraków",
    "東京",
    "Москва",
    "Αθήνα",
    "İstanbul",
    "Montréal",
    "Reykjavík",
    "München",
    "Paris",
    "Lagos",
    "Austin",
    "Seoul 서울",
    "Cairo القاهرة",
    "Ḩalab",
    "Mumbai मुंबई",
    "Oslo",
    "Lima",
    "Hà Nội",
)
STATUS = ("new", "paid", "shipped", "returned", "void", "hold", "ok")
WORDS = (
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "order",
    "late",
    "fragile",
    "gift",
    "rush",
    "box",
    "café",
    "naïve",
    "smörgåsbord",
    "déjà",
    "vu",
    "très",
    "bien",
    "size",
    "colour",
    "blue",
    "red",
    "🙂",
    "📦",
    "ok",
    "n/a",
    "x",
    "42",
    "-",
    "ß",
)


@dataclass(frozen=True)
class GenStats:
    rows: int
    bytes: int
    seconds: float
    seed: int
    line_ending: str
    columns: int

    @property
    def rows_per_byte(self) -> float:
        return self.rows / self.bytes if self.bytes else 0.0


def parse_size(text: str) -> int:
    """Parse ``1GiB``, ``256MiB``, ``64MB``, ``64M`` (binary), ``1000`` into bytes.

    ``KiB/MiB/GiB`` and bare ``K/M/G`` are powers of 1024 (as in GNU split); ``KB/MB/GB``
    are powers of 1000.
    """
    m = _SIZE_RE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size: {text!r} (e.g. 64MiB, 1GiB, 1000)")
    num, unit, i, b = m.groups()
    base = 1000 if (unit and b and not i) else 1024
    return int(float(num) * base ** _EXP[unit.lower()])


def format_size(n: int) -> str:
    for unit, exp in (("GiB", 3), ("MiB", 2), ("KiB", 1)):
        if n >= 1024**exp and n % 1024**exp == 0:
            return f"{n // 1024**exp}{unit}"
    return f"{n}B"


def _quote(field: str) -> str:
    return '"' + field.replace('"', '""') + '"'


def _comment(rng: random.Random, nl: str) -> str:
    r = rng.random()
    if r < P_EMPTY_COMMENT:
        return ""
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 6))]
    text = " ".join(words)
    needs_quote = False
    if rng.random() < P_QUOTED_COMMA / (1 - P_EMPTY_COMMENT):
        pos = rng.randint(1, len(words))
        text = " ".join(words[:pos]) + ", " + " ".join(words[pos:] or ["etc"])
        needs_quote = True
    if rng.random() < P_DOUBLED_QUOTE / (1 - P_EMPTY_COMMENT):
        text = f'said "{rng.choice(WORDS)}" {text}'
        needs_quote = True
    if rng.random() < P_EMBEDDED_NEWLINE / (1 - P_EMPTY_COMMENT):
        text = f"{text}{nl}{rng.choice(WORDS)} {rng.choice(WORDS)}"
        needs_quote = True
    return _quote(text) if needs_quote else text


def _tail(rng: random.Random, nl: str) -> str:
    """Everything after ``id,`` including the record terminator."""
    day0 = date(2015, 1, 1)
    created = day0 + timedelta(days=rng.randrange(3650))
    updated = (
        f"{created.isoformat()}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:"
        f"{rng.randrange(60):02d}Z"
    )
    customer = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    amount = f"{rng.randrange(-50_000, 5_000_000) / 100:.2f}"
    qty = str(rng.randrange(1, 1000))
    city = rng.choice(CITIES)
    status = rng.choice(STATUS)
    score = "" if rng.random() < P_EMPTY_SCORE else f"{rng.random():.4f}"
    fields = (
        customer,
        amount,
        qty,
        created.isoformat(),
        updated,
        city,
        status,
        _comment(rng, nl),
        score,
    )
    return ",".join(fields) + nl


def generate(out: Path, size: int, seed: int = 42, lf: bool = False) -> GenStats:
    return write_rows(out, size, seed, lf, HEADER, _tail)


def write_rows(out: Path, size: int, seed: int, lf: bool, header: Sequence[str],
               tail: Callable[[random.Random, str], str]) -> GenStats:
    """``header``, then numbered rows, each the number and one of ``POOL_SIZE`` tails
    (``tail(rng, nl)``), drawn ``BLOCK_ROWS`` at a time, to the first row that reaches
    ``size`` bytes."""
    nl = "\n" if lf else "\r\n"
    rng = random.Random(seed)
    pool = [tail(rng, nl) for _ in range(POOL_SIZE)]
    t0 = time.perf_counter()
    rows = written = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        first = (",".join(header) + nl).encode()
        fh.write(first)
        written += len(first)
        while written < size:
            picks = rng.choices(range(POOL_SIZE), k=BLOCK_ROWS)
            records = [f"{n},{pool[i]}".encode() for n, i in enumerate(picks, rows + 1)]
            block = b"".join(records)
            if written + len(block) >= size:  # the last block: stop at the first record past
                for record in records:
                    fh.write(record)
                    written += len(record)
                    rows += 1
                    if written >= size:
                        break
                break
            fh.write(block)
            written += len(block)
            rows += BLOCK_ROWS
    return GenStats(rows=rows, bytes=written, seconds=round(time.perf_counter() - t0, 3),
                    seed=seed, line_ending="LF" if lf else "CRLF", columns=len(header))


def main(argv: list[str] | None = None, gen: Callable[[Path, int, int, bool], GenStats] = generate,
         doc: str | None = __doc__) -> int:
    """The generators' command line: ``OUT --size --seed --lf --stats-json`` for ``gen``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    ap.add_argument("out", type=Path, help="output CSV path")
    ap.add_argument(
        "--size",
        type=parse_size,
        default=parse_size("1GiB"),
        help="target size, e.g. 64MiB, 1GiB (default 1GiB)",
    )
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--lf", action="store_true", help="LF line endings (default CRLF)")
    ap.add_argument("--stats-json", type=Path, help="also write the stats as JSON here")
    args = ap.parse_args(argv)
    stats = gen(args.out, args.size, args.seed, args.lf)
    if args.stats_json:
        d = asdict(stats) | {"rows_per_byte": stats.rows_per_byte, "size_arg": args.size}
        args.stats_json.write_text(json.dumps(d, indent=2) + "\n")
    mbps = stats.bytes / 2**20 / stats.seconds if stats.seconds else 0.0
    print(
        f"rows={stats.rows} bytes={stats.bytes} seconds={stats.seconds} "
        f"({mbps:.0f} MiB/s) seed={stats.seed} endings={stats.line_ending} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
