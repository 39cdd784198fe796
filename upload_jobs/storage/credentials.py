"""Where an S3 client's credentials come from: boto3's standard chain, or a prefect-aws
`AwsCredentials` block named by `UPLOAD_JOBS_AWS_CREDENTIALS_BLOCK`, so that workers need no key
in their environment.

A block is read from the Prefect server at most once a minute per process (a sweep makes a
client per upload; a saved change reaches every worker within the minute). Reading it needs
Prefect, which this package never imports: the Prefect side (`tasks/credentials_block.py`)
hands its loader over with `use_block_loader`, as every flow and the CLI commands that reach
Spaces do.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from upload_jobs.errors import CredentialsUnavailable

if TYPE_CHECKING:
    import boto3

BLOCK_SETTING = "UPLOAD_JOBS_AWS_CREDENTIALS_BLOCK"
BLOCK_REFRESH_SECONDS = 60.0

# Where boto3's standard chain finds credentials without a network call. A client is kept while
# these stay the same; refreshable credentials (roles, SSO) refresh inside the client.
CREDENTIAL_ENV_VARS = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)  # fmt: skip


@dataclass(frozen=True)
class CredentialSource:
    """What a client's boto3 session is made from. Equal sources share a client: they compare
    by `fingerprint`, a digest, so a client cache's key never holds a secret itself."""

    fingerprint: str
    # None: boto3's standard chain; else the block's session (credentials, region, endpoint).
    block: BlockCredentials | None = field(default=None, compare=False, repr=False)

    @property
    def endpoint_url(self) -> str | None:
        """The block's Spaces endpoint, if it names one."""
        return self.block.endpoint_url if self.block is not None else None

    @property
    def region(self) -> str | None:
        """The block's region, if it names one."""
        return self.block.region if self.block is not None else None

    def session(self) -> boto3.session.Session:
        """A boto3 session with these credentials."""
        import boto3

        return self.block.session if self.block is not None else boto3.session.Session()


@dataclass(frozen=True)
class BlockCredentials:
    """An `AwsCredentials` block as loaded: its session, and where it says Spaces is."""

    name: str
    session: boto3.session.Session = field(repr=False)
    region: str | None
    endpoint_url: str | None


def environment_credentials() -> CredentialSource:
    """boto3's standard chain, keyed by the environment variables it reads."""
    environment = "\0".join(os.environ.get(name, "") for name in CREDENTIAL_ENV_VARS)
    return CredentialSource(hashlib.sha256(environment.encode()).hexdigest())


def block_credentials(name: str) -> CredentialSource:
    """The credentials in the `AwsCredentials` block `name`, or `CredentialsUnavailable`."""
    block = _cached_block(name)
    credentials = block.session.get_credentials()
    if credentials is None:
        raise CredentialsUnavailable(
            f"The AWS credentials block {name!r} ({BLOCK_SETTING}) holds no key: save one in it "
            f"with `upload-jobs setup --credentials-block {name}`."
        )
    # Masked once the client is made (`clients._shared_client`), as environment keys are.
    frozen = credentials.get_frozen_credentials()
    secret = "\0".join([name, frozen.access_key or "", frozen.secret_key or "", frozen.token or ""])
    return CredentialSource(hashlib.sha256(secret.encode()).hexdigest(), block)


BlockLoader = Callable[[str], BlockCredentials]

_blocks: dict[str, tuple[float, BlockCredentials]] = {}
_blocks_lock = threading.Lock()
_loader: list[BlockLoader] = []


def use_block_loader(loader: BlockLoader) -> None:
    """Read credentials blocks with `loader` (which raises `CredentialsUnavailable`)."""
    _loader[:] = [loader]


def _cached_block(name: str) -> BlockCredentials:
    with _blocks_lock:
        cached = _blocks.get(name)
    if cached is not None and time.monotonic() - cached[0] < BLOCK_REFRESH_SECONDS:
        return cached[1]
    if not _loader:
        raise CredentialsUnavailable(
            f"{BLOCK_SETTING}={name} names a Prefect block, and this command does not talk to "
            f"Prefect: unset {BLOCK_SETTING} for it, or give it AWS_* credentials."
        )
    block = _loader[0](name)
    with _blocks_lock:
        _blocks[name] = (time.monotonic(), block)
    return block


def forget_credentials_blocks() -> None:
    """Read every block afresh next time (tests, and after `setup` saved one)."""
    with _blocks_lock:
        _blocks.clear()
