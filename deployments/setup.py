"""Create, idempotently, what many workers share: the work pool, global concurrency limits and,
if asked, the Spaces key as an `AwsCredentials` block."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    WorkPoolCreate,
)
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from deployments import WORK_POOL
from deployments.server import require_prefect_server
from upload_jobs.errors import CredentialsUnavailable
from upload_jobs.redaction import register_secrets
from upload_jobs.settings import Settings, get_settings
from upload_jobs.storage.credentials import forget_credentials_blocks

POOL_TYPE = "process"


@dataclass(frozen=True)
class PrefectResource:
    """One thing `setup` made sure of on the server, and what it had to do for it."""

    kind: str
    name: str
    setting: str
    action: str


def ensure_work_pool(client: SyncPrefectClient, name: str = WORK_POOL) -> PrefectResource:
    """The process work pool `name`, created with Prefect's default job template if missing."""
    action = "unchanged"
    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        from prefect.workers.process import ProcessWorker

        try:
            pool = client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type=POOL_TYPE,
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
            action = "created"
        except ObjectAlreadyExists:  # another `setup` got there first
            pool = client.read_work_pool(name)
    return PrefectResource("work pool", name, f"type {pool.type}", action)


def ensure_concurrency_limit(client: SyncPrefectClient, name: str, limit: int) -> PrefectResource:
    """The active global concurrency limit `name` with `limit` slots, created or updated."""
    try:
        existing = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        try:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=limit)
            )
            return PrefectResource("concurrency limit", name, f"{limit} slots", "created")
        except ObjectAlreadyExists:  # another `setup` got there first: set our number below
            existing = client.read_global_concurrency_limit_by_name(name)
    if existing.limit == limit and existing.active:
        return PrefectResource("concurrency limit", name, f"{limit} slots", "unchanged")
    client.update_global_concurrency_limit(
        name, GlobalConcurrencyLimitUpdate(limit=limit, active=True)
    )
    return PrefectResource(
        "concurrency limit", name, f"{limit} slots (was {existing.limit})", "updated"
    )


def save_credentials_block(name: str, settings: Settings) -> PrefectResource:
    """Save the Spaces key this environment has (boto3's chain) as the `AwsCredentials` block
    `name`, with the settings' region and endpoint; the secret is never shown. A temporary key
    (with a session token) is refused."""
    import boto3
    from prefect_aws import AwsClientParameters, AwsCredentials

    found = boto3.session.Session().get_credentials()
    if found is None:
        raise CredentialsUnavailable(
            f"No AWS credentials in this environment to save as {name!r}: set AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY to your Spaces key (or AWS_PROFILE), then run again."
        )
    key = found.get_frozen_credentials()
    register_secrets(key.access_key, key.secret_key, key.token)
    if key.token:
        # prefect-aws keeps the session token as plain text: the UI would show it.
        raise CredentialsUnavailable(
            f"This environment's key is temporary (it has a session token): saved as {name!r} "
            "it would stop working when it expires, and Prefect shows a block's session token "
            "to anyone who can see blocks. Save a Spaces access key (no AWS_SESSION_TOKEN)."
        )
    block = AwsCredentials(
        aws_access_key_id=key.access_key,
        aws_secret_access_key=key.secret_key,
        region_name=settings.region,
        aws_client_parameters=AwsClientParameters(endpoint_url=settings.endpoint_url),
    )
    where = f"region {settings.region}, endpoint {settings.endpoint_url or 'AWS default'}"
    try:
        existing = AwsCredentials.load(name, _sync=True)  # type: ignore[call-arg]
    except ValueError:  # none of that name yet
        action = "created"
    else:
        action = "unchanged" if _same_block(existing, block) else "updated"
    if action != "unchanged":
        block.save(name, overwrite=True, _sync=True)  # type: ignore[call-arg]
    forget_credentials_blocks()
    return PrefectResource("AWS credentials block", name, f"key ****, {where}", action)


def _same_block(a: Any, b: Any) -> bool:
    def values(block: Any) -> tuple[Any, ...]:
        secret = block.aws_secret_access_key
        return (
            block.aws_access_key_id,
            secret.get_secret_value() if secret is not None else None,
            block.aws_session_token,
            block.region_name,
            block.aws_client_parameters.endpoint_url,
        )

    return values(a) == values(b)


def set_up_prefect(
    ffmpeg_slots: int, upload_slots: int, credentials_block: str | None = None
) -> list[PrefectResource]:
    """Make sure the configured Prefect server has the pool and both limits (and, when named,
    the credentials block); say what was done.

    The limits get the names the tasks use (`UPLOAD_JOBS_FFMPEG_SLOTS_LIMIT`, `..._UPLOAD_...`).
    """
    settings = get_settings()
    require_prefect_server(
        "`upload-jobs setup`", "the work pool and limits it makes live on that server for workers"
    )
    with get_client(sync_client=True) as client:
        resources = [
            ensure_work_pool(client),
            ensure_concurrency_limit(client, settings.ffmpeg_slots_limit, ffmpeg_slots),
            ensure_concurrency_limit(client, settings.upload_slots_limit, upload_slots),
        ]
    if credentials_block:
        resources.append(save_credentials_block(credentials_block, settings))
    return resources
