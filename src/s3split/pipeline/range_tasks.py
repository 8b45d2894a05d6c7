"""The range split on the state machine: PlanRanges -> ScanRanges (a Map) -> Combine ->
Assemble (a Map) -> FinishSplit, for a run whose source Plan found big enough
(``steps.in_ranges``); the steps themselves are ``s3split.split.range_steps``'s.

Each step takes and returns small dicts: what the steps hand each other stays in the run's
``ranges/`` folder, each file named with the plan's id (a task of an earlier plan that runs
late writes beside them, never over them)::

    plan.json                            the staged split (PlanRanges)
    header.<id>.bin                      the header each chunk starts with (PlanRanges)
    range-NNNNN.<id>.json                range NNNNN's scan (ScanRange)
    failed-scan-NNNNN.<id>.json          why it failed for good (RecordRangeFailure)
    table.json                           the chunk table and its batches (Combine)
    batch-NNNNN.<id>.json                batch NNNNN's manifest entries (AssembleBatch)
    failed-assemble-NNNNN.<id>.json      why it failed for good (RecordRangeFailure)

A Map item that fails for good records its error and ends (the Map goes on: moto's
interpreter ignores a failed item of a Distributed Map where AWS fails the Map, and this way
both behave alike); the next step raises the recorded error of the first failed item, under
its own name when it is one of ``s3split.errors`` (``SourceChanged``), else as
``SplitTaskFailed``. FinishSplit writes the manifest last, then removes the folder.
"""

import json
import math
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Literal, TypeVar

from s3split import errors
from s3split.deployment import Deployment
from s3split.errors import InvalidInput, SplitTaskFailed
from s3split.pipeline.spec import RunSpec
from s3split.pipeline.steps import clear_other_splits, reusable_manifest, split_done
from s3split.split.manifest import ChunkEntry
from s3split.split.range_scan import Chunk
from s3split.split.range_steps import (
    Staged,
    assemble,
    chunks_from_list,
    chunks_to_list,
    combine_scans,
    finish,
    prepare,
    scan,
    scan_from_dict,
    scan_to_dict,
)
from s3split.storage import Storage, join

PLAN = "plan.json"
TABLE = "table.json"
READERS: Final = 16  # scratch files read (or deleted) at a time
Stage = Literal["scan", "assemble"]
T = TypeVar("T")


def plan_ranges(spec: RunSpec, deployment: Deployment, storage: Storage) -> dict[str, Any]:
    """Reuse the run's manifest when it still describes its source (as Split does); else
    stage the range split: ``{"done": False, "items": [range indexes], "concurrency": N}``."""
    manifest = reusable_manifest(spec, storage)
    if manifest is not None:
        return split_done(spec, manifest, deployment)
    _clear(storage, spec.layout.ranges)
    staged = prepare(spec.source, spec.layout.chunks, spec.split_settings, storage,
                     uuid.uuid4().hex[:16], deployment.range_size)
    with storage.writer(_header(spec, staged)) as f:
        f.write(staged.head)
    storage.write_json(join(spec.layout.ranges, PLAN), staged.to_dict())  # last: it refers
    return {"done": False, "ranges": staged.plan.count,
            "items": list(range(staged.plan.count)),
            "concurrency": deployment.range_concurrency}


def scan_one(spec: RunSpec, index: int, storage: Storage) -> dict[str, Any]:
    """Scan range ``index`` and keep its summary; return nothing (a Map's results add up)."""
    staged = _staged(spec, storage)
    summary = scan(storage, staged, index)
    storage.write_json(_item(spec, "range", index, staged), scan_to_dict(summary))
    return {}


def record_failure(spec: RunSpec, stage: Stage, index: int, error: Any,
                   storage: Storage) -> dict[str, Any]:
    """Keep why a Map item failed for good (the Catch's ``{"Error", "Cause"}``)."""
    staged = _staged(spec, storage)
    problem = error if isinstance(error, dict) else {}
    storage.write_json(_item(spec, f"failed-{stage}", index, staged),
                       {"error": str(problem.get("Error", "")),
                        "cause": str(problem.get("Cause", ""))})
    return {}


def combine_ranges(spec: RunSpec, deployment: Deployment, storage: Storage) -> dict[str, Any]:
    """Fold the range scans into the chunk table (or raise the first failed range's error,
    or the single pass's error); return the assembly batches."""
    staged = _staged(spec, storage)
    documents = _items(spec, staged, "range", "scan", staged.plan.count, storage)
    try:
        scans = [scan_from_dict(document) for document in documents]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"range scans of {spec.source}: not a scan ({exc})") from None
    table = combine_scans(storage, staged, scans)
    per_batch = deployment.assemble_chunks
    batches = math.ceil(len(table.chunks) / per_batch)
    storage.write_json(join(spec.layout.ranges, TABLE),
                       {"plan": staged.id, "per_batch": per_batch,
                        "chunks": chunks_to_list(table.chunks)})
    return {"done": False, "chunks": len(table.chunks), "batches": list(range(batches)),
            "concurrency": deployment.range_concurrency}


def assemble_batch(spec: RunSpec, index: int, storage: Storage) -> dict[str, Any]:
    """Write the chunks of batch ``index`` and keep their manifest entries."""
    staged = _staged(spec, storage, header=True)
    chunks, per_batch = _table(spec, staged, storage)
    if not 0 <= index < max(1, math.ceil(len(chunks) / per_batch)):
        raise InvalidInput(f"assembly batch {index} of {spec.source}: there are "
                           f"{math.ceil(len(chunks) / per_batch)}")
    written = assemble(storage, staged, chunks[index * per_batch:(index + 1) * per_batch])
    storage.write_json(_item(spec, "batch", index, staged),
                       [{"entry": entry.__dict__, "method": method} for entry, method in written])
    return {}


def finish_split(spec: RunSpec, deployment: Deployment, storage: Storage) -> dict[str, Any]:
    """Write the manifest from the batches' entries (last), then remove the scratch."""
    if not storage.exists(join(spec.layout.ranges, PLAN)):  # a retry after it finished
        manifest = reusable_manifest(spec, storage)
        if manifest is None:
            raise SplitTaskFailed(f"range split of {spec.source}: neither its plan nor a "
                                  f"manifest in {spec.layout.location}; split it again")
        return split_done(spec, manifest, deployment)
    staged = _staged(spec, storage, header=True)
    chunks, per_batch = _table(spec, staged, storage)
    batches = _items(spec, staged, "batch", "assemble", math.ceil(len(chunks) / per_batch),
                     storage)
    written = [record for batch in batches for record in batch]
    try:
        entries = [ChunkEntry(**record["entry"]) for record in written]
    except (KeyError, TypeError) as exc:
        raise InvalidInput(f"assembly batches of {spec.source}: not chunk entries ({exc})") \
            from None
    if [(e.index, e.source_offset) for e in entries] != [(c.index, c.start) for c in chunks]:
        raise SplitTaskFailed(f"range split of {spec.source}: the assembled chunks are not "
                              "the chunk table's")
    assembly = {"scan": "ranges", "ranges": staged.plan.count, "batches": len(batches),
                "chunks": [record["method"] for record in written]}
    manifest = finish(storage, staged, entries, assembly)
    storage.delete(join(spec.layout.ranges, PLAN))  # first: a retry now finds the manifest
    _clear(storage, spec.layout.ranges)
    clear_other_splits(spec, manifest, storage)
    return split_done(spec, manifest, deployment)


# -- the scratch folder ---------------------------------------------------------------------------


def _staged(spec: RunSpec, storage: Storage, header: bool = False) -> Staged:
    """The staged split (with its header for the steps that write chunks)."""
    uri = join(spec.layout.ranges, PLAN)
    if not storage.exists(uri):
        raise SplitTaskFailed(f"range split of {spec.source}: no plan at {uri}")
    staged = Staged.from_dict(storage.read_json(uri), spec.source, spec.layout.chunks)
    if not header:
        return staged
    with storage.open_read(_header(spec, staged)) as f:
        return staged.with_header(f.read())


def _header(spec: RunSpec, staged: Staged) -> str:
    return join(spec.layout.ranges, f"header.{staged.id}.bin")


def _table(spec: RunSpec, staged: Staged, storage: Storage) -> tuple[list[Chunk], int]:
    document = storage.read_json(join(spec.layout.ranges, TABLE))
    if not isinstance(document, dict) or document.get("plan") != staged.id:
        raise SplitTaskFailed(f"range split of {spec.source}: its chunk table is not of "
                              f"plan {staged.id}")
    per_batch = document.get("per_batch")
    if not isinstance(per_batch, int) or per_batch < 1:
        raise InvalidInput(f"chunk table of {spec.source}: per_batch {per_batch!r}")
    return chunks_from_list(document.get("chunks"), staged), per_batch


def _item(spec: RunSpec, kind: str, index: int, staged: Staged) -> str:
    return join(spec.layout.ranges, f"{kind}-{index:05d}.{staged.id}.json")


def _items(spec: RunSpec, staged: Staged, kind: str, stage: Stage, count: int,
           storage: Storage) -> list[Any]:
    """Each item's document, in order; the first missing one raises its recorded error."""
    def read(index: int) -> Any:
        found = storage.read_json_version(_item(spec, kind, index, staged))
        return None if found is None else found[0]

    documents = _parallel(read, range(count))
    for index, document in enumerate(documents):
        if document is None:
            _raise_recorded(spec, staged, stage, index, storage)
    return documents


def _raise_recorded(spec: RunSpec, staged: Staged, stage: Stage, index: int,
                    storage: Storage) -> None:
    task = f"{'range scan' if stage == 'scan' else 'assembly batch'} {index} of {spec.source}"
    found = storage.read_json_version(_item(spec, f"failed-{stage}", index, staged))
    if found is None or not isinstance(found[0], dict):
        raise SplitTaskFailed(f"{task} left neither its result nor its error")
    name, message = str(found[0].get("error", "")), _message(str(found[0].get("cause", "")))
    named = getattr(errors, name, None) if name.isidentifier() else None
    if isinstance(named, type) and issubclass(named, errors.S3SplitError):
        raise named(message)
    raise SplitTaskFailed(f"{task} failed: {name or 'unknown error'}: {message}")


def _message(cause: str) -> str:
    """A Lambda error's message from the Cause Step Functions recorded (its JSON payload)."""
    try:
        payload = json.loads(cause)
    except ValueError:
        return cause
    message = payload.get("errorMessage") if isinstance(payload, dict) else None
    return message if isinstance(message, str) else cause


def _clear(storage: Storage, folder: str) -> None:
    _parallel(lambda name: storage.delete(join(folder, name)), storage.list(folder))
    storage.remove_empty_directory(folder)


def _parallel(function: Callable[[Any], T], items: Sequence[Any] | range) -> list[T]:
    if len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(min(READERS, len(items))) as pool:
        return list(pool.map(function, items))
