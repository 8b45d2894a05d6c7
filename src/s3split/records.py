"""The JSON files a run keeps its state in, read back: one that is not what s3split wrote
there (another program's file, a truncated copy, a hand edit) is ``RunFileCorrupt`` naming
the file, what is wrong with it and what to do, never a ``KeyError`` from deep inside."""

from collections.abc import Iterable
from typing import Any

from s3split.errors import RunFileCorrupt
from s3split.storage import Storage


def corrupt(uri: str, problem: str, remedy: str) -> RunFileCorrupt:
    return RunFileCorrupt(f"{uri}: {problem}; {remedy}")


def read_record(storage: Storage, uri: str, remedy: str) -> dict[str, Any]:
    """The JSON object at ``uri``."""
    try:
        document = storage.read_json(uri)
    except ValueError as exc:  # not UTF-8 or not JSON
        raise corrupt(uri, f"not a JSON document ({exc})", remedy) from None
    return object_record(document, uri, remedy)


def object_record(document: Any, uri: str, remedy: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise corrupt(uri, f"expected a JSON object, found {type(document).__name__}", remedy)
    return document


def missing_fields(document: dict[str, Any], fields: Iterable[str]) -> list[str]:
    return [name for name in fields if name not in document]


def count_problem(counts: dict[str, Any], rows: int | None = None) -> str | None:
    """What is wrong with ``rows_in``, ``rows_out`` and ``rows_rejected`` (None: nothing):
    each a non-negative integer, ``rows_in == rows_out + rows_rejected`` and, when ``rows``
    is given, ``rows_in == rows``."""
    for name in ("rows_in", "rows_out", "rows_rejected"):
        value = counts.get(name)
        if type(value) is not int or value < 0:  # (bool is an int, and no count)
            return f"{name} is {value!r}, not a non-negative integer"
    rows_in, rows_out, rows_rejected = (counts[n] for n in ("rows_in", "rows_out",
                                                            "rows_rejected"))
    if rows_in != rows_out + rows_rejected:
        return f"rows_in {rows_in} != rows_out {rows_out} + rows_rejected {rows_rejected}"
    if rows is not None and rows_in != rows:
        return f"rows_in {rows_in} but the chunk holds {rows} records (manifest)"
    return None


def rejects_problem(rejects: Any) -> str | None:
    """Rejects are a list of JSON objects (the report lists them with their chunk)."""
    if not isinstance(rejects, list):
        return f"rejects is {type(rejects).__name__}, not a list"
    for number, reject in enumerate(rejects):
        if not isinstance(reject, dict):
            return f"rejects[{number}] is {reject!r:.60}, not an object"
    return None
