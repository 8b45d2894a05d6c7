"""What a run may touch in its location: only what a run of its source wrote there.

* A run's location is new, empty, or the location of a run of the same source (its
  ``run.json`` says so); anything else (a user's folder, another source's run) is refused
  before anything is written or deleted. Two sources with one file name therefore never
  share a default location: the second is refused and told to pick ``--out``.
* A run's location is never inside another run's location (a bucket holds ``a.csv`` and
  ``a.csv/results/x.csv`` at once; a ``--out`` may name a folder of another run).
* The source is never inside its run's location (a file there could be overwritten or
  deleted by the run: under ``results/``, or named ``report.json`` or ``run.json``).
* A fresh run clears the outcomes of earlier runs there, and a split made again clears those
  of chunks it cut elsewhere, only by the names the run listed in its own status records
  (``status/part-NNNNN.json`` lists the chunk's output and rejects): a file the user put in
  ``results/`` or ``status/`` is never matched by pattern and never deleted.
* Local locations are compared after resolving symbolic links.
"""

import os
from collections.abc import Callable
from typing import Any

from s3split.errors import RunLocationTaken, SourceInDestination
from s3split.pipeline.layout import RunLayout
from s3split.storage import CONDITIONAL_PROBE, Storage, is_s3, join, split_s3

LOCK_NAME = "lock.json"  # (layout.RunLayout.lock) all a start that stopped at once leaves
_SHOWN = 3  # names quoted in a refusal


def real(uri: str) -> str:
    """A location or source as the file system resolves it (symbolic links, ``..``)."""
    return uri.rstrip("/") if is_s3(uri) else os.path.realpath(uri)


def same_place(a: str, b: str) -> bool:
    return is_s3(a) == is_s3(b) and real(a) == real(b)


def check_source_outside(source: str, location: str) -> None:
    """SourceInDestination when ``source`` lies in ``location`` (as given or resolved)."""
    inside = _s3_inside(source, location) if is_s3(source) else _local_inside(source, location)
    if inside:
        raise SourceInDestination(
            f"source {source} is inside the run location {location}: the run writes and "
            "deletes files there and could overwrite or delete it; move the source out, or "
            "choose another --out")


def _local_inside(source: str, location: str) -> bool:
    if is_s3(location):
        return False
    root = os.path.realpath(location)
    given = os.path.join(os.path.realpath(os.path.dirname(source) or "."),
                         os.path.basename(source))
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep)
               for path in (given, os.path.realpath(source)))


def _s3_inside(source: str, location: str) -> bool:
    if not is_s3(location):
        return False
    (bucket, key), (run_bucket, prefix) = split_s3(source), split_s3(location)
    return bucket == run_bucket and key.startswith(prefix.rstrip("/") + "/")


def check_location_free(source: str, location: str, storage: Storage) -> None:
    """RunLocationTaken unless ``location`` is new, empty or a run of ``source``."""
    found = [name for name in storage.some_under(location, _SHOWN + 1)
             if not name.startswith(CONDITIONAL_PROBE)]  # (another start's, for a moment)
    if not found or found == [LOCK_NAME]:
        return
    recorded = recorded_source(location, storage)
    if recorded is not None and same_place(recorded, source):
        return
    if recorded is not None:
        raise RunLocationTaken(
            f"run location {location} holds the run of another source ({recorded}), not of "
            f"{source}: a run there would replace its results; choose another --out for "
            f"{source}")
    shown = ", ".join(found[:_SHOWN]) + (", ..." if len(found) > _SHOWN else "")
    raise RunLocationTaken(
        f"run location {location} is not empty and holds no run ({shown}): a run writes and "
        "deletes files there; choose a new or empty directory (--out)")


def check_not_inside_a_run(location: str, work_location: str, storage: Storage) -> None:
    """RunLocationTaken when a folder above ``location`` is another run's location (its
    ``run.json`` names a source): this run would write among that run's files (an S3 bucket
    holds ``a.csv`` and ``a.csv/results/x.csv`` at once, a ``--out`` can name a folder of
    another run). Locally every folder above is looked at; on S3 those below
    ``work_location`` only (above it the functions may not read, and S3 answers 403 for a
    key they may not read, missing or not)."""
    for above in _folders_above(location, work_location):
        enclosing = recorded_source(above, storage)
        if enclosing is not None:
            raise RunLocationTaken(
                f"run location {location} lies inside the run location {above} of "
                f"{enclosing}: a run there would write among that run's files; choose "
                "another --out")


def _folders_above(location: str, work_location: str) -> list[str]:
    if not is_s3(location):
        path, found = real(location), []
        while (parent := os.path.dirname(path)) != path:
            found.append(parent)
            path = parent
        return found
    root = work_location.rstrip("/")
    if not is_s3(root) or not location.startswith(root + "/"):
        return []
    parts = location[len(root) + 1:].strip("/").split("/")
    return [join(root, *parts[:depth]) for depth in range(len(parts) - 1, -1, -1)]


def recorded_source(location: str, storage: Storage) -> str | None:
    """The source ``<location>/run.json`` names, if it is readable and names one."""
    uri = RunLayout(location).spec
    try:
        document = storage.read_json(uri) if storage.exists(uri) else None
    except (ValueError, OSError):
        return None
    source = document.get("source") if isinstance(document, dict) else None
    return source if isinstance(source, str) else None


Keep = Callable[[int, dict[str, Any]], bool]


def clear_outcomes(location: str, storage: Storage, keep: Keep | None = None) -> None:
    """Delete the status records under ``location`` and the files each lists as its chunk's
    output and rejects, except those ``keep(index, status)`` keeps. Only names a run writes
    for that chunk are deleted, whatever a (possibly edited) record says."""
    layout = RunLayout(location)
    for name in storage.list(layout.status_dir):
        index = _status_index(name)
        if index is None:
            continue
        uri = layout.status(index)
        status = _read(uri, storage)
        if keep is not None and isinstance(status, dict) and keep(index, status):
            continue
        for listed in _listed_outputs(status, index, layout):
            storage.delete(listed)
        storage.delete(uri)


def _status_index(name: str) -> int | None:
    stem = name.removeprefix("part-").removesuffix(".json")
    if f"part-{stem}.json" != name or not stem.isdigit() or len(stem) < 5:
        return None
    index = int(stem)
    return index if f"part-{index:05d}.json" == name else None


def _listed_outputs(status: Any, index: int, layout: RunLayout) -> list[str]:
    if not isinstance(status, dict):
        return []
    listed = []
    for field in ("output", "rejects_uri"):
        uri = status.get(field)
        if isinstance(uri, str) and own_output(uri, index, layout):
            listed.append(uri)
    return listed


def own_output(uri: str, index: int, layout: RunLayout) -> bool:
    """A result ``results/part-NNNNN.<ext>`` or rejects file of chunk ``index``."""
    if uri == layout.rejects(index):
        return True
    folder, _, name = uri.rpartition("/")
    stem, dot, extension = name.partition(".")
    return (folder == join(layout.location, "results") and stem == f"part-{index:05d}"
            and bool(dot) and extension.replace(".", "").isalnum())


def _read(uri: str, storage: Storage) -> Any:
    try:
        return storage.read_json(uri)
    except (ValueError, OSError):
        return None
