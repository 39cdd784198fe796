"""Tasks that claim a job and record how its run ended."""

from __future__ import annotations

from datetime import timedelta

from prefect import get_run_logger, task
from prefect.runtime import flow_run

from tasks.job_steps import step_run_name
from upload_jobs.errors import ErrorKind
from upload_jobs.jobs.attempt_report import AttemptReport, StoredObject
from upload_jobs.jobs.claims import ClaimedJob, ClaimRefused, new_lease_owner
from upload_jobs.jobs.models import UploadJob
from upload_jobs.jobs.retry_policy import retry_policy
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import get_settings

# A dropped database connection while recording an outcome must cost a retry, not the outcome.
MARK_RETRIES = 3
MARK_RETRY_DELAYS = [1.0, 2.0, 4.0]


@task(name="claim_job", task_run_name=step_run_name)
def claim_job(job_id: int) -> ClaimedJob | ClaimRefused:
    """Take the job for this flow run; or say, without failing, why there is nothing to take
    (done, held by another run, unknown, or a source no upload can start from)."""
    settings = get_settings()
    run_id = flow_run.get_id()
    claim = JobStore(settings.database_url).claim_ready_job(
        job_id,
        lease_owner=new_lease_owner(run_id),
        lease=timedelta(seconds=settings.lease_seconds),
        policy=retry_policy(settings),
        flow_run_id=run_id,
    )
    logger = get_run_logger()
    if isinstance(claim, ClaimRefused):
        (logger.info if claim.nothing_to_do else logger.error)("%s", claim.sentence())
        return claim
    logger.info(
        "Claimed upload job %s (attempt %s): %s", job_id, claim.attempt_number, claim.source_path
    )
    return claim


@task(
    name="mark_job_completed",
    task_run_name=step_run_name,
    retries=MARK_RETRIES,
    retry_delay_seconds=MARK_RETRY_DELAYS,
)
def mark_job_completed(claim: ClaimedJob, report: AttemptReport, stored: StoredObject) -> UploadJob:
    """Record the upload on the job: completed, sizes, ETag, CDN link, optimized flag."""
    job = JobStore(get_settings().database_url).mark_completed(claim, report, stored)
    get_run_logger().info("Upload job %s completed: %s", claim.job_id, stored.public_url)
    return job


@task(
    name="mark_job_failed",
    task_run_name=step_run_name,
    retries=MARK_RETRIES,
    retry_delay_seconds=MARK_RETRY_DELAYS,
)
def mark_job_failed(
    claim: ClaimedJob, report: AttemptReport, error: str, error_kind: ErrorKind
) -> UploadJob:
    """Record why the run failed on the job (`last_error`, `error_kind`) and release it."""
    settings = get_settings()
    job = JobStore(settings.database_url).mark_failed(
        claim, report, error, error_kind, retry_policy(settings)
    )
    get_run_logger().error("Upload job %s failed (%s): %s", claim.job_id, error_kind, error)
    return job
