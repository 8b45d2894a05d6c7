"""Sources as Excel, databases and report generators write them: another delimiter, Excel's
``sep=`` line, UTF-16 with a byte order mark, Windows-1252, a preamble before the header."""

from __future__ import annotations

from pathlib import Path

HEADER = ("id", "name", "city", "amount")


def records(count: int = 500, name: str = "Jürgen") -> list[tuple[str, ...]]:
    """The header and ``count`` records of four fields."""
    return [HEADER] + [(str(i), name, "Paris", f"{i}.07") for i in range(1, count + 1)]


def text(rows: list[tuple[str, ...]], delimiter: str = ",", newline: str = "\n") -> str:
    return "".join(delimiter.join(row) + newline for row in rows)


def tab_separated(path: Path, count: int = 500) -> list[tuple[str, ...]]:
    rows = records(count)
    path.write_text(text(rows, "\t"), encoding="utf-8")
    return rows


def excel_sep_line(path: Path, count: int = 500) -> list[tuple[str, ...]]:
    """``sep=;`` then ``;``-separated records with decimal commas (as a German Excel saves)."""
    rows = [HEADER] + [(i, n, c, a.replace(".", ",")) for i, n, c, a in records(count)[1:]]
    path.write_text("sep=;\r\n" + text(rows, ";", "\r\n"), encoding="utf-8")
    return rows


def utf16_le(path: Path, count: int = 500, bom: bytes = b"\xff\xfe",
             encoding: str = "utf-16-le") -> list[tuple[str, ...]]:
    """Excel's "Unicode text": UTF-16 LE with its byte order mark, tab-separated, CRLF."""
    rows = records(count)
    path.write_bytes(bom + text(rows, "\t", "\r\n").encode(encoding))
    return rows


def windows_1252(path: Path, count: int = 500) -> list[tuple[str, ...]]:
    rows = records(count, name="José")
    path.write_bytes(text(rows, ",", "\r\n").encode("cp1252"))
    return rows


PREAMBLE = "Unemployment by quarter\nSource: a statistics office, 2024\n\n"


def with_preamble(path: Path, count: int = 500) -> list[tuple[str, ...]]:
    """Three lines (a title, a note, an empty line) before the header."""
    rows = records(count)
    path.write_text(PREAMBLE + text(rows), encoding="utf-8")
    return rows


def as_dicts(rows: list[tuple[str, ...]]) -> list[dict[str, str]]:
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
