"""Decompression and write failures as named errors that say which file and where.

gzip, zlib and zstd report a bad stream with their own exception types (and ``EOFError``,
which click would turn into a bare ``Aborted!``); a full disk is an ``OSError`` with no
file name. These wrappers turn them into :class:`CorruptSource` and
:class:`DestinationUnwritable` naming the file and the byte offset.
"""

import bz2
import errno
import gzip
import io
import os
import zlib
from types import TracebackType
from typing import IO, Any, TypeGuard, cast

from backports import zstd

from s3split.errors import CorruptSource, DestinationUnwritable


class Bz2Error(Exception):
    """bz2's ``OSError("Invalid data stream")``, told apart from a failing read."""


_DECOMPRESSION_ERRORS: tuple[type[BaseException], ...] = (
    EOFError, gzip.BadGzipFile, zlib.error, zstd.ZstdError, Bz2Error)
PIECE = 64 * 1024  # read in pieces: a failure's offset is then within 64 KiB of the damage
# errnos that mean "this destination cannot take more bytes", not a bug in our code
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS})


def _format(uri: str) -> str:
    return "zstd" if uri.endswith(".zst") else "bz2" if uri.endswith(".bz2") else "gzip"


def corrupt(uri: str, offset: int, exc: BaseException) -> CorruptSource:
    """The error for a decompression failure after ``offset`` decompressed bytes."""
    kind = _format(uri)
    if isinstance(exc, EOFError):
        what = f"truncated {kind} data: the compressed stream ends early"
    elif isinstance(exc, gzip.BadGzipFile) and offset == 0:
        what = f"not {kind} data ({exc})"
    else:
        what = f"corrupt {kind} data ({exc})"
    return CorruptSource(f"{uri}: {what}, after {offset:,} good decompressed bytes")


class CheckedReader:
    """A decompressing stream whose failures are :class:`CorruptSource` with the offset."""

    def __init__(self, uri: str, stream: IO[bytes]) -> None:
        self.uri, self._stream, self._offset = uri, stream, 0

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes, decompressed in pieces so a failure's offset is close."""
        pieces: list[bytes] = []
        wanted = size if size >= 0 else float("inf")
        got = 0
        while got < wanted:
            try:
                piece = self._stream.read(int(min(PIECE, wanted - got)))
            except _DECOMPRESSION_ERRORS as exc:
                raise corrupt(self.uri, self._offset, exc) from None
            if not piece:
                break
            pieces.append(piece)
            got += len(piece)
            self._offset += len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def seekable(self) -> bool:
        return self._stream.seekable()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        try:
            self._offset = self._stream.seek(offset, whence)
        except _DECOMPRESSION_ERRORS as exc:
            raise corrupt(self.uri, self._offset, exc) from None
        return self._offset

    def tell(self) -> int:
        return self._offset

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> "CheckedReader":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def checked_reader(uri: str, stream: IO[bytes]) -> IO[bytes]:
    return cast(IO[bytes], CheckedReader(uri, stream))


class Bz2Reader(io.RawIOBase):
    """A bz2 source's streams, one after another (as ``pbzip2`` writes them). Unlike
    ``bz2.BZ2File``, which ends quietly at the first stream after another that does not
    decompress (so a damaged stream loses every record from it on), any bytes after a stream
    must be a whole stream too."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.decompressor = raw, bz2.BZ2Decompressor()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            if self.decompressor.eof:
                data = self.decompressor.unused_data or self.raw.read(PIECE)
                if not data:
                    return 0
                self.decompressor = bz2.BZ2Decompressor()
            elif self.decompressor.needs_input:
                data = self.raw.read(PIECE)
                if not data:
                    raise EOFError("the bz2 stream ends before its end-of-stream marker")
            else:
                data = b""
            try:
                out = self.decompressor.decompress(data, len(buffer))
            except OSError as exc:
                raise Bz2Error(str(exc)) from None
            if out:
                buffer[:len(out)] = out
                return len(out)

    def close(self) -> None:
        self.raw.close()
        super().close()


def bz2_reader(raw: IO[bytes]) -> IO[bytes]:
    return cast(IO[bytes], io.BufferedReader(Bz2Reader(raw), PIECE))


def unwritable(uri: str, exc: OSError, written: int | None) -> DestinationUnwritable:
    """The error for an ``OSError`` from writing ``uri`` (``written`` bytes reached it)."""
    name = errno.errorcode.get(exc.errno or 0, "")
    reason = f"{exc.strerror or exc} ({name})" if name else str(exc.strerror or exc)
    after = f" after {written:,} bytes" if written is not None else ""
    return DestinationUnwritable(f"cannot write {uri}: {reason}{after}")


def size_of(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def is_write_failure(exc: BaseException) -> TypeGuard[OSError]:
    return isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS
