"""What a split may touch in its destination: only what a split wrote there.

A split owns these names in DEST and no others: ``part-NNNNN.csv``, ``manifest.json``,
the folder ``_split/`` (progress of a split that stopped to be continued),
``.split.lock`` (``s3split split``'s lock), ``.leftovers.json`` (see below) and the
temporaries ``Storage.writer`` makes for any of them (``.NAME.xxxxxxxx.tmp``).

* A source with one of those names in DEST is refused before anything is touched.
* Parts an earlier split left beyond the new chunk count are deleted from a list, never
  by matching names: a fresh split notes the parts listed in the previous manifest (and
  in the progress of a split it replaces) in ``.leftovers.json`` before removing that
  manifest, and the finished split deletes those it did not rewrite, then the note. The
  note outlives a failed split, so the next one still knows.
* Temporaries of a killed split are removed by the next split of DEST.
"""

import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from s3split.errors import InvalidOption, SourceInDestination
from s3split.split.manifest import MANIFEST_NAME, chunk_name
from s3split.storage import Storage, basename, is_s3, join, split_s3

PROGRESS_DIR = "_split"  # the splitter's progress folder (splitter.PROGRESS_DIR)
LOCK_NAME = ".split.lock"
RECORD_NAME = ".leftovers.json"
_PART = re.compile(r"part-(\d+)\.csv")
_SEGMENT = re.compile(r"segment-\d+\.json")
_TEMP = re.compile(r"\.(.+)\.[a-z0-9_]+\.tmp")  # tempfile.mkstemp(prefix=".NAME.", suffix=".tmp")


def _owned(name: str) -> bool:
    """A name a split writes directly in DEST (not a temporary)."""
    return bool(_PART.fullmatch(name)) or name in (MANIFEST_NAME, LOCK_NAME, RECORD_NAME)


def _temporary_of(name: str, owned: Callable[[str], object]) -> bool:
    match = _TEMP.fullmatch(name)
    return match is not None and bool(owned(match.group(1)))


def _owned_in_dest(name: str) -> bool:
    return _owned(name) or _temporary_of(name, _owned)


# -- the source is not the split's own ------------------------------------------------------------


def check_destination(dest: str) -> None:
    """A split writes and deletes its progress files in ``DEST/_split``: a symbolic link there
    would take those writes and deletions to wherever it points, outside DEST."""
    progress = os.path.join(dest, PROGRESS_DIR)
    if not is_s3(dest) and os.path.islink(progress):
        raise InvalidOption(f"{progress} is a symbolic link (to {os.readlink(progress)}): a split "
                            "keeps its progress there and would write and delete where it "
                            "points; remove the link")


def check_source(source: str, dest: str) -> None:
    """Refuse a source that a split into ``dest`` would overwrite or delete."""
    clash = _s3_clash(source, dest) if is_s3(source) else _local_clash(source, dest)
    if clash is not None:
        resolved = "" if clash == source else f" (resolved: {clash})"
        raise SourceInDestination(
            f"source {source}{resolved} has a name the split writes in its destination "
            f"{dest}: splitting would overwrite or delete it; move the source out of {dest} "
            "or split into another destination")


def _local_clash(source: str, dest: str) -> str | None:
    """The source's path that lies in ``dest``'s namespace, if any.

    Both the path as given (its directory resolved) and the fully resolved one count: a
    symlink named like a part would be replaced, and a symlink to a part would be read
    while that part is rewritten.
    """
    if is_s3(dest):
        return None
    real_dest = os.path.realpath(dest)
    progress = {os.path.join(real_dest, PROGRESS_DIR),
                os.path.realpath(os.path.join(dest, PROGRESS_DIR))}
    given = os.path.join(os.path.realpath(os.path.dirname(source) or "."),
                         os.path.basename(source))
    for path in (given, os.path.realpath(source)):
        parent, name = os.path.split(path)
        if (parent == real_dest and _owned_in_dest(name)) or parent in progress:
            return path
    return None


def _s3_clash(source: str, dest: str) -> str | None:
    if not is_s3(dest):
        return None
    (bucket, key), (dest_bucket, prefix) = split_s3(source), split_s3(dest)
    if bucket != dest_bucket:
        return None
    prefix = prefix.rstrip("/")  # as storage.join writes under it
    parent, _, name = key.rpartition("/")
    progress = f"{prefix}/{PROGRESS_DIR}" if prefix else PROGRESS_DIR
    if (parent == prefix and _owned_in_dest(name)) or parent == progress:
        return source
    return None


def same_location(a: str, b: str) -> bool:
    if is_s3(a) or is_s3(b):
        return is_s3(a) and is_s3(b) and split_s3(a) == split_s3(b)
    return os.path.realpath(a) == os.path.realpath(b)


# -- leftovers of earlier splits ------------------------------------------------------------------


def record_previous(storage: Storage, dest: str) -> None:
    """Before a fresh split removes the old manifest: note the parts earlier splits wrote."""
    names = _recorded(storage, dest) | _listed(_manifest_chunks(storage, dest))
    progress = join(dest, PROGRESS_DIR)
    for name in storage.list(progress):
        if _SEGMENT.fullmatch(name):
            names |= _listed(_read(storage, join(progress, name)))
    uri = join(dest, RECORD_NAME)
    if names:
        storage.write_json(uri, {"parts": sorted(names)})
    else:
        storage.delete(uri)


def note_written(storage: Storage, dest: str, names: Iterable[str]) -> None:
    """A split that failed after writing the parts ``names``: add them to the note, so the
    next split deletes those it does not rewrite (there is no manifest to list them)."""
    parts = _recorded(storage, dest) | {name for name in names if _PART.fullmatch(name)}
    if parts:
        storage.write_json(join(dest, RECORD_NAME), {"parts": sorted(parts)})


def remove_leftovers(storage: Storage, dest: str, source: str, count: int) -> None:
    """After a split of ``count`` chunks: delete the noted parts it did not rewrite."""
    for name in sorted(_recorded(storage, dest)):
        uri = join(dest, name)
        if _index(name) >= count and not same_location(uri, source):
            storage.delete(uri)
    storage.delete(join(dest, RECORD_NAME))


def clear_progress(storage: Storage, dest: str) -> None:
    """Empty the progress folder: all of ``_split/`` is the split's own (a continued split
    reads every file in it as progress), and no source may lie in it."""
    progress = join(dest, PROGRESS_DIR)
    for name in storage.list(progress):
        if is_s3(progress) or os.path.isfile(join(progress, name)):
            storage.delete(join(progress, name))


def remove_temporaries(storage: Storage, dest: str) -> None:
    """Delete the temporaries a killed split left in a local DEST (S3 has none: an
    unfinished multipart upload is not an object)."""
    if is_s3(dest):
        return
    progress = join(dest, PROGRESS_DIR)
    for directory, owned in ((dest, _owned), (progress, _SEGMENT.fullmatch)):
        for name in storage.list(directory):
            if _temporary_of(name, owned) and os.path.isfile(join(directory, name)):
                storage.delete(join(directory, name))


def _index(name: str) -> int:
    match = _PART.fullmatch(name)
    assert match is not None
    return int(match.group(1))


def _read(storage: Storage, uri: str) -> Any:
    """A JSON document the split wrote, or None when it is absent or not JSON (then it
    lists nothing: what it named is left alone rather than guessed)."""
    if not storage.exists(uri):
        return None
    try:
        return storage.read_json(uri)
    except (ValueError, IsADirectoryError):
        return None


def _recorded(storage: Storage, dest: str) -> set[str]:
    document = _read(storage, join(dest, RECORD_NAME))
    parts = document.get("parts") if isinstance(document, dict) else None
    if not isinstance(parts, list):
        return set()
    return {name for name in parts if isinstance(name, str) and _PART.fullmatch(name)}


def _manifest_chunks(storage: Storage, dest: str) -> Any:
    document = _read(storage, join(dest, MANIFEST_NAME))
    return document.get("chunks") if isinstance(document, dict) else None


def _listed(entries: Any) -> set[str]:
    """Part names of chunk entries whose uri names the part of their index."""
    if not isinstance(entries, list):
        return set()
    names = set()
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        index, uri = entry.get("index"), entry.get("uri")
        if (isinstance(index, int) and not isinstance(index, bool) and index >= 0
                and isinstance(uri, str) and basename(uri) == chunk_name(index)):
            names.add(chunk_name(index))
    return names
