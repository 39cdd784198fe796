"""S3 clients for Spaces, one per endpoint, settings and credentials, shared by the process.

A boto3 client is thread-safe, but building one loads and parses botocore's endpoint and S3
service JSON: 77 ms on an idle core, several times that while ffmpeg and other uploads run. A
sweep builds one per upload, so a fresh client per call was the largest cost of a small job
(bench/RESULTS.md). The credentials are still resolved on every call, so a rotated key or a
changed environment gets a new client.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from upload_jobs.redaction import register_secrets
from upload_jobs.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Enough for the endpoints and credentials one process meets (tests meet a few dozen, in turn).
CACHED_CLIENTS = 16


def make_s3_client(settings: Settings) -> S3Client:
    """An S3 client for Spaces; credentials come from boto3's standard chain only."""
    credentials = boto3.session.Session().get_credentials()
    identity = ""
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        register_secrets(frozen.access_key, frozen.secret_key, frozen.token)
        # A digest, so the cache's key never holds the secret itself.
        parts = (frozen.access_key or "", frozen.secret_key or "", frozen.token or "")
        identity = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return _shared_client(
        settings.endpoint_url,
        settings.region,
        settings.s3_max_attempts,
        settings.upload_concurrency,
        identity,
    )


@lru_cache(maxsize=CACHED_CLIENTS)
def _shared_client(
    endpoint_url: str | None,
    region: str,
    max_attempts: int,
    upload_concurrency: int,
    credentials_identity: str,
) -> S3Client:
    """A new client for these settings; `credentials_identity` only keys the cache (the
    client's own session resolves, and refreshes, the credentials)."""
    config = Config(
        # boto3 >= 1.36 adds CRC32 trailers by default, which S3-compatible stores choke on.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # Config's "max_attempts" counts retries (N + 1 requests); "total_max_attempts" counts
        # requests, which is what s3_max_attempts means (1 = no retry).
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=10,
        read_timeout=60,
        # Shared by every upload in the process: a sweep runs several, each sending parts at once.
        max_pool_connections=max(64, upload_concurrency * 8),
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config
    )


def forget_s3_clients() -> None:
    """Drop the shared clients (and their connection pools)."""
    _shared_client.cache_clear()
