"""The run-level steps of the state machine: Plan, Split and Summarize.

Each takes and returns small JSON-able dicts (the state's 256 KiB limit):
chunk lists, statuses and results stay in storage.
"""

import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from s3split.deployment import Deployment
from s3split.errors import (
    DestinationUnwritable,
    InvalidInput,
    SourceChanged,
    SourceNotFound,
    SourceUnreadable,
)
from s3split.holders import Alive, Holder
from s3split.pipeline.batch import continuation_name, stage
from s3split.pipeline.chunk import of_chunk
from s3split.pipeline.inputs import normalize, short_hash
from s3split.pipeline.lanes import first_lanes, lane
from s3split.pipeline.ownership import (
    check_location_free,
    check_not_inside_a_run,
    clear_outcomes,
)
from s3split.pipeline.report import build_report
from s3split.pipeline.run_lock import acquire, carry, release
from s3split.pipeline.spec import RunSpec
from s3split.processors.check import check_processor
from s3split.processors.recorded_settings import record
from s3split.records import corrupt
from s3split.split.manifest import Manifest, ResumeToken, chunk_name
from s3split.split.splitter import range_split_applies, split
from s3split.storage import Storage, is_compressed, is_s3, join


def plan(event: Any, execution: str, deployment: Deployment, storage: Storage,
         alive: Alive) -> dict[str, Any]:
    """Normalize the start input, check its processor's configuration, lock the run
    location and prepare it.

    The lock's lease travels in the state (and to continuations) so that the run's
    end releases only its own lock.
    """
    planned = normalize(event, deployment, storage)
    mode = planned["mode"]
    config = None
    if mode != "continue":  # a continuation's first generation checked it
        config = check_processor(
            deployment.processor if mode == "batch" else planned["run"]["processor"])
    if mode == "batch":
        return stage([item["source"] for item in planned["sources"]], execution, deployment,
                     storage)
    spec = RunSpec.from_dict(planned["run"])
    if mode != "continue":
        _check_folders(spec)  # before anything is touched
        # A source gone before Plan (deleted after its upload event) fails here, not at Split
        # after the lock is taken and the earlier run's report and results are cleared.
        storage.stat(spec.source)
    if mode == "resume":
        check_resumable(spec, storage)
    ranges = mode != "continue" and in_ranges(spec, deployment, storage)
    if mode == "continue":
        _check_continuation(spec, planned["lease"], planned["generation"], execution)
        carry(spec.location, planned["lease"], execution, storage)
        return {"mode": mode, "run": planned["run"], "lease": planned["lease"],
                "generation": planned["generation"],
                "split": {"done": True, "lanes": planned["lanes"]}}
    if mode == "run":
        check_location_free(spec.source, spec.location, storage)  # before the lock is written
        check_not_inside_a_run(spec.location, deployment.work_location, storage)
    acquire(spec.location, Holder.new(execution, deployment.engine_pid), storage, alive)
    # First: while a run is under way (or stopped part-way: killed while clearing outcomes),
    # nothing looks complete.
    for finished in (spec.layout.report, *spec.layout.merged_files):
        storage.delete(finished)
    if not ranges:  # a range split stopped part-way (killed) leaves its scratch behind
        _clear_folder(spec.layout.ranges, storage)
        storage.remove_empty_directory(spec.layout.ranges)
    if mode == "run":
        # One start and its resumes share a run id (it keys idempotency records).
        spec = replace(spec, run_id=f"{spec.run_id}-{short_hash(execution)}")
        clear_outcomes(spec.location, storage)
        storage.write_json(spec.layout.spec, spec.to_dict())
    if config is not None:  # what the processor runs with, for a local resume
        storage.write_json(spec.layout.processor, record(config))
    return {"mode": mode, "run": spec.to_dict(), "lease": execution, "generation": 0,
            "split": {"done": False, "token": None, "ranges": ranges}}


def _check_continuation(spec: RunSpec, lease: str, generation: int, execution: str) -> None:
    """A continue input is the run's own only in the execution its Summarize named: started
    by hand, it would carry the lock away from the running execution and release it at its
    end while that one still runs."""
    expected = continuation_name(spec.run_id, lease, generation)
    if execution.rsplit(":", 1)[-1] != expected:
        raise InvalidInput(f"invalid execution input: continue: execution {execution} is not "
                           f"{expected}, the continuation run {spec.location} starts itself: "
                           "a continue input is only its own continue-as-new; to continue a "
                           f'stopped run, start {{"resume": "{spec.location}"}}')


def in_ranges(spec: RunSpec, deployment: Deployment, storage: Storage) -> bool:
    """Whether the run's split is the range split (PlanRanges, ScanRanges, ...): a source of
    at least ``deployment.range_split_from`` bytes split by size, neither compressed nor
    transcoded (another encoding: ``split.encoding``). A source that cannot be found takes
    the sequential Split, which fails with the reason."""
    try:
        info = storage.stat(spec.source)
    except (SourceNotFound, SourceUnreadable):
        return False
    return range_split_applies(spec.source, spec.split_settings, info, storage,
                               deployment.range_split_from)


def _check_folders(spec: RunSpec) -> None:
    """A file where the run keeps a folder (a user's ``out/results``) would fail every chunk
    one by one; it fails the run at once instead, naming it. So does a symbolic link there:
    through it the run would write, replace and delete files outside its location."""
    for folder in spec.layout.folders:
        if is_s3(folder):
            continue
        if os.path.islink(folder):
            raise DestinationUnwritable(
                f"run location {spec.location}: {folder} is a symbolic link, not a directory, "
                "where the run keeps its files; replace it by a directory or choose another "
                "run location")
        if os.path.lexists(folder) and not os.path.isdir(folder):
            raise DestinationUnwritable(
                f"run location {spec.location}: {folder} is a file, not a directory, where the "
                "run keeps its files; move it away or choose another run location")


def _clear_folder(directory: str, storage: Storage) -> None:
    """The run's own scratch folder emptied (``ranges/``: only a run writes there)."""
    for name in storage.list(directory):
        storage.delete(join(directory, name))


def split_step(spec: RunSpec, token: dict[str, Any] | None, deployment: Deployment,
               storage: Storage, should_stop: Callable[[], bool]) -> dict[str, Any]:
    """Split (or continue splitting) until done or until ``should_stop``."""
    manifest = reusable_manifest(spec, storage) if token is None else None
    if manifest is None:
        resume = ResumeToken.from_dict(token) if token else None
        result = split(spec.source, spec.layout.chunks, spec.split_settings, storage,
                       resume=resume, should_stop=should_stop)
        if result.token is not None:
            return {"done": False, "token": result.token.to_dict()}
        manifest = result.manifest
        assert manifest is not None
        clear_other_splits(spec, manifest, storage)
    return split_done(spec, manifest, deployment)


def clear_other_splits(spec: RunSpec, manifest: Manifest, storage: Storage) -> None:
    """After a split made again (the chunks expired, other settings): the outcomes of chunks
    that are not chunks of this split (beyond its count, or cut elsewhere) go, so results
    never hold a record twice and no earlier status stands for a new chunk."""
    def of_this_split(index: int, status: dict[str, Any]) -> bool:
        return index < manifest.count and of_chunk(status, manifest.chunks[index])

    clear_outcomes(spec.location, storage, keep=of_this_split)


def split_done(spec: RunSpec, manifest: Manifest, deployment: Deployment) -> dict[str, Any]:
    """What a finished split hands on to the lanes."""
    return {"done": True, "count": manifest.count, "rows": manifest.rows,
            "manifest": spec.layout.manifest,
            "lanes": first_lanes(manifest.count, spec.lanes, deployment.event_budget)}


def reusable_manifest(spec: RunSpec, storage: Storage) -> Manifest | None:
    """An existing manifest of the same source version and settings whose chunks are all
    still there (a lifecycle rule expires chunks, not manifests), if there is one."""
    manifest = _existing_manifest(spec, storage)
    if manifest is None or manifest.settings != spec.split_settings:
        return None
    info = storage.stat(spec.source)
    same_source = (manifest.source.etag, manifest.source.size) == (info.etag, info.size)
    if not (same_source and _covers_the_source(manifest)):
        return None
    return manifest if _chunks_present(spec, manifest, storage) else None


def _covers_the_source(manifest: Manifest) -> bool:
    """The chunks follow each other from the header's end, and (when the source is read as
    stored, not decompressed) end where the source ends: a manifest cut short loses records."""
    offset = manifest.format.data_start
    for chunk in manifest.chunks:
        if chunk.source_offset != offset:
            return False
        offset += chunk.bytes - manifest.header_bytes
    return (is_compressed(manifest.source.uri) or manifest.format.transcoded
            or offset == manifest.source.size)


def check_resumable(spec: RunSpec, storage: Storage) -> None:
    """A resume continues the results of the source version the run was split from; any
    other version fails ``SourceChanged`` (a run without a manifest has no results yet)."""
    manifest = _existing_manifest(spec, storage)
    if manifest is None:
        return
    was = manifest.source
    if was.uri != spec.source:  # (copied from another run: its chunks are of another file)
        raise corrupt(spec.layout.manifest, f"the manifest of a split of {was.uri}, but "
                      f"{spec.layout.spec} names the source {spec.source}: one of them is not "
                      f"this run's", f"if the manifest is, {spec.layout.manifest_remedy}; if "
                      "run.json is, put back the run's own")
    info = storage.stat(spec.source)
    if (was.etag, was.size) != (info.etag, info.size):
        raise SourceChanged(
            f"{spec.source} changed since run {spec.location} was split (etag {was.etag} size "
            f"{was.size} -> etag {info.etag} size {info.size}): its results are of the earlier "
            f"version, so it cannot be resumed; start a new run of the source instead "
            f"(s3split run {spec.source} --out {spec.location}, or start the state machine "
            f'with {{"source": "{spec.source}", "run": "{spec.location}"}})')


def _existing_manifest(spec: RunSpec, storage: Storage) -> Manifest | None:
    if not storage.exists(spec.layout.manifest):
        return None
    return Manifest.read(storage, spec.layout.manifest, spec.layout.manifest_remedy)


def _chunks_present(spec: RunSpec, manifest: Manifest, storage: Storage) -> bool:
    """Every chunk the manifest lists exists where this run keeps its chunks (one listing)."""
    present = set(storage.list(spec.layout.chunks))
    return all(entry.uri == join(spec.layout.chunks, chunk_name(entry.index))
               and chunk_name(entry.index) in present for entry in manifest.chunks)


def summarize(spec: RunSpec, lanes: list[dict[str, Any]], generation: int, lease: str,
              deployment: Deployment, storage: Storage) -> dict[str, Any]:
    """Continue as new while lanes have chunks left; else write the report and unlock."""
    unfinished = [state for state in lanes if state["more"]]
    if unfinished:
        budget = deployment.event_budget // len(unfinished)
        return {"more": True, "generation": generation + 1,
                "name": continuation_name(spec.run_id, lease, generation + 1),
                "lanes": [lane(s["index"] - s["step"], s["step"], s["count"], budget)
                          for s in unfinished]}
    manifest = Manifest.read(storage, spec.layout.manifest, spec.layout.manifest_remedy)
    report = build_report(spec, manifest, storage)
    storage.write_json(spec.layout.report, report)
    release(spec.location, lease, storage)
    return {"more": False, "succeeded": report["succeeded"], "accounted": report["accounted"],
            "report": spec.layout.report, "chunks_failed": report["chunks_failed"],
            "message": outcome_message(report, spec)}


def outcome_message(report: dict[str, Any], spec: RunSpec) -> str:
    """Why a finished run did or did not succeed, in one line."""
    if not report["accounted"]:
        return (f"records do not add up: {report['source_rows']} in the source, "
                f"{report['rows_ok']} ok + {report['rows_rejected']} rejected + "
                f"{report['rows_in_failed_chunks']} in failed chunks; see {spec.layout.report}")
    return (f"{report['chunks_failed']} of {report['chunks']} chunks failed and "
            f"{report['rows_rejected']} of {report['source_rows']} rows were rejected "
            f"(tolerated: {spec.tolerate}); see {spec.layout.report}")
