"""Tasks of the sweep: reap lost runs, pick due jobs, start retries, tidy up, report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.runtime import flow_run

from deployments import RETRY_DEPLOYMENT, retry_idempotency_key, retry_run_name
from tasks.queued_runs import queued_retry_runs
from upload_jobs.errors import PermanentUploadError, TransientUploadError, UploadJobError
from upload_jobs.jobs.leases import take_back_if_gone
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.reconcile import ReconcileScope, reconcile_jobs
from upload_jobs.jobs.retry_policy import retry_policy
from upload_jobs.jobs.store import JobStore
from upload_jobs.jobs.streaming_stats import completed_startups, startup_lines
from upload_jobs.jobs.sweeping import SweepReport, remove_stale_temp_files
from upload_jobs.settings import get_settings
from upload_jobs.storage import spaces


@dataclass(frozen=True)
class DueJob:
    """A failed job the sweep will retry, and which attempt that retry will be."""

    job_id: int
    next_attempt_number: int


@dataclass(frozen=True)
class DueJobs:
    """The sweep's pick: jobs to retry, and jobs skipped because their source is gone."""

    ready: list[DueJob]
    missing_source: list[int]

    def without(self, job_ids: list[int]) -> DueJobs:
        """The same pick minus `job_ids` (jobs found already done)."""
        done = set(job_ids)
        ready = [job for job in self.ready if job.job_id not in done]
        return DueJobs(ready=ready, missing_source=self.missing_source)


@task(name="reap_expired_leases")
def reap_expired_leases() -> list[int]:
    """Jobs left in progress by a crashed worker become failed (worker_lost) so they retry."""
    store = JobStore(get_settings().database_url)
    reaped = store.reap_expired_leases()
    if reaped:
        get_run_logger().warning("Leases expired, marked worker_lost: jobs %s", reaped)
    # Jobs still within their lease whose holder was a process of this machine that is gone.
    for job in store.list_jobs(status=JobStatus.IN_PROGRESS):
        if taken := take_back_if_gone(store, job):
            get_run_logger().warning("%s", taken)
            reaped.append(job.id or 0)
    return sorted(reaped)


@task(name="pick_due_jobs")
def pick_due_jobs(limit: int, max_attempts: int) -> DueJobs:
    """Failed jobs that are due and jobs added a while ago and never run, oldest first; those
    whose source cannot be uploaded are set aside, the problem recorded on them (no attempt)."""
    settings = get_settings()
    store = JobStore(settings.database_url)
    pending_for = timedelta(seconds=settings.pending_grace_seconds)
    ready, unusable = [], []
    for job in store.due_jobs(limit, max_attempts, pending_for):
        if store.refuse_unusable_source(job, retry_policy(settings)) is not None:
            unusable.append(job.id or 0)
        else:
            ready.append(DueJob(job.id or 0, job.attempts + 1))
    logger = get_run_logger()
    logger.info("Picked %d due jobs: %s", len(ready), [due.job_id for due in ready])
    if unusable:
        logger.warning("Not retried, source file missing or unusable: jobs %s", unusable)
    return DueJobs(ready=ready, missing_source=unusable)


@task(name="set_aside_queued_retries")
def set_aside_queued_retries(due: DueJobs) -> tuple[DueJobs, list[int]]:
    """The pick minus jobs a retry run is queued for already (a trigger scheduled it after the
    backoff; its claim would refuse ours, or ours its), and those jobs."""
    queued = queued_retry_runs() if due.ready else {}
    set_aside = [job.job_id for job in due.ready if job.job_id in queued]
    if set_aside:
        runs = ", ".join(f"job {job_id}: {queued[job_id]}" for job_id in set_aside)
        get_run_logger().info("Not retried here, a retry run is queued (%s)", runs)
    return due.without(set_aside), set_aside


@dataclass(frozen=True)
class ReconciledJobs:
    """What the sweep's look at the bucket settled: jobs found done, and jobs whose key holds
    an object not theirs (a retry would refuse to write over it: not run)."""

    completed: list[int]
    key_conflicts: list[int]


@task(name="reconcile_with_bucket")
def reconcile_due_jobs(due: DueJobs) -> ReconciledJobs:
    """Due jobs whose object is already stored (a run died after its upload) become completed
    without a re-run; jobs whose key holds another's object are set aside."""
    settings = get_settings()
    report = reconcile_jobs(
        settings.database_url,
        spaces.make_s3_client(settings),
        settings.bucket,
        partial(spaces.public_url, settings),
        scope=ReconcileScope.UNFINISHED,
        job_ids=[job.job_id for job in due.ready],
    )
    logger = get_run_logger()
    for change in report.changes:
        logger.info("Upload job %s %s: %s", change.job_id, change.change, change.reason)
    for conflict in report.conflicts:
        logger.warning("Upload job %s not retried: %s", conflict.job_id, conflict.reason)
    for job_id, reason in report.undecided.items():
        logger.warning("Upload job %s not reconciled, it will be retried: %s", job_id, reason)
    return ReconciledJobs(report.completed, [c.job_id for c in report.conflicts])


@task(name="check_bucket_access")
def check_bucket_access() -> str | None:
    """Why uploads cannot work at all (bad keys, no bucket), or None; the sweep's first breaker."""
    settings = get_settings()
    try:
        spaces.check_bucket_access(spaces.make_s3_client(settings), settings.bucket)
    except PermanentUploadError as exc:
        get_run_logger().error("Bucket not usable, sweep stops: %s", exc)
        return str(exc)
    except TransientUploadError as exc:
        # A blip now says little about the next minutes: let the retries find out.
        get_run_logger().warning("Bucket check inconclusive, sweeping anyway: %s", exc)
    return None


@task(name="start_retry_run")
def start_retry_run(due: DueJob) -> str:
    """Start one `retry-upload-job/on-demand` run for a worker to pick up; returns its id."""
    flow_run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync call: not a coroutine
        RETRY_DEPLOYMENT,
        parameters={"job_id": due.job_id},
        timeout=0,
        # Two sweeps picking the same job attempt start one flow run between them.
        idempotency_key=retry_idempotency_key(due.job_id, due.next_attempt_number),
        flow_run_name=retry_run_name(due.job_id),
    )
    return str(flow_run.id)


@task(name="abort_stale_multipart_uploads")
def abort_stale_multipart_uploads(
    older_than_hours: float, resumable_for_hours: float, max_attempts: int
) -> spaces.MultipartCleanup:
    """Abort multipart uploads a crashed run left open, or whose job is done with them, so no
    parts linger in the bucket; leave those a failed job may still resume, for a while."""
    settings = get_settings()
    recorded = JobStore(settings.database_url).recorded_uploads(max_attempts)
    keep = frozenset(
        upload_id
        for upload_id, record in recorded.items()
        if record.resumable and record.recorded_within(timedelta(hours=resumable_for_hours))
    )
    logger = get_run_logger()
    try:
        cleanup = spaces.abort_stale_multipart_uploads(
            spaces.make_s3_client(settings),
            settings.bucket,
            timedelta(hours=older_than_hours),
            prefix=settings.key_prefix,
            keep=keep,
            finished=frozenset(recorded) - keep,
        )
    except UploadJobError as exc:
        # Housekeeping: a bucket it cannot read this time fails no sweep (the retries, if any,
        # said so already); the next sweep cleans up.
        logger.warning("Stale multipart uploads not cleaned up: %s", exc)
        return spaces.MultipartCleanup(0, 0, skipped=str(exc))
    if cleanup.aborted:
        logger.info("Aborted %d stale multipart uploads", cleanup.aborted)
    if cleanup.kept_for_resume:
        logger.info("Left %d multipart uploads for their jobs to resume", cleanup.kept_for_resume)
    return cleanup


@task(name="remove_stale_temp_files")
def remove_old_temp_files(older_than_hours: float) -> int:
    """Delete temp files a crashed run left in the work dir."""
    removed = remove_stale_temp_files(Path(get_settings().work_dir), older_than_hours * 3600)
    if removed:
        get_run_logger().info("Removed %d stale temp files", removed)
    return removed


@task(name="publish_sweep_report")
def publish_sweep_report(report: SweepReport) -> None:
    """A table artifact of outcomes and a markdown summary, shown on the flow run in the UI;
    the run renamed to say what it did (`sweep-local: 2 completed, 1 failed`)."""
    rename_this_run(f"sweep-{report.mode}: {report.summary()}")
    create_table_artifact(
        key="sweep-report", table=report.rows(), description="Jobs per outcome of this sweep"
    )
    lines = [f"# Sweep ({report.mode}): {report.summary()}", ""]
    lines += [f"- **{row['outcome']}**: {row['jobs']}" for row in report.rows() if row["jobs"]]
    if report.stopped_early:
        lines += ["", f"**Stopped early**: {report.stopped_early}"]
    if report.completed:
        startups = completed_startups(get_settings().database_url, report.completed)
        lines += ["", "## Startup cost (bytes a player reads before the first frame)", ""]
        lines += startup_lines(startups)
    create_markdown_artifact(key="sweep-summary", markdown="\n".join(lines))


def rename_this_run(name: str) -> None:
    """Give the flow run this task runs in `name`; a failure to is a warning, never the end."""
    run_id = flow_run.get_id()
    if run_id is None:
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(UUID(run_id), name=name)
    except Exception as exc:
        get_run_logger().warning("Could not rename this run to %r: %s", name, exc)
