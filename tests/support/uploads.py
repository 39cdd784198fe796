"""Uploads as the storage tests make them: the settings, the defaults a run sends."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from upload_jobs.settings import Settings
from upload_jobs.storage.ownership import KeyOwner
from upload_jobs.storage.spaces import UploadResult, upload_video
from upload_jobs.storage.upload_body import UploadBody

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# The storage tests' key; a distinctive secret: the tests look for it wherever it must not appear.
ACCESS_KEY = "AKIDUPLOADJOBSTEST"
SECRET = "SECRETxyz-do-not-leak-123"
MiB = 1024 * 1024
CACHE = "public, max-age=86400"


def settings_for(endpoint_url: str, bucket: str, **overrides: Any) -> Settings:
    """Settings for `bucket` at `endpoint_url` (the proxy's or moto's own)."""
    return Settings(bucket=bucket, endpoint_url=endpoint_url, region="nyc3", **overrides)


def upload(
    client: S3Client, bucket: str, path: Path | UploadBody, key: str, **options: Any
) -> UploadResult:
    """`upload_video` with what a run sends unless the test says otherwise (job 1's upload)."""
    options.setdefault("acl", "public-read")
    options.setdefault("cache_control", CACHE)
    options.setdefault("owner", KeyOwner(1))
    return upload_video(client, bucket, path, key, **options)
