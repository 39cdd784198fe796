"""S3 clients for Spaces, one per endpoint, settings and credentials, shared by the process.

A boto3 client is thread-safe, but building one loads and parses botocore's endpoint and S3
service JSON: 77 ms on an idle core, several times that while ffmpeg and other uploads run. A
sweep builds one per upload, so a fresh client per call was the largest cost of a small job
(README "Benchmarks"). A change to the AWS credential variables gets a new client.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from typing import TYPE_CHECKING

from upload_jobs.redaction import register_secrets
from upload_jobs.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Enough for the endpoints and credentials one process meets (tests meet a few dozen, in turn).
CACHED_CLIENTS = 16


# Where boto3's standard chain finds credentials without a network call. A client is kept while
# these stay the same; refreshable credentials (roles, SSO) refresh inside the client.
CREDENTIAL_ENV_VARS = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)  # fmt: skip


def make_s3_client(settings: Settings) -> S3Client:
    """An S3 client for Spaces; credentials come from boto3's standard chain only."""
    # A digest, so the cache's key never holds a secret itself.
    environment = "\0".join(os.environ.get(name, "") for name in CREDENTIAL_ENV_VARS)
    return _shared_client(
        settings.endpoint_url,
        settings.region,
        settings.s3_max_attempts,
        settings.upload_concurrency,
        hashlib.sha256(environment.encode()).hexdigest(),
    )


@lru_cache(maxsize=CACHED_CLIENTS)
def _shared_client(
    endpoint_url: str | None,
    region: str,
    max_attempts: int,
    upload_concurrency: int,
    credentials_environment: str,
) -> S3Client:
    """A new client for these settings; `credentials_environment` only keys the cache (the
    client's own session resolves, and refreshes, the credentials)."""
    # Imported here: boto3 costs ~0.1 s to import, and `add`, `list` and `show` never need it.
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    credentials = session.get_credentials()
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        register_secrets(frozen.access_key, frozen.secret_key, frozen.token)
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
    return session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def forget_s3_clients() -> None:
    """Drop the shared clients (and their connection pools)."""
    _shared_client.cache_clear()
