"""S3 clients for Spaces, one per endpoint, settings and credentials, shared by the process.

A boto3 client is thread-safe, but building one loads and parses botocore's endpoint and S3
service JSON: 77 ms on an idle core, several times that while ffmpeg and other uploads run. A
sweep builds one per upload, so a fresh client per call was the largest cost of a small job
(README "Benchmarks"). A change to the AWS credential variables, or to the credentials block,
gets a new client.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from upload_jobs.redaction import register_secrets
from upload_jobs.settings import Settings
from upload_jobs.storage.credentials import (
    CredentialSource,
    block_credentials,
    environment_credentials,
)

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_s3 import S3Client

# Enough for the endpoints and credentials one process meets (tests meet a few dozen, in turn).
CACHED_CLIENTS = 16


def make_s3_client(settings: Settings, variant: Config | None = None) -> S3Client:
    """An S3 client for Spaces, with the credentials of the block the settings name (and its
    region and endpoint, where it sets them), else of boto3's standard chain. `variant` changes
    its botocore configuration (a client of its own, not shared)."""
    block = settings.aws_credentials_block
    credentials = block_credentials(block) if block else environment_credentials()
    endpoint_url = credentials.endpoint_url or settings.endpoint_url
    region = credentials.region or settings.region
    if variant is not None:
        config = _config(
            settings.s3_max_attempts, settings.upload_concurrency, settings.s3_sign_payload
        ).merge(variant)
        return _new_client(endpoint_url, region, credentials, config)
    return _shared_client(
        endpoint_url,
        region,
        settings.s3_max_attempts,
        settings.upload_concurrency,
        settings.s3_sign_payload,
        credentials,
    )


@lru_cache(maxsize=CACHED_CLIENTS)
def _shared_client(
    endpoint_url: str | None,
    region: str,
    max_attempts: int,
    upload_concurrency: int,
    sign_payload: bool,
    credentials: CredentialSource,
) -> S3Client:
    """A client for these settings and credentials, made once per process."""
    config = _config(max_attempts, upload_concurrency, sign_payload)
    return _new_client(endpoint_url, region, credentials, config)


def _new_client(
    endpoint_url: str | None, region: str, credentials: CredentialSource, config: Config
) -> S3Client:
    """A new client (its session refreshes refreshable credentials), whose key, secret and token
    are masked wherever the product writes."""
    session = credentials.session()
    resolved = session.get_credentials()
    if resolved is not None:
        frozen = resolved.get_frozen_credentials()
        register_secrets(frozen.access_key, frozen.secret_key, frozen.token)
    return session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def _config(max_attempts: int, upload_concurrency: int, sign_payload: bool) -> Config:
    """The botocore configuration every client of the product has."""
    # Imported here: boto3 costs ~0.1 s to import, and `add`, `list` and `show` never need it.
    from botocore.config import Config

    return Config(
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
        # Each PUT and part is sent with its Content-MD5 (computed in the hash pass), which the
        # endpoint verifies; signing the payload too would read every byte once more (botocore
        # does over plain HTTP, and over HTTPS without a checksum header).
        s3={"payload_signing_enabled": sign_payload},
    )


def forget_s3_clients() -> None:
    """Drop the shared clients (and their connection pools)."""
    _shared_client.cache_clear()
