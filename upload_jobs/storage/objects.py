"""What a key holds now: one HEAD, read into the facts the product decides by (size, ETag, our
`sha256` and owner metadata, content headers, when it was written)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from botocore import exceptions as bce

from upload_jobs.storage.failures import classified_upload_errors, error_code, http_status

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Next to `sha256` in every uploaded object's metadata (x-amz-meta-upload-job-id).
OWNER_METADATA_KEY = "upload-job-id"


@dataclass(frozen=True)
class ExistingObject:
    """An object's HEAD: size, ETag without quotes, our `sha256` and owner metadata, content
    headers, when it was last written."""

    key: str
    size_bytes: int
    etag: str
    sha256: str | None
    content_type: str | None
    cache_control: str | None
    owner: str | None = None
    last_modified: datetime | None = None


def is_not_found(exc: bce.ClientError) -> bool:
    """Whether a request failed because the key (or the bucket) does not exist."""
    return http_status(exc) == 404 or error_code(exc) in ("404", "NoSuchKey", "NotFound")


def find_existing_object(client: S3Client, bucket: str, key: str) -> ExistingObject | None:
    """The object's HEAD, or None when there is no such object (a missing bucket also 404s)."""
    with classified_upload_errors(bucket):
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except bce.ClientError as exc:
            if is_not_found(exc):
                return None
            raise
    metadata = head.get("Metadata", {})
    return ExistingObject(
        key,
        head["ContentLength"],
        head.get("ETag", "").strip('"'),
        metadata.get("sha256"),
        head.get("ContentType"),
        head.get("CacheControl"),
        owner=metadata.get(OWNER_METADATA_KEY),
        last_modified=head.get("LastModified"),
    )
