"""The task that purges a replaced object's path from DigitalOcean's CDN."""

from __future__ import annotations

from prefect import get_run_logger, task

from tasks.job_steps import step_run_name
from upload_jobs.settings import get_settings
from upload_jobs.storage.cdn import CdnPurge, PurgeOutcome, purge_cdn_paths


@task(name="purge_cdn_cache", task_run_name=step_run_name)
def purge_cdn_cache(object_key: str) -> CdnPurge:
    """Tell the CDN to forget the key's old bytes; a failure is a warning, never the job's."""
    purge = purge_cdn_paths(get_settings(), [object_key])
    logger = get_run_logger()
    if purge.outcome is PurgeOutcome.PURGED:
        logger.info("CDN: %s", purge.detail)
    else:
        logger.warning("CDN not purged after replacing %s: %s", object_key, purge.detail)
    return purge
