"""One way to read and write local paths and ``s3://`` URIs.

Writes are all-or-nothing: a local file is written to a temporary name and
renamed into place; an S3 object is a multipart upload that only appears when
it completes (smart-open aborts it when the ``with`` block raises). So a file
that exists is always complete.
"""

import errno
import fcntl
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

from s3split.errors import (
    BucketNotFound,
    ConditionalWritesIgnored,
    DestinationUnwritable,
    InvalidOption,
    SourceChanged,
    SourceNotFound,
    SourceUnreadable,
)
from s3split.streams import (
    bz2_reader,
    checked_reader,
    is_write_failure,
    size_of,
    unwritable,
)

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_s3 import S3Client

S3_PART_SIZE = 16 * 1024 * 1024  # S3 wants >= 5 MiB; this bounds the upload buffer
READ_BUFFER = 8 * 1024 * 1024
# The key a first lock at a location creates twice for a moment (_require_conditional_writes).
CONDITIONAL_PROBE = ".s3split-conditional-write-probe-"
# Throttling and 5xx are retried by botocore with backoff before any of our code sees them.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
# boto3, botocore and smart-open are imported where S3 (or decompression) is used: a local
# split does not pay for them at start-up.


def s3_config() -> "Config":
    from botocore.config import Config

    return Config(retries={"mode": "standard", "max_attempts": 10})


def __getattr__(name: str) -> Any:
    if name == "S3_CONFIG":  # (the name other modules import)
        return s3_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# S3's answers to a conditional write that lost: the version changed, or a write is under way.
_LOST_RACE = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
# GetObject's answers when the pinned version is no longer there to read.
NOT_THAT_VERSION: Final = frozenset({"PreconditionFailed", "412", "NoSuchKey", "NoSuchVersion",
                                     "404"})


# (endpoint, location)s whose store refused a second conditional create: probed once each.
_CONDITIONAL_WRITES_PROBED: set[tuple[str, str]] = set()


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def _decompressed(uri: str, params: dict[str, Any]) -> IO[bytes]:
    """``uri`` opened with smart-open, decompressed by its name's suffix; failures of a
    compressed one are ``CorruptSource`` (``streams``). bz2 is decompressed by our own
    reader: smart-open's ``bz2.BZ2File`` drops a damaged stream after the first silently."""
    import smart_open

    compression = "disable" if uri.endswith(".bz2") else "infer_from_extension"
    stream: IO[bytes] = smart_open.open(uri, "rb", transport_params=params,
                                        compression=compression)
    if uri.endswith(".bz2"):
        stream = bz2_reader(stream)
    return checked_reader(uri, stream) if is_compressed(uri) else stream


def is_compressed(uri: str) -> bool:
    """Read decompressed: sizes and offsets in the stream are not the object's."""
    return uri.endswith((".gz", ".zst", ".bz2"))


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def join(base: str, *names: str) -> str:
    """Join path parts the way ``base`` needs (``/`` for S3, os rules locally)."""
    if is_s3(base):
        return "/".join([base.rstrip("/"), *names])
    return os.path.join(base, *names)


def basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def _local_etag(path: str) -> str:
    """Local files have no ETag: inode, modification and change times and size identify a
    version (a file replaced by a rename with its size and mtime kept still has another
    inode; one rewritten in place with its mtime set back has another change time, which
    no one can set)."""
    st = os.stat(path)
    return f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_ctime_ns:x}-{st.st_size:x}"'


@dataclass(frozen=True)
class ObjectInfo:
    """What identifies one version of a source."""

    uri: str
    size: int
    etag: str | None = None
    version_id: str | None = None


@contextmanager
def _bucket_must_exist(uri: str, doing: str) -> Iterator[None]:
    """A call on a bucket that does not exist: one named error naming it (smart-open wraps
    botocore's in a ValueError or OSError)."""
    from botocore.exceptions import ClientError

    try:
        yield
    except (ClientError, ValueError, OSError) as exc:
        if "NoSuchBucket" not in repr(exc) + repr(exc.__cause__) + repr(exc.__context__):
            raise
        raise BucketNotFound(f"bucket {split_s3(uri)[0]} does not exist ({doing} {uri})") \
            from None


# Creating a file (its directory, its temporary name) fails for these as for a full disk: the
# destination cannot take it. (While writing, EACCES could be a read of the source instead.)
_CREATE_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


@contextmanager
def _creating(uri: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if is_write_failure(exc) or exc.errno in _CREATE_ERRNOS:
            raise unwritable(uri, exc, None) from None
        raise


def make_directory(directory: str, uri: str) -> None:
    """Create ``directory`` (and its parents) to write ``uri`` in; ``DestinationUnwritable``
    naming the file in the way, or why the file system refuses, when it cannot be."""
    with _creating(uri):
        try:
            os.makedirs(directory, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            path = directory
            while os.path.lexists(path) is os.path.isdir(path) and os.path.dirname(path) != path:
                path = os.path.dirname(path)  # up to the first that is there but no directory
            raise DestinationUnwritable(
                f"cannot write {uri}: {path} is not a directory; move it away or choose "
                "another destination") from None



def json_document(data: bytes | str) -> Any:
    """``data`` parsed as JSON; ValueError also for one nested too deeply to parse (a file
    written to break the reader: Python's parser recurses)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _read_local_document(path: str) -> bytes:
    """A local state file's bytes; ValueError (as for a file that is not JSON) when ``path``
    is no regular file: a directory, a device, or a FIFO, whose open would wait for a writer
    for ever. FileNotFoundError when there is nothing at ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) \
            else "a device or socket"
        raise ValueError(f"{kind}, not a file")
    with os.fdopen(fd, "rb") as f:
        return f.read()


class Storage:
    """Local files and S3 objects behind one small interface."""

    def __init__(self, s3_client: "S3Client | None" = None) -> None:
        self._s3 = s3_client

    @property
    def s3(self) -> "S3Client":
        if self._s3 is None:
            import boto3

            self._s3 = boto3.client("s3", config=s3_config())  # honours AWS_ENDPOINT_URL
        return self._s3

    def stat(self, uri: str) -> ObjectInfo:
        """Size and identity of a source; a clear error when it is missing or not a file."""
        if is_s3(uri):
            from botocore.exceptions import ClientError

            bucket, key = split_s3(uri)
            try:
                head = self.s3.head_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                    raise SourceNotFound(f"source not found: {uri}") from None
                raise SourceUnreadable(f"cannot read source {uri}: {code or exc}") from None
            return ObjectInfo(uri, head["ContentLength"], head.get("ETag"), head.get("VersionId"))
        if not os.path.exists(uri):
            raise SourceNotFound(f"source not found: {uri}")
        if not os.path.isfile(uri):
            raise SourceUnreadable(f"source is not a regular file: {uri}")
        if not os.access(uri, os.R_OK):
            raise SourceUnreadable(f"source is not readable (permission denied): {uri}")
        return ObjectInfo(uri, os.stat(uri).st_size, _local_etag(uri))

    def open_read(self, uri: str, version_id: str | None = None) -> IO[bytes]:
        """A binary stream of the source; ``.gz``, ``.zst`` and ``.bz2`` are decompressed."""
        if not is_s3(uri) and not is_compressed(uri):
            return open(uri, "rb", buffering=READ_BUFFER)
        params: dict[str, Any] = {}
        if is_s3(uri):
            params = {"client": self.s3, "buffer_size": READ_BUFFER}
            if version_id:
                params["version_id"] = version_id
        return _decompressed(uri, params)

    def open_source(self, info: ObjectInfo) -> IO[bytes]:
        """``open_read`` pinned to the version ``info`` describes, reconnects included.

        S3: ``VersionId`` when the bucket is versioned and ``If-Match`` with the ETag, so a
        read of any other version fails ``SourceChanged``. Local files cannot be pinned:
        ``check_unchanged`` finds a rewrite at the end.
        """
        if not is_s3(info.uri):
            return self.open_read(info.uri)
        params = {"client": _PinnedClient(self.s3, info), "buffer_size": READ_BUFFER}
        return _decompressed(info.uri, params)

    def read_head(self, info: ObjectInfo, size: int) -> bytes:
        """The first ``size`` bytes (fewer in a shorter source) of the version ``info``
        describes: one ranged GET of S3, pinned as ``open_source`` pins its reads."""
        if not is_s3(info.uri) or info.size == 0:
            with self.open_read(info.uri) as f:
                return f.read(size)
        bucket, key = split_s3(info.uri)
        end = min(size, info.size) - 1
        response = _PinnedClient(self.s3, info).get_object(Bucket=bucket, Key=key,
                                                           Range=f"bytes=0-{end}")
        head: bytes = response["Body"].read()
        return head

    def check_unchanged(self, info: ObjectInfo, bytes_read: int) -> None:
        """Fail ``SourceChanged`` unless the source read was the version ``info`` describes:
        ``bytes_read`` (of an uncompressed source) is its size and, locally, the file still
        has the identity it had at the start."""
        if not is_compressed(info.uri) and bytes_read != info.size:
            raise SourceChanged(
                f"{info.uri} changed during the split: {bytes_read} bytes were read, but it had "
                f"{info.size} when the split started; start the split again")
        self.check_still(info)

    def check_still(self, info: ObjectInfo) -> None:
        """Fail ``SourceChanged`` if a local source no longer has the identity in ``info``
        (S3 reads are pinned by ``open_source``, so there is nothing to check)."""
        if is_s3(info.uri):
            return
        now = _local_etag(info.uri) if os.path.isfile(info.uri) else None
        if now != info.etag:
            raise SourceChanged(
                f"{info.uri} changed during the split (inode-mtime-ctime-size {info.etag} -> "
                f"{now or 'removed'}); start the split again")

    @contextmanager
    def writer(self, uri: str, tags: Mapping[str, str] | None = None) -> Iterator[IO[bytes]]:
        """Write ``uri`` all-or-nothing (see module docstring); S3 objects get ``tags``."""
        if is_s3(uri):
            import smart_open

            params: dict[str, Any] = {"client": self.s3, "min_part_size": S3_PART_SIZE}
            if tags:
                tagging = {"Tagging": urlencode(dict(tags))}
                params["client_kwargs"] = {"S3.Client.create_multipart_upload": tagging,
                                           "S3.Client.put_object": tagging}
            with _bucket_must_exist(uri, "writing"), \
                    smart_open.open(uri, "wb", transport_params=params, compression="disable") as f:
                yield f
            return
        directory = os.path.dirname(uri) or "."
        name = os.path.basename(uri)
        tmp = ""
        try:
            with _creating(uri):
                make_directory(directory, uri)
                fd = -1
                while fd < 0:  # (named before it is made: a stop in between finds its name)
                    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
                    with suppress(FileExistsError):
                        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                     0o600)
            with os.fdopen(fd, "wb") as f:
                yield f
            os.chmod(tmp, 0o666 & ~_UMASK)  # (made 0600 until whole; then the usual mode)
            if os.path.isdir(uri):
                raise DestinationUnwritable(f"cannot write {uri}: a directory has that name; "
                                            "move it away or choose another destination")
            os.replace(tmp, uri)
        except BaseException as exc:
            if not tmp:
                raise
            written = size_of(tmp)
            with suppress(FileNotFoundError):  # (a signal just after the replace: none left)
                os.unlink(tmp)
            if is_write_failure(exc):
                raise unwritable(uri, exc, written) from None
            raise

    def write_json(self, uri: str, document: Any) -> None:
        with self.writer(uri) as f:
            f.write(json.dumps(document, indent=1, ensure_ascii=False).encode())

    def read_json(self, uri: str) -> Any:
        if not is_s3(uri) and not is_compressed(uri):
            return json_document(_read_local_document(uri))
        with self.open_read(uri) as f:
            return json_document(f.read())

    def read_json_version(self, uri: str) -> tuple[Any, str] | None:
        """A JSON document and a version token for ``put_json_if``; None when it is absent."""
        if is_s3(uri):
            bucket, key = split_s3(uri)
            try:
                with _bucket_must_exist(uri, "reading"):
                    response = self.s3.get_object(Bucket=bucket, Key=key)
            except self.s3.exceptions.NoSuchKey:
                return None
            return json_document(response["Body"].read()), response["ETag"]
        try:
            data = _read_local_document(uri)
        except FileNotFoundError:
            return None
        return json_document(data), _version(data)

    def put_json_if(self, uri: str, document: Any, version: str | None) -> bool:
        """Write ``document`` only if ``uri`` is still at ``version`` (None: still absent).

        False when another writer got there first. On S3 a conditional PUT; locally the
        compare and the rename happen under an exclusive ``flock`` of the directory.
        """
        data = json.dumps(document, indent=1, ensure_ascii=False).encode()
        if is_s3(uri):
            from botocore.exceptions import ClientError

            bucket, key = split_s3(uri)
            self._require_conditional_writes(uri.rsplit("/", 1)[0])
            try:
                with _bucket_must_exist(uri, "writing"):
                    if version is None:
                        self.s3.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
                    else:
                        self.s3.put_object(Bucket=bucket, Key=key, Body=data, IfMatch=version)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in _LOST_RACE:
                    return False
                raise
            return True
        directory = os.path.dirname(uri) or "."
        make_directory(directory, uri)
        guard = os.open(directory, os.O_RDONLY)
        try:
            fcntl.flock(guard, fcntl.LOCK_EX)
            current = self.read_json_version(uri)
            if (current[1] if current else None) != version:
                return False
            with self.writer(uri) as f:
                f.write(data)
        finally:
            os.close(guard)  # and with it the flock
        return True

    def _require_conditional_writes(self, location: str) -> None:
        """Locks rest on ``If-None-Match: *``; a store that ignores it (some S3-compatible
        ones do) would let two holders in silently. Creates one probe key twice: the second
        create must be refused."""
        probed = (str(self.s3.meta.endpoint_url), location)
        if probed in _CONDITIONAL_WRITES_PROBED:
            return
        from botocore.exceptions import ClientError

        probe = f"{location}/{CONDITIONAL_PROBE}{os.getpid()}-{os.urandom(6).hex()}"
        bucket, key = split_s3(probe)
        with _bucket_must_exist(probe, "writing"):
            self.s3.put_object(Bucket=bucket, Key=key, Body=b"{}", IfNoneMatch="*")
            try:
                self.s3.put_object(Bucket=bucket, Key=key, Body=b"{}", IfNoneMatch="*")
                refused = False
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in _LOST_RACE:
                    raise
                refused = True
            finally:
                self.s3.delete_object(Bucket=bucket, Key=key)
        if not refused:
            raise ConditionalWritesIgnored(
                f"the S3 store of {location} ignores conditional writes (a second PUT of "
                f"{probe} with If-None-Match: * was accepted), so its run and split locks "
                "cannot hold: use AWS S3 or a store that refuses that PUT with 412")
        _CONDITIONAL_WRITES_PROBED.add(probed)

    def exists(self, uri: str) -> bool:
        if not is_s3(uri):
            return os.path.exists(uri)
        try:
            self.stat(uri)
        except SourceNotFound:
            return False
        return True

    def some_under(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` names under a directory (its entries) or S3 prefix (keys below it,
        relative): whether anything is there, and what."""
        if not is_s3(prefix):
            return sorted(os.listdir(prefix))[:limit] if os.path.isdir(prefix) else []
        bucket, key = split_s3(prefix.rstrip("/") + "/")
        with _bucket_must_exist(prefix, "listing"):
            page = self.s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=limit)
        return [obj["Key"][len(key):] for obj in page.get("Contents", [])]

    def list(self, prefix: str) -> list[str]:
        """Names (not URIs) of the files directly under a directory or S3 prefix, sorted."""
        if not is_s3(prefix):
            return sorted(os.listdir(prefix)) if os.path.isdir(prefix) else []
        bucket, key = split_s3(prefix.rstrip("/") + "/")
        names: list[str] = []
        with _bucket_must_exist(prefix, "listing"):
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
            for page in pages:
                names.extend(obj["Key"][len(key):] for obj in page.get("Contents", []))
        return sorted(name for name in names if "/" not in name)

    def check_directory(self, uri: str) -> None:
        """A local destination must be a directory or creatable as one (S3 prefixes always are)."""
        if is_s3(uri):
            return
        path = os.path.abspath(uri)
        while not os.path.lexists(path):
            path = os.path.dirname(path)
        if os.path.islink(path) and not os.path.exists(path):
            raise InvalidOption(f"destination {uri}: {path} is a dangling symbolic link "
                                f"(to {os.readlink(path)})")
        if not os.path.isdir(path):
            raise InvalidOption(f"destination {uri} is not a directory")

    def remove_empty_directory(self, uri: str) -> None:
        """Local directories outlive their files; S3 prefixes do not."""
        if not is_s3(uri) and os.path.isdir(uri) and not os.listdir(uri):
            os.rmdir(uri)

    def delete(self, uri: str) -> None:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            with _bucket_must_exist(uri, "deleting"):
                self.s3.delete_object(Bucket=bucket, Key=key)
        elif os.path.isdir(uri) and not os.path.islink(uri):
            raise DestinationUnwritable(f"{uri}: a directory where s3split deletes and "
                                        "writes a file of its own; move it away")
        elif os.path.exists(uri):
            os.unlink(uri)


def read_pin(version_id: str | None, etag: str | None) -> dict[str, str]:
    """GetObject's and HeadObject's parameters that hold a read to one version: both when
    there are both (with versioning suspended, the "null" version is rewritten in place)."""
    return ({"VersionId": version_id} if version_id else {}) | (
        {"IfMatch": etag} if etag else {})


class _PinnedClient:
    """An S3 client whose GetObject only ever returns one version of one object.

    smart-open calls ``get_object`` for its first request and for every reconnect after a
    dropped connection; each gets the pin, and an answer that the version is gone becomes
    ``SourceChanged`` (smart-open would wrap a ClientError in a plain OSError).
    """

    def __init__(self, client: "S3Client", info: ObjectInfo) -> None:
        self._client, self._info = client, info
        self._pin = read_pin(info.version_id, info.etag)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_object(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        try:
            return self._client.get_object(**{**kwargs, **self._pin})
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in NOT_THAT_VERSION:
                raise
            version = self._info.version_id
            if code in ("PreconditionFailed", "412"):
                what = f"it no longer has ETag {self._info.etag}"
            else:
                what = f"version {version} is gone" if version else "it was deleted"
            at = f" {kwargs['Range']}" if kwargs.get("Range") else ""
            raise SourceChanged(
                f"{self._info.uri} changed during the split: {what} (S3 answered {code} to "
                f"GetObject{at}); start the split again") from None
