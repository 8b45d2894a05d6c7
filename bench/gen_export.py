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
from datetime import date, timedelta
from pathlib import Path

import gen_csv
from gen_csv import CITIES, FIRST, LAST, WORDS, GenStats

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
    return gen_csv.write_rows(out, size, seed, lf, HEADER, _tail)


def main(argv: list[str] | None = None) -> int:
    return gen_csv.main(argv, generate, __doc__)


if __name__ == "__main__":
    sys.exit(main())
