"""``.gz``, ``.zst`` and ``.bz2`` sources are decompressed on the fly, also when resuming."""

import bz2
import gzip
from collections.abc import Callable
from pathlib import Path

import pytest
from backports import zstd

from s3split.split.manifest import SplitSettings
from s3split.split.splitter import split
from s3split.storage import Storage

DATA = b"id,note\r\n" + b"".join(b'%d,"a, ""b""\r\nc"\r\n' % i for i in range(2000))
COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    ".gz": gzip.compress, ".zst": zstd.compress, ".bz2": bz2.compress,
    # streams (members, frames) one after another, as pigz, pbzip2 and zstd -T write them
    ".multi.gz": lambda data: gzip.compress(data[:5000]) + gzip.compress(data[5000:]),
    ".multi.zst": lambda data: zstd.compress(data[:5000]) + zstd.compress(data[5000:]),
    ".multi.bz2": lambda data: bz2.compress(data[:5000]) + bz2.compress(data[5000:]),
}


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_compressed_source_splits_like_the_plain_one(tmp_path: Path, suffix: str) -> None:
    source = tmp_path / f"in.csv{suffix.replace('.multi', '')}"
    source.write_bytes(COMPRESSORS[suffix](DATA))
    settings = SplitSettings(chunk_size=4096)
    stops = iter([True, False, True])  # stop after chunks 1 and 3 to resume mid-stream
    result = split(str(source), str(tmp_path / "out"), settings, Storage(),
                   should_stop=lambda: next(stops, False))
    while result.token is not None:
        result = split(str(source), str(tmp_path / "out"), settings, Storage(),
                       resume=result.token)
    assert result.manifest is not None and result.manifest.count > 3
    header = b"id,note\r\n"
    parts = [(tmp_path / "out" / f"part-{i:05d}.csv").read_bytes()
             for i in range(result.manifest.count)]
    assert all(part.startswith(header) for part in parts)
    assert header + b"".join(part[len(header):] for part in parts) == DATA
    assert result.manifest.rows == 2000
