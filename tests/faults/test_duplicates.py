"""The same chunk delivered twice (a retry after a success whose response was lost)."""

import csv
import io
import os
from pathlib import Path

from s3split.pipeline.chunk import process_chunk
from s3split.pipeline.report import build_report
from s3split.pipeline.spec import RunSpec
from s3split.processors import JsonlProcessor
from s3split.split.manifest import Manifest
from s3split.split.splitter import split
from s3split.storage import Storage
from tests.support.pipeline import assert_accounted, csv_text, local_results


def test_second_delivery_changes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    text = csv_text(30)
    source.write_text(text, newline="")
    spec = RunSpec(run_id="r", source=str(source), location=str(tmp_path / "run"),
                   chunk_size=1000, lanes=1, wait_seconds=0, processor="jsonl", tolerate="0")
    storage = Storage()
    result = split(spec.source, spec.layout.chunks, spec.split_settings, storage)
    manifest = result.manifest
    assert isinstance(manifest, Manifest) and manifest.count > 2
    first = process_chunk(spec, 1, 1, storage, JsonlProcessor(), manifest)
    output = Path(spec.layout.result(1, "jsonl"))
    written = output.read_bytes(), os.stat(output).st_mtime_ns
    second = process_chunk(spec, 1, 2, storage, JsonlProcessor(), manifest)
    assert second == first  # the recorded success, not a new attempt
    assert (output.read_bytes(), os.stat(output).st_mtime_ns) == written
    assert sorted(p.name for p in output.parent.iterdir()) == ["part-00001.jsonl"]

    # Every chunk, and chunk 1 twice more: each record still counted and written exactly once.
    for index in [*range(manifest.count), 1]:
        process_chunk(spec, index, 1, storage, JsonlProcessor(), manifest)
    assert_accounted(build_report(spec, manifest, storage), 30,
                     storage.read_json(spec.layout.manifest))
    assert local_results(tmp_path / "run") == list(csv.DictReader(io.StringIO(text, newline="")))
