"""Multipart uploads that outlive their run: what an attempt records before its first part, and
which of the parts already stored a later attempt may keep; the MD5 of every part, which each
part is sent with (Content-MD5) and kept by.

A part is kept only when the endpoint lists it with the size of the matching span of the body
and an ETag that is the MD5 of that span (S3's and Spaces' ETag of an unencrypted part). The
upload is resumed only for the same bytes: the same size and sha256 as when it was started.
"""

from __future__ import annotations

import base64
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore import exceptions as bce

from upload_jobs.storage.failures import upload_is_gone
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
    """A body's sha256 and the MD5 of each part it is cut into (`part_bytes` each; a body sent
    in one PUT is one part)."""

    sha256: str
    part_bytes: int | None = None
    part_md5s: tuple[str, ...] = ()
    size_bytes: int = 0

    def md5_of(self, span: Span) -> str | None:
        """The hex MD5 of the body's bytes in `span`, when it is one of the parts digested."""
        if not self.part_bytes or span.offset % self.part_bytes:
            return None
        index = span.offset // self.part_bytes
        if index >= len(self.part_md5s):
            return None
        if span.length != min(self.part_bytes, max(self.size_bytes - span.offset, 0)):
            return None
        return self.part_md5s[index]


def content_md5(hex_md5: str) -> str:
    """The Content-MD5 header of bytes whose MD5 is `hex_md5`: base64 of the raw digest."""
    return base64.b64encode(bytes.fromhex(hex_md5)).decode("ascii")


def planned_part_bytes(
    size: int, multipart_threshold: int, chunk_size: int, resume: MultipartUpload | None
) -> int:
    """How an upload of `size` bytes will be cut: the whole body for one PUT, a resumed
    upload's parts when it was for as many bytes, else `chunk_size` parts (larger if it takes
    more than 10,000). Digests cut the same way give each request its Content-MD5."""
    if size < multipart_threshold:
        return max(size, 1)
    if resume is not None and resume.size_bytes == size and resume.part_bytes >= MIN_PART_BYTES:
        return resume.part_bytes
    return part_size_for(size, chunk_size)


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
    """The body's sha256 and the MD5 of each `part_bytes` part of it (of the whole body when
    None), in one read."""
    part_bytes = part_bytes or max(body.size, 1)
    sha256, md5s = body.sha256_and_md5s(part_bytes)
    return BodyDigests(sha256, part_bytes, md5s, body.size)


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
    None when the upload is gone (completed, aborted, or never on this key), whatever the
    endpoint calls that (`NoSuchUpload`; Ceph RGW says `NoSuchKey`)."""
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
        if upload_is_gone(exc):
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
