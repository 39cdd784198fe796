"""Create, idempotently, what many workers share: the work pool and global concurrency limits."""

from __future__ import annotations

from dataclasses import dataclass

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    WorkPoolCreate,
)
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from deployments import WORK_POOL
from deployments.server import require_prefect_server
from upload_jobs.settings import get_settings

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


def set_up_prefect(ffmpeg_slots: int, upload_slots: int) -> list[PrefectResource]:
    """Make sure the configured Prefect server has the pool and both limits; say what was done.

    The limits get the names the tasks use (`UPLOAD_JOBS_FFMPEG_SLOTS_LIMIT`, `..._UPLOAD_...`).
    """
    settings = get_settings()
    require_prefect_server(
        "`upload-jobs setup`", "the work pool and limits it makes live on that server for workers"
    )
    with get_client(sync_client=True) as client:
        return [
            ensure_work_pool(client),
            ensure_concurrency_limit(client, settings.ffmpeg_slots_limit, ffmpeg_slots),
            ensure_concurrency_limit(client, settings.upload_slots_limit, upload_slots),
        ]
