"""``--merge``: a run's results joined, in chunk order, into one file: ``results.jsonl`` (the
JSON Lines parts one after another) or ``results.parquet`` (the Parquet parts' rows, in
order, as one Parquet file written by DuckDB).

Only a run whose every chunk succeeded is merged (a tolerated failure would leave records out
of a file that looks complete), and only the outputs its own status records list, each checked
to be the result of its chunk of this split. The file is written all-or-nothing; a new start
of the run deletes it first (Plan), as it does the report.
"""

import os
import shutil
import tempfile
import uuid

from s3split.errors import InvalidOption
from s3split.holders import Holder, process_alive
from s3split.pipeline.chunk import OK, of_chunk
from s3split.pipeline.layout import RunLayout
from s3split.pipeline.run_lock import acquire, release
from s3split.split.manifest import Manifest
from s3split.storage import Storage, is_s3, join

MERGEABLE = ("jsonl", "parquet")


def merge_results(location: str, storage: Storage) -> str:
    """Write the merged results; its URI. InvalidOption naming why a run cannot be merged;
    RunInProgress while another run holds the location. The merge holds the run's lock: a
    run started meanwhile (another --chunk-size) would replace statuses and results under
    it, and the merged file would mix two runs' chunks."""
    lease = f"merge-{uuid.uuid4()}"
    acquire(location, Holder.new(lease, os.getpid()), storage, process_alive)
    try:
        _remove_killed_merges(location, storage)
        return _merge(location, storage)
    finally:
        release(location, lease, storage)


def _remove_killed_merges(location: str, storage: Storage) -> None:
    """The temporary file of a merge killed part-way (``.results.jsonl.XXXXXXXX.tmp``, as big
    as the results): under the lock no merge of the location is writing one. S3 has none (a
    multipart upload never completed)."""
    names = tuple(f".{os.path.basename(uri)}." for uri in RunLayout(location).merged_files)
    if not is_s3(location):
        for name in storage.list(location):
            if name.startswith(names) and name.endswith(".tmp"):
                storage.delete(join(location, name))


def _merge(location: str, storage: Storage) -> str:
    layout = RunLayout(location)
    manifest = Manifest.from_dict(storage.read_json(layout.manifest))
    outputs: list[str] = []
    for entry in manifest.chunks:
        uri = layout.status(entry.index)
        status = storage.read_json(uri) if storage.exists(uri) else None
        if not (status and status.get("state") == OK and of_chunk(status, entry)):
            raise InvalidOption(f"--merge: chunk {entry.index} of {location} did not succeed, "
                                "so no merged file is written (it would lack its records); "
                                f"fix it and resume with --merge (see {layout.report})")
        output = status.get("output")
        extension = output.rpartition(".")[2] if isinstance(output, str) else None
        if output is None or extension not in MERGEABLE \
                or output != layout.result(entry.index, extension) \
                or (outputs and not outputs[0].endswith(f".{extension}")):
            raise InvalidOption(f"--merge: the {status.get('processor')} processor's output "
                                f"of chunk {entry.index} ({output}) is not JSON Lines or "
                                f"Parquet as the other chunks' are, in {layout.location}: "
                                "only .jsonl or .parquet results are merged")
        outputs.append(output)
    extension = outputs[0].rpartition(".")[2] if outputs else "jsonl"
    target = layout.merged_as(extension)
    if extension == "parquet":
        _merge_parquet(outputs, target, storage)
        return target
    with storage.writer(target) as out:
        for output in outputs:
            with storage.open_read(output) as part:
                shutil.copyfileobj(part, out, 1 << 20)
    return target


def _merge_parquet(outputs: list[str], target: str, storage: Storage) -> None:
    """The parts copied to a private directory (local or S3 alike), their rows in chunk order
    and each part's own order written as one file, then stored whole."""
    from s3split.processors import native

    with tempfile.TemporaryDirectory(prefix="s3split-merge-") as directory:
        parts = []
        for index, output in enumerate(outputs):
            parts.append(os.path.join(directory, f"{index:08d}.parquet"))
            with storage.open_read(output) as part, open(parts[-1], "wb") as local:
                shutil.copyfileobj(part, local, 1 << 20)
        merged = os.path.join(directory, "merged.parquet")
        connection = native.sandboxed(directory)
        try:
            files = ", ".join(native.quote_literal(part) for part in parts)
            connection.execute(
                f"COPY (SELECT * EXCLUDE (filename, file_row_number) FROM read_parquet("
                f"[{files}], filename = true, file_row_number = true) "
                f"ORDER BY filename, file_row_number) TO {native.quote_literal(merged)} "
                "(FORMAT parquet, COMPRESSION zstd)")
        finally:
            connection.close()
        with open(merged, "rb") as local, storage.writer(target) as out:
            shutil.copyfileobj(local, out, 1 << 20)
