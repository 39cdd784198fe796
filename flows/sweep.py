"""`sweep_failed_uploads`: retry every failed job that is due, here or on the workers."""

from __future__ import annotations

import contextvars
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from prefect import flow
from prefect.states import Completed, State

from flows.retry_upload import run_upload_steps
from tasks.sweep import (
    DueJob,
    abort_stale_multipart_uploads,
    check_bucket_access,
    pick_due_jobs,
    publish_sweep_report,
    reap_expired_leases,
    reconcile_due_jobs,
    remove_old_temp_files,
    set_aside_queued_retries,
    start_retry_run,
)
from upload_jobs.errors import JobNotClaimable
from upload_jobs.jobs.claims import ClaimRefused
from upload_jobs.jobs.leases import (
    LeaseLost,
    RunInterrupted,
    interrupt_held_leases,
    interruption_reason,
)
from upload_jobs.jobs.store import JobStore
from upload_jobs.jobs.sweeping import CircuitBreaker, SweepMode, SweepReport
from upload_jobs.settings import get_settings


@flow(name="sweep-failed-uploads", flow_run_name="sweep-failed-uploads-{mode}")
def sweep_failed_uploads(
    limit: int = 50,
    mode: SweepMode = SweepMode.LOCAL,
    max_attempts: int | None = None,
    concurrency: int = 2,
    breaker_threshold: int = 3,
    stale_multipart_hours: float = 24.0,
    resumable_multipart_hours: float = 72.0,
    stale_temp_hours: float = 6.0,
    reconcile: bool = True,
) -> State:
    """Reap lost runs, retry due failed jobs (here or on workers) unless their object is
    already stored or a retry run is queued for them, tidy up, report; `max_attempts` defaults
    to UPLOAD_JOBS_MAX_ATTEMPTS."""
    report = SweepReport(mode=str(mode))
    max_attempts = max_attempts or get_settings().max_attempts
    report.reaped = reap_expired_leases()
    due = pick_due_jobs(limit, max_attempts)
    report.skipped_missing_source = due.missing_source
    due, report.retry_queued = set_aside_queued_retries(due)
    report.stopped_early = check_bucket_access() if due.ready else None
    if reconcile and due.ready and not report.stopped_early:
        reconciled = reconcile_due_jobs(due)
        report.reconciled, report.key_conflicts = reconciled.completed, reconciled.key_conflicts
        due = due.without(report.reconciled + report.key_conflicts)
    report.picked = [job.job_id for job in due.ready]
    if report.stopped_early:
        report.not_run = report.picked
    elif mode == SweepMode.DISTRIBUTED:
        started = start_retry_run.map(due.ready).result()
        report.flow_runs_started = dict(zip(report.picked, started, strict=True))
    else:
        retry_here(due.ready, concurrency, CircuitBreaker(breaker_threshold), report)
    if not report.stopped_early:
        cleanup = abort_stale_multipart_uploads(
            stale_multipart_hours, resumable_multipart_hours, max_attempts
        )
        report.aborted_multipart_uploads = cleanup.aborted
        report.kept_multipart_uploads = cleanup.kept_for_resume
        report.cleanup_skipped = cleanup.skipped
    report.removed_temp_files = remove_old_temp_files(stale_temp_hours)
    publish_sweep_report(report)
    # The run's name and final state say what it did, in the runs list and on its page.
    return Completed(message=report.summary(), data=report)


def retry_here(
    due: list[DueJob], concurrency: int, breaker: CircuitBreaker, report: SweepReport
) -> None:
    """Run the retries' steps in this flow run, `concurrency` jobs at a time; stop starting
    more once the breaker opens (every retry failing the same permanent way)."""
    pending = list(due)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        try:
            _run_all(pool, pending, concurrency, breaker, report)
        except BaseException as exc:
            reason = interruption_reason(exc)
            if reason is not None:
                # Ctrl-C or SIGTERM reach this thread only: the jobs' threads stop at their
                # next step and give their jobs back before the sweep ends.
                interrupt_held_leases(reason)
                pool.shutdown(wait=True, cancel_futures=True)
            raise
    report.not_run = [left.job_id for left in pending]
    report.stopped_early = breaker.reason


def _run_all(
    pool: ThreadPoolExecutor,
    pending: list[DueJob],
    concurrency: int,
    breaker: CircuitBreaker,
    report: SweepReport,
) -> None:
    """Keep `concurrency` retries going until `pending` is empty or the breaker opens."""
    store = JobStore(get_settings().database_url)
    running: dict[Future[bool], int] = {}
    while pending or running:
        while pending and len(running) < max(1, concurrency) and not breaker.open:
            next_job = pending.pop(0)
            # Each thread needs its own copy of the flow's context to run tasks in it.
            context = contextvars.copy_context()
            future = pool.submit(context.run, _retry_in_this_run, next_job.job_id)
            running[future] = next_job.job_id
        if not running:
            break
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            job_id = running.pop(future)
            if not future.result():
                report.claimed_elsewhere.append(job_id)
                continue
            # The outcome is what the run recorded on the job.
            job, attempts = store.get_job(job_id), store.list_attempts(job_id)
            fallback = attempts[-1].fallback_reason if attempts else None
            report.record_retry(job_id, job.status, job.optimized_for_streaming, fallback)
            breaker.record(job.error_kind, job.last_error)


def _retry_in_this_run(job_id: int) -> bool:
    """Run the job's steps as task runs of the sweep's run; False when there was nothing to do
    (another run holds the job, or it is completed already)."""
    try:
        run_upload_steps(job_id)
    except ClaimRefused as refused:
        return not refused.nothing_to_do  # a source problem is recorded on the job: an outcome
    except (JobNotClaimable, LeaseLost):
        return False
    except RunInterrupted:
        return True  # stopped with the sweep, which is ending: the job was given back
    except Exception:
        # Logged by the failed step's task run and recorded on the job by mark_job_failed,
        # which is where the sweep reads every outcome from.
        return True
    return True
