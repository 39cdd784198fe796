"""Multipart uploads that outlive their run: what an attempt records before its first part, and
which of the parts already stored a later attempt may keep.

A part is kept only when the endpoint lists it with the size of the matching span of the body
and an ETag that is the MD5 of that span (S3's and Spaces' ETag of an unencrypted part). The
upload is resumed only for the same bytes: the same size and sha256 as when it was started.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore import exceptions as bce

from upload_jobs.storage.failures import NO_SUCH_UPLOAD
from upload_jobs.storage.upload_body import UploadBody

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
# S3 limits for multipart uploads: parts of 5 MiB to 5 GiB (but the last), at most 10,000 parts.
MIN_PART_BYTES = 5 * MiB
MAX_PART_BYTES = 5 * 1024 * MiB
MAX_PARTS = 10_000


@dataclass(frozen=True)
class MultipartUpload:
    """A multipart upload of a body: its id and part size, and the bytes it was started for."""

    upload_id: str
    part_bytes: int
    size_bytes: int
    sha256: str

    def parts(self) -> list[Span]:
        """The spans of the body its parts hold, in order."""
        return part_spans(self.size_bytes, self.part_bytes)


@dataclass(frozen=True)
class Span:
    """Part `number` of an upload: `length` bytes of the body from `offset`."""

    number: int
    offset: int
    length: int


@dataclass(frozen=True)
class BodyDigests:
    """A body's sha256 and, for a resume, the MD5 of each part it would be cut into."""

    sha256: str
    part_bytes: int | None = None
    part_md5s: tuple[str, ...] = ()


def part_size_for(size: int, chunk_size: int) -> int:
    """The part size for a body of `size` bytes: `chunk_size`, larger if it takes 10,000 parts."""
    return max(chunk_size, math.ceil(size / MAX_PARTS))


def part_spans(size: int, part_bytes: int) -> list[Span]:
    """`size` bytes cut into parts of `part_bytes` (an empty body is one empty part)."""
    return [
        Span(number + 1, offset, min(part_bytes, size - offset))
        for number, offset in enumerate(range(0, max(size, 1), part_bytes))
    ]


def digests_of(body: UploadBody, part_bytes: int | None = None) -> BodyDigests:
    """The body's sha256, with its parts' MD5s when `part_bytes` is given: one read for both."""
    if part_bytes is None:
        return BodyDigests(body.sha256())
    sha256, md5s = body.sha256_and_md5s(part_bytes)
    return BodyDigests(sha256, part_bytes, md5s)


def usable_for(upload: MultipartUpload, size: int, sha256: str) -> str | None:
    """Why `upload` cannot carry these bytes, or None when it can."""
    if (upload.size_bytes, upload.sha256) != (size, sha256):
        return (
            f"it was started for other bytes (sha256 {upload.sha256[:12]}…, "
            f"{upload.size_bytes} bytes; now {sha256[:12]}…, {size} bytes)"
        )
    if not MIN_PART_BYTES <= upload.part_bytes <= MAX_PART_BYTES or len(upload.parts()) > MAX_PARTS:
        return f"its part size ({upload.part_bytes} bytes) is outside S3's limits"
    return None


def stored_parts(
    client: S3Client, bucket: str, key: str, upload_id: str
) -> dict[int, tuple[int, str]] | None:
    """The parts the endpoint holds for the upload, by number: (size, ETag without quotes);
    None when the upload is gone (completed, aborted, or never on this key)."""
    found: dict[int, tuple[int, str]] = {}
    try:
        pages = client.get_paginator("list_parts").paginate(
            Bucket=bucket, Key=key, UploadId=upload_id
        )
        for page in pages:
            for part in page.get("Parts", []):
                number = part.get("PartNumber")
                if number is not None:
                    found[number] = (part.get("Size", -1), part.get("ETag", "").strip('"'))
    except bce.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == NO_SUCH_UPLOAD:
            return None
        raise
    return found


def parts_to_keep(
    body: UploadBody,
    upload: MultipartUpload,
    stored: dict[int, tuple[int, str]],
    digests: BodyDigests,
) -> dict[int, str]:
    """The stored parts that hold exactly the matching span of `body`: number -> ETag."""
    md5s = digests.part_md5s if digests.part_bytes == upload.part_bytes else ()
    kept = {}
    for span in upload.parts():
        size, etag = stored.get(span.number, (-1, ""))
        if size != span.length:
            continue
        md5 = md5s[span.number - 1] if md5s else body.md5(span.offset, span.length)
        if etag == md5:
            kept[span.number] = etag
    return kept
