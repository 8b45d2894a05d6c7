"""A processor's job on a local chunk file, as the worker builds it from the manifest."""

from __future__ import annotations

from pathlib import Path

from s3split.processors import ChunkJob


def make_job(
    tmp_path: Path,
    content: bytes | str,
    *,
    has_header: bool = True,
    source_line: int = 2,
    delimiter: str = ",",
    index: int = 3,
    rows: int = -1,
) -> ChunkJob:
    """``content`` as chunk ``index`` under ``tmp_path/chunks``, its outputs beside it."""
    data = content.encode() if isinstance(content, str) else content
    chunk = tmp_path / "chunks" / f"part-{index:05d}.csv"
    chunk.parent.mkdir(parents=True, exist_ok=True)
    chunk.write_bytes(data)
    return ChunkJob(
        index=index,
        chunk_uri=str(chunk),
        output_uri=str(tmp_path / "results" / f"part-{index:05d}.jsonl"),
        rejects_uri=str(tmp_path / "rejects" / f"part-{index:05d}.jsonl"),
        source_line=source_line,
        has_header=has_header,
        delimiter=delimiter,
        quotechar='"',
        run_id="run-1",
        manifest_etag="",
        rows=rows,
        bytes=len(data),
    )
