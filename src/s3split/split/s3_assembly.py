"""Assemble one chunk in S3 from the source object's own bytes, server-side.

A chunk is ``header + source[start:end]``. Copying it through the splitter means reading and
re-sending every byte; here S3 copies them. S3 wants every part of a multipart upload but the
last to be at least 5 MiB, so part 1 is the header and the chunk's first bytes (enough to
reach 5 MiB), uploaded; the rest of the range is ``UploadPartCopy`` parts of the source. A chunk
that fits in one part is read and written with one GET and one PUT.

Every read and copy of the source is pinned to the version the chunk table was made from
(``VersionId`` when the bucket is versioned, ``If-Match``/``CopySourceIfMatch`` on the ETag), so a
source rewritten meanwhile fails ``SourceChanged`` and never yields a chunk mixing versions. The
object appears only when the upload completes; any failure aborts the upload. Running it again
for the same chunk writes the same bytes.
"""

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Final, Literal, TypedDict, cast
from urllib.parse import urlencode

from botocore.exceptions import ClientError

from s3split.errors import (
    BucketNotFound,
    DestinationUnwritable,
    InvalidOption,
    SourceChanged,
    SourceInDestination,
    SourceUnreadable,
)
from s3split.split.splitter import CHUNK_TAGS
from s3split.storage import NOT_THAT_VERSION, ObjectInfo, is_s3, read_pin, split_s3
from s3split.transient import is_transient, transient_errors

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, CopySourceTypeDef

MiB = 1024 * 1024
MIN_PART = 5 * MiB  # S3: every part but the last
MAX_PART = 5 * 1024 * MiB
MAX_PARTS = 10_000
MAX_OBJECT = 5 * 1024 * 1024 * MiB
COPY_PART_SIZE = 512 * MiB
# A ranged GET whose body is cut off is asked again (botocore retries only what fails before
# the body): the pinned version gives the same bytes, or fails SourceChanged.
BODY_ATTEMPTS: Final = 3

UPLOAD: Final = "upload"  # read through us: one GET, one PUT
COPY: Final = "copy"  # multipart: the first part uploaded, the rest copied by S3
Method = Literal["upload", "copy"]

_TAGGING = urlencode(CHUNK_TAGS)
# S3's answers when the pinned version is not there (any more), or is shorter than planned.
_SOURCE_GONE = NOT_THAT_VERSION | {"InvalidRange", "416"}
Side = Literal["source", "dest", "copy"]


class _ReadPin(TypedDict, total=False):
    VersionId: str
    IfMatch: str


class _CopyPin(TypedDict, total=False):
    CopySourceIfMatch: str


@dataclass(frozen=True)
class PinnedSource:
    """One version of a source object: what the chunk table's offsets refer to."""

    bucket: str
    key: str
    etag: str | None = None
    version_id: str | None = None

    def __post_init__(self) -> None:
        if not self.bucket or not self.key:
            raise InvalidOption(f"source s3://{self.bucket}/{self.key}: bucket and key needed")
        if not self.etag and not self.version_id:
            raise InvalidOption(f"source {self.uri}: an ETag or a version id is needed to pin "
                                "the version the chunk table was made from")

    @classmethod
    def of(cls, info: ObjectInfo) -> "PinnedSource":
        """The version ``Storage.stat`` described."""
        if not is_s3(info.uri):
            raise InvalidOption(f"source {info.uri} is not an s3:// object")
        bucket, key = split_s3(info.uri)
        return cls(bucket, key, info.etag, info.version_id)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def read_pin(self) -> _ReadPin:
        """For GetObject and HeadObject (``storage.read_pin``)."""
        return cast(_ReadPin, read_pin(self.version_id, self.etag))

    def copy_source(self) -> "CopySourceTypeDef":
        if self.version_id:
            return {"Bucket": self.bucket, "Key": self.key, "VersionId": self.version_id}
        return {"Bucket": self.bucket, "Key": self.key}

    def copy_pin(self) -> _CopyPin:
        return {"CopySourceIfMatch": self.etag} if self.etag else {}


@dataclass(frozen=True)
class PartPlan:
    """How a chunk is built: source bytes ``[start, first_end)`` go with the header (in the
    one PUT, or in part 1), and ``copies`` are the source ranges ``[a, b)`` of parts 2, 3, ..."""

    method: Method
    start: int
    first_end: int
    end: int
    copies: tuple[tuple[int, int], ...]

    @property
    def parts(self) -> int:
        return 1 + len(self.copies)


def plan_parts(header_len: int, start: int, end: int,
               part_size: int = COPY_PART_SIZE) -> PartPlan:
    """The parts for ``header + source[start:end]``: copy parts of ``part_size`` (larger when
    needed to stay within 10,000 parts), every part but the last at least 5 MiB."""
    if not MIN_PART <= part_size <= MAX_PART:
        raise InvalidOption(f"invalid copy part size {part_size}: S3 parts are 5 MiB to 5 GiB")
    if start < 0 or end <= start:
        raise InvalidOption(f"invalid chunk range {start}-{end}: need 0 <= start < end")
    if header_len + end - start > MAX_OBJECT:
        raise InvalidOption(f"chunk of {header_len + end - start} bytes (source bytes "
                            f"{start}-{end}) is larger than an S3 object can be (5 TiB)")
    if header_len > MAX_PART:
        raise InvalidOption(f"header of {header_len} bytes is larger than an S3 part (5 GiB)")
    if header_len + end - start <= MIN_PART:
        return PartPlan(UPLOAD, start, end, end, ())
    first_end = start + max(0, MIN_PART - header_len)
    rest = end - first_end
    size = max(part_size, math.ceil(rest / (MAX_PARTS - 1)))
    copies = tuple((a, min(a + size, end)) for a in range(first_end, end, size))
    return PartPlan(COPY, start, first_end, end, copies)


def assemble_chunk(s3: "S3Client", source: PinnedSource, header: bytes, start: int, end: int,
                   dest: tuple[str, str], part_size: int = COPY_PART_SIZE,
                   fetch: Callable[[int, int], bytes] | None = None) -> Method:
    """Write ``header + source[start:end]`` to ``dest`` (bucket, key) with the chunk tags;
    return how: ``"upload"`` or ``"copy"`` (see module docstring). ``fetch(a, b)`` gets the
    source bytes uploaded (by default a GET; a split that read them already keeps them)."""
    if (source.bucket, source.key) == dest:
        raise SourceInDestination(f"chunk destination {source.uri} is the source itself")
    plan = plan_parts(len(header), start, end, part_size)
    read = fetch or partial(read_range, s3, source)
    if plan.method == UPLOAD:
        body = header + read(start, end)
        with _named(f"PutObject of chunk s3://{dest[0]}/{dest[1]}", "dest", source, dest):
            s3.put_object(Bucket=dest[0], Key=dest[1], Body=body, Tagging=_TAGGING)
        return UPLOAD
    _check_size(s3, source, end)
    first = header + read(start, plan.first_end)
    _multipart(s3, source, first, plan, dest)
    return COPY


def _multipart(s3: "S3Client", source: PinnedSource, first: bytes, plan: PartPlan,
               dest: tuple[str, str]) -> None:
    bucket, key = dest
    where = f"chunk s3://{bucket}/{key}"
    with _named(f"CreateMultipartUpload of {where}", "dest", source, dest):
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, Tagging=_TAGGING)["UploadId"]
    try:
        with _named(f"UploadPart 1 of {where}", "dest", source, dest):
            etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1,
                                  Body=first)["ETag"]
        parts: list[CompletedPartTypeDef] = [{"PartNumber": 1, "ETag": etag}]
        for number, (a, b) in enumerate(plan.copies, start=2):
            with _named(f"UploadPartCopy {number} of {where} from {source.uri} bytes {a}-{b - 1}",
                        "copy", source, dest):
                result = s3.upload_part_copy(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                    CopySource=source.copy_source(), CopySourceRange=f"bytes={a}-{b - 1}",
                    **source.copy_pin())
            parts.append({"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]})
        # S3 checks CopySourceIfMatch on every part copy; moto (and some S3-compatible stores)
        # do not, so the pinned version must still be there before anything becomes visible.
        _check_size(s3, source, plan.end)
        with _named(f"CompleteMultipartUpload of {where}", "dest", source, dest):
            s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
    except BaseException:
        # If the abort fails too, the upload stays invisible; the bucket's lifecycle rule
        # (AbortIncompleteUploads) removes it.
        with suppress(Exception):
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise


def read_range(s3: "S3Client", source: PinnedSource, start: int, end: int) -> bytes:
    """``source[start:end]`` of the pinned version (nothing to read when ``start == end``)."""
    if start == end:
        return b""
    what = f"GetObject {source.uri} bytes {start}-{end - 1}"
    with _named(what, "source", source, None):
        for attempt in range(1, BODY_ATTEMPTS + 1):
            response = s3.get_object(Bucket=source.bucket, Key=source.key,
                                     Range=f"bytes={start}-{end - 1}", **source.read_pin())
            try:
                data = response["Body"].read()
                break
            except Exception as exc:
                if attempt == BODY_ATTEMPTS or not is_transient(exc):
                    raise
    if len(data) != end - start:
        raise SourceChanged(f"{source.uri} changed since the chunk table was made: bytes "
                            f"{start}-{end - 1} gave {len(data)} bytes, not {end - start} "
                            "(the object is shorter); split again")
    return data


def _check_size(s3: "S3Client", source: PinnedSource, end: int) -> None:
    """Fail ``SourceChanged`` unless the pinned version is still there and reaches ``end``."""
    with _named(f"HeadObject {source.uri}", "source", source, None):
        size = s3.head_object(Bucket=source.bucket, Key=source.key,
                              **source.read_pin())["ContentLength"]
    if size < end:
        raise SourceChanged(f"{source.uri} changed since the chunk table was made: it has "
                            f"{size} bytes, the chunk ends at byte {end}; split again")


@contextmanager
def _named(what: str, side: Side, source: PinnedSource,
           dest: tuple[str, str] | None) -> Iterator[None]:
    """Turn S3's refusal of ``what`` into the project's named errors; what is worth retrying
    (throttling, 5xx, a dropped or cut-off response) is a ``TransientError``."""
    try:
        with transient_errors(what):
            yield
    except ClientError as exc:
        raise _error(what, exc.response.get("Error", {}).get("Code", ""), side, source,
                     dest) from None


def _error(what: str, code: str, side: Side, source: PinnedSource,
           dest: tuple[str, str] | None) -> Exception:
    pin = " and ".join(f"{name} {value}" for name, value in
                       (("version", source.version_id), ("ETag", source.etag)) if value)
    if side != "dest" and code in _SOURCE_GONE:
        return SourceChanged(f"{source.uri} changed since the chunk table was made: {what} "
                             f"answered {code} for {pin}; split again")
    dest_uri = f"s3://{dest[0]}/{dest[1]}" if dest else ""
    if code == "NoSuchBucket":
        buckets = {"source": source.bucket, "dest": dest[0] if dest else "",
                   "copy": f"{source.bucket} or {dest[0] if dest else ''}"}[side]
        return BucketNotFound(f"bucket {buckets} does not exist ({what})")
    if side == "source":
        return SourceUnreadable(f"cannot read source {source.uri}: {what} answered {code}")
    return DestinationUnwritable(f"cannot write chunk {dest_uri}: {what} answered {code}")
