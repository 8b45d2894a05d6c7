"""A realistic database/spreadsheet export, deterministic, for the benchmarks' targets.

    python bench/gen_export.py OUT --size 1GiB [--seed 42] [--lf] [--stats-json FILE]

What people actually get out of a CRM or a spreadsheet's "Save as CSV": every record has one
quoted field (the contact's ``"Last, First"``), about one record in twenty a quoted free-text
note holding a line break (the note otherwise plain, sometimes with a quoted comma), accented
UTF-8 names and cities, CRLF endings (``--lf`` for LF). 12 columns::

    id,contact,email,company,phone,country,city,amount,currency,created,status,note

Same streaming scheme as gen_csv.py (a pool of pre-rendered record tails drawn at random, a
running id in front), so the output is a pure function of (size, seed, line ending).
"""

from __future__ import annotations

import random
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import gen_csv
from gen_csv import BLOCK_ROWS, CITIES, FIRST, LAST, POOL_SIZE, WORDS, GenStats

HEADER = ("id", "contact", "email", "company", "phone", "country", "city", "amount",
          "currency", "created", "status", "note")
MORE_LAST = ("Okafor", "Lindqvist", "Ferreira", "Nakamura", "Horváth", "Łukasiewicz",
             "Núñez", "Çelik", "Søndergaard", "Dvořák", "Ngata", "Abubakar")
MORE_FIRST = ("Farid", "Aoife", "Björn", "Chloé", "Dmitrij", "Inês", "José", "Mária",
              "Nnamdi", "Siân", "Zoltán", "Ángel")
COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Société Générale",
             "Müller GmbH", "Tyrell", "Hooli", "Øresund AS", "Cyberdyne")
COUNTRIES = ("CH", "BR", "PL", "JP", "RU", "GR", "TR", "CA", "IS", "DE", "FR", "NG", "US")
CURRENCIES = ("EUR", "USD", "CHF", "GBP", "JPY", "BRL")
STATUSES = ("open", "won", "lost", "pending", "closed")

P_NOTE_NEWLINE = 1 / 20
P_NOTE_COMMA = 0.05
P_NOTE_EMPTY = 0.40


def _note(rng: random.Random, nl: str) -> str:
    roll = rng.random()
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
    if roll < P_NOTE_NEWLINE:
        second = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8)))
        return f'"{words}{nl}{second}"'
    if roll < P_NOTE_NEWLINE + P_NOTE_COMMA:
        return f'"{words}, {rng.choice(WORDS)}"'
    if roll < P_NOTE_NEWLINE + P_NOTE_COMMA + P_NOTE_EMPTY:
        return ""
    return words


def _tail(rng: random.Random, nl: str) -> str:
    """Everything after ``id,`` including the record terminator."""
    first = rng.choice(FIRST + MORE_FIRST)
    last = rng.choice(LAST + MORE_LAST).replace("'", "")
    created = date(2012, 1, 1) + timedelta(days=rng.randrange(4500))
    fields = (
        f'"{last}, {first}"',
        f"{first.lower()}.{last.lower()}@example.com",
        rng.choice(COMPANIES),
        f"+{rng.randrange(1, 99)} {rng.randrange(100, 999)} {rng.randrange(1000, 9999)}",
        rng.choice(COUNTRIES),
        rng.choice(CITIES),
        f"{rng.randrange(0, 10_000_000) / 100:.2f}",
        rng.choice(CURRENCIES),
        created.isoformat(),
        rng.choice(STATUSES),
        _note(rng, nl),
    )
    return ",".join(fields) + nl


def generate(out: Path, size: int, seed: int = 42, lf: bool = False) -> GenStats:
    nl = "\n" if lf else "\r\n"
    rng = random.Random(seed)
    pool = [_tail(rng, nl) for _ in range(POOL_SIZE)]
    t0 = time.perf_counter()
    rows = written = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        header = (",".join(HEADER) + nl).encode()
        fh.write(header)
        written += len(header)
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
                    seed=seed, line_ending="LF" if lf else "CRLF", columns=len(HEADER))


def main(argv: list[str] | None = None) -> int:
    return gen_csv.main(argv, generate, __doc__)


if __name__ == "__main__":
    sys.exit(main())
