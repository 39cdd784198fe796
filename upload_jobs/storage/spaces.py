"""DigitalOcean Spaces (S3-compatible) through boto3: upload, verify, abort, public URL.

Every failure leaves this module as a `TransientUploadError` or a `PermanentUploadError`
(see `storage.failures`), with a message meant for people that never carries credential values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from botocore import exceptions as bce

from upload_jobs.errors import KeyConflict, PermanentUploadError, UploadVerificationFailed
from upload_jobs.settings import Settings
from upload_jobs.storage.checksums import file_sha256 as file_sha256  # re-exported
from upload_jobs.storage.clients import make_s3_client as make_s3_client  # re-exported
from upload_jobs.storage.conditions import ConditionalWrite, ConditionRefused, KeyExpectation
from upload_jobs.storage.failures import (
    classified_upload_errors,
    classify_upload_error,
    error_code,
    upload_is_gone,
)
from upload_jobs.storage.objects import ExistingObject, find_existing_object, is_not_found
from upload_jobs.storage.ownership import KeyOwner, holder_of, key_conflict
from upload_jobs.storage.resume import (
    MIN_PART_BYTES,
    BodyDigests,
    MiB,
    MultipartUpload,
    digests_of,
    planned_part_bytes,
)
from upload_jobs.storage.transfer import SentParts, Transfer
from upload_jobs.storage.upload_body import UploadBody

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

VIDEO_CONTENT_TYPE = "video/mp4"


@dataclass(frozen=True)
class UploadResult:
    """What ended up in the bucket for one upload (or was already there); `replaced`: it wrote
    over an earlier object of the same job (which a CDN may still serve)."""

    key: str
    size_bytes: int
    etag: str
    sha256: str
    multipart: bool
    skipped_existing: bool
    replaced: bool = False
    # A resumed multipart upload: the parts an earlier try had stored, and the bytes this one sent.
    parts_kept: int = 0
    bytes_sent: int = 0


def public_url(settings: Settings, key: str) -> str:
    """The public (CDN) link of an object key, percent-encoded except for '/'."""
    return settings.resolved_public_base_url() + "/" + quote(key, safe="/")


def upload_video(
    client: S3Client,
    bucket: str,
    source: Path | UploadBody,
    key: str,
    *,
    owner: KeyOwner,
    acl: str,
    cache_control: str,
    digests: BodyDigests | None = None,
    multipart_threshold: int = 64 * MiB,
    chunk_size: int = 16 * MiB,
    concurrency: int = 4,
    on_progress: Callable[[int], None] | None = None,
    resume: MultipartUpload | None = None,
    on_multipart_started: Callable[[MultipartUpload], bool] | None = None,
    content_type: str = VIDEO_CONTENT_TYPE,
) -> UploadResult:
    """Uploads `source` (a file, or a body made of pieces of one) as `key` for `owner` (one PUT,
    or multipart from `multipart_threshold`) and verifies it; `KeyConflict`, and nothing written,
    when the key holds another's object.

    Skips the transfer when the same bytes (and `content_type`) are already there; an empty
    `acl` sends no ACL. A
    multipart upload continues `resume` when it was started for the same bytes;
    `on_multipart_started` sees the upload before its first part and says whether it recorded it
    for a later try (only a recorded upload is kept when a retry may finish it).
    """
    if chunk_size < MIN_PART_BYTES:
        raise ValueError(f"chunk_size must be at least {MIN_PART_BYTES} bytes (S3 part minimum)")
    body = source if isinstance(source, UploadBody) else UploadBody.of_file(source)
    size = body.size
    digests = digests or digests_of(
        body, planned_part_bytes(size, multipart_threshold, chunk_size, resume)
    )
    sha256 = digests.sha256
    existing = find_existing_object(client, bucket, key)
    if existing is not None and not owner.owns(existing):
        raise key_conflict(existing, bucket, owner)
    if existing is not None and _matches(existing, size, sha256, cache_control, content_type):
        logger.info("s3://%s/%s already holds these %d bytes: upload skipped", bucket, key, size)
        return UploadResult(
            key, size, existing.etag, sha256, multipart=False, skipped_existing=True
        )
    # Sent on every upload: an overwrite without them resets them (and the CDN link turns 403).
    metadata = {"sha256": sha256, **owner.metadata()}
    headers: dict[str, Any] = {"ContentType": content_type, "Metadata": metadata}
    headers |= {"CacheControl": cache_control} if cache_control else {}
    headers |= {"ACL": acl} if acl else {}
    # Written only if the key is still as the HEAD saw it: empty, or this very object of ours.
    expected = KeyExpectation(existing.etag if existing is not None else None)
    transfer = Transfer(ConditionalWrite(client, bucket, key, expected), body, headers, on_progress)
    multipart = size >= multipart_threshold
    logger.info("Uploading %s to %s (%d bytes, multipart=%s)", body, transfer, size, multipart)
    sent = SentParts(1, 0, size)
    try:
        with classified_upload_errors(bucket):
            if multipart:
                sent = transfer.multipart(
                    chunk_size, max(1, concurrency), digests, resume, on_multipart_started
                )
            else:
                transfer.put(digests)
    except ConditionRefused:
        raise _taken_meanwhile(client, bucket, key, owner) from None
    stored = _verify(client, bucket, key, size, sha256, owner)
    logger.info("Uploaded %s (%d bytes, ETag %s)", transfer, size, stored.etag)
    return UploadResult(
        key, size, stored.etag, sha256, multipart, skipped_existing=False,
        replaced=existing is not None, parts_kept=sent.kept, bytes_sent=sent.bytes_sent,
    )  # fmt: skip


def _taken_meanwhile(client: S3Client, bucket: str, key: str, owner: KeyOwner) -> KeyConflict:
    """Another writer got to the key between the HEAD and the write, which the endpoint refused."""
    holder = find_existing_object(client, bucket, key)
    if holder is not None and not owner.owns(holder):
        return key_conflict(holder, bucket, owner)
    return KeyConflict(
        f"s3://{bucket}/{key} changed while upload job {owner.job_id} was uploading it: it was "
        "not overwritten; retry to upload again"
    )


def _matches(
    existing: ExistingObject, size: int, sha256: str, cache_control: str, content_type: str
) -> bool:
    """Whether the stored object already is what an upload would write (bytes and headers)."""
    return (
        existing.size_bytes == size
        and existing.sha256 == sha256
        and existing.content_type == content_type
        and (not cache_control or existing.cache_control == cache_control)
    )


def _verify(
    client: S3Client, bucket: str, key: str, size: int, sha256: str, owner: KeyOwner
) -> ExistingObject:
    """HEADs the new object; raises `UploadVerificationFailed` when it differs from the file."""
    stored = find_existing_object(client, bucket, key)
    where = f"Uploaded object s3://{bucket}/{key}"
    if stored is None:
        raise UploadVerificationFailed(f"{where} is not in the bucket")
    if stored.owner != str(owner.job_id):
        raise UploadVerificationFailed(f"{where} now holds {holder_of(stored)}")
    if stored.size_bytes != size:
        raise UploadVerificationFailed(f"{where} has {stored.size_bytes} bytes, the file {size}")
    if stored.sha256 != sha256:
        raise UploadVerificationFailed(
            f"{where} has sha256 metadata {stored.sha256!r}, expected {sha256!r}"
        )
    return stored


def list_open_multipart_uploads(
    client: S3Client, bucket: str, prefix: str = ""
) -> list[dict[str, Any]]:
    """Multipart uploads neither completed nor aborted, as `Key`, `UploadId`, `Initiated` dicts."""
    fields = ("Key", "UploadId", "Initiated")
    with classified_upload_errors(bucket):
        pages = client.get_paginator("list_multipart_uploads").paginate(
            Bucket=bucket, Prefix=prefix
        )
        return [
            {name: upload.get(name) for name in fields}
            for page in pages
            for upload in page.get("Uploads", [])
        ]


@dataclass(frozen=True)
class MultipartCleanup:
    """What a clean-up of open multipart uploads did: aborted, and left for a job to resume;
    why it could not look at all, when it could not."""

    aborted: int
    kept_for_resume: int
    skipped: str | None = None


def abort_stale_multipart_uploads(
    client: S3Client,
    bucket: str,
    older_than: timedelta,
    prefix: str = "",
    *,
    keep: frozenset[str] = frozenset(),
    finished: frozenset[str] = frozenset(),
) -> MultipartCleanup:
    """Aborts open multipart uploads started more than `older_than` ago, and at once those in
    `finished` (their job is done with them); those in `keep` are left for their job's next try."""
    cutoff = datetime.now(UTC) - older_than
    aborted = kept = 0
    for upload in list_open_multipart_uploads(client, bucket, prefix):
        key, upload_id, initiated = upload["Key"], upload["UploadId"], upload["Initiated"]
        if upload_id in keep:
            kept += 1
            continue
        if upload_id not in finished and (initiated is None or initiated > cutoff):
            continue
        if _abort(client, bucket, key, upload_id):
            aborted += 1
            started = initiated.isoformat() if initiated else "at an unknown time"
            logger.info("Aborted stale multipart upload %s of s3://%s/%s (started %s)",
                        upload_id, bucket, key, started)  # fmt: skip
    return MultipartCleanup(aborted, kept)


def _abort(client: S3Client, bucket: str, key: str, upload_id: str) -> bool:
    """Abort one multipart upload; False (logged) when the endpoint would not."""
    with classified_upload_errors(bucket):
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except bce.ClientError as exc:
            if not upload_is_gone(exc):  # already gone is what we wanted
                error = classify_upload_error(exc, bucket=bucket)
                logger.warning("Could not abort stale upload of s3://%s/%s: %s", bucket, key,
                               error)  # fmt: skip
            return False
    return True


def check_bucket_access(client: S3Client, bucket: str) -> None:
    """Raise the classified error when the bucket cannot be reached with these credentials."""
    with classified_upload_errors(bucket):
        try:
            client.head_bucket(Bucket=bucket)
        except bce.ClientError as exc:
            if is_not_found(exc):
                # HEAD answers a bare 404; say it the way an upload would.
                raise PermanentUploadError(
                    f"Upload to bucket '{bucket}' failed: NoSuchBucket (the bucket does not "
                    "exist) — check UPLOAD_JOBS_BUCKET"
                ) from exc
            raise


def ensure_bucket(client: S3Client, bucket: str) -> None:
    """Creates the bucket unless it exists (for the demo and local stores)."""
    with classified_upload_errors(bucket):
        try:
            client.head_bucket(Bucket=bucket)
            return
        except bce.ClientError as exc:
            if not is_not_found(exc):
                raise
        # Outside us-east-1, S3 (and moto) insist the location matches the endpoint's region.
        region = client.meta.region_name
        location = region if region not in (None, "us-east-1") else None
        if not _create_bucket(client, bucket, location):
            # Ceph RGW names its locations after its zonegroups, not the signing region.
            logger.info("%s refuses %s as a bucket location: creating %s in its default one",
                        client.meta.endpoint_url, location, bucket)  # fmt: skip
            _create_bucket(client, bucket, None)
    logger.info("Created bucket %s", bucket)


def _create_bucket(client: S3Client, bucket: str, region: str | None) -> bool:
    """Creates the bucket (in `region`, when given); False when the endpoint refuses that
    region as a location."""
    location: dict[str, Any] = {}
    if region is not None:
        location["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(Bucket=bucket, **location)
    except bce.ClientError as exc:
        if region is not None and error_code(exc) == "InvalidLocationConstraint":
            return False
        if error_code(exc) != "BucketAlreadyOwnedByYou":  # created concurrently: fine
            raise
    return True
