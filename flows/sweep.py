"""`sweep_failed_uploads`: retry every failed job that is due, here or on the workers."""

from __future__ import annotations

import contextvars
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from prefect import flow
from prefect.states import State

from flows.heartbeats import without_heartbeats
from flows.retry_upload import retry_upload_job
from tasks.sweep import (
    DueJob,
    abort_stale_multipart_uploads,
    check_bucket_access,
    pick_due_jobs,
    publish_sweep_report,
    reap_expired_leases,
    reconcile_due_jobs,
    remove_old_temp_files,
    start_retry_run,
)
from upload_jobs.settings import get_settings
from upload_jobs.store import JobStore
from upload_jobs.sweeping import CircuitBreaker, SweepMode, SweepReport


@flow(name="sweep-failed-uploads", flow_run_name="sweep-failed-uploads-{mode}")
def sweep_failed_uploads(
    limit: int = 50,
    mode: SweepMode = SweepMode.LOCAL,
    max_attempts: int = 5,
    concurrency: int = 2,
    breaker_threshold: int = 3,
    stale_multipart_hours: float = 24.0,
    stale_temp_hours: float = 6.0,
    reconcile: bool = True,
) -> SweepReport:
    """Reap lost runs, retry due failed jobs (here or on workers) unless their object is
    already stored, tidy up, report."""
    report = SweepReport(mode=str(mode))
    report.reaped = reap_expired_leases()
    due = pick_due_jobs(limit, max_attempts)
    report.skipped_missing_source = due.missing_source
    report.stopped_early = check_bucket_access() if due.ready else None
    if reconcile and due.ready and not report.stopped_early:
        report.reconciled = reconcile_due_jobs(due)
        due = due.without(report.reconciled)
    report.picked = [job.job_id for job in due.ready]
    if report.stopped_early:
        report.not_run = report.picked
    elif mode == SweepMode.DISTRIBUTED:
        started = start_retry_run.map(due.ready).result()
        report.flow_runs_started = dict(zip(report.picked, started, strict=True))
    else:
        retry_here(due.ready, concurrency, CircuitBreaker(breaker_threshold), report)
    if not report.stopped_early:
        report.aborted_multipart_uploads = abort_stale_multipart_uploads(stale_multipart_hours)
    report.removed_temp_files = remove_old_temp_files(stale_temp_hours)
    publish_sweep_report(report)
    return report


def retry_here(
    due: list[DueJob], concurrency: int, breaker: CircuitBreaker, report: SweepReport
) -> None:
    """Run the retries as subflows, `concurrency` at a time; stop starting more once the
    breaker opens (every retry failing the same permanent way)."""
    store = JobStore(get_settings().database_url)
    pending = list(due)
    running: dict[Future[str | None], int] = {}
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        while pending or running:
            while pending and len(running) < max(1, concurrency) and not breaker.open:
                next_job = pending.pop(0)
                # Each thread needs its own copy of the flow's context to run a subflow.
                context = contextvars.copy_context()
                future = pool.submit(context.run, _retry_as_subflow, next_job.job_id)
                running[future] = next_job.job_id
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job_id = running.pop(future)
                # The outcome is read from the job store, not from the subflow's result: a
                # state read back from a busy Prefect API can come without its data.
                attempts = store.list_attempts(job_id)
                run_id = future.result()
                if run_id is not None and all(a.flow_run_id != run_id for a in attempts):
                    report.claimed_elsewhere.append(job_id)  # its claim was refused
                    continue
                job = store.get_job(job_id)
                fallback = attempts[-1].fallback_reason if attempts else None
                report.record_retry(job_id, job.status, job.optimized_for_streaming, fallback)
                breaker.record(job.error_kind, job.last_error)
    report.not_run = [left.job_id for left in pending]
    report.stopped_early = breaker.reason


def _retry_as_subflow(job_id: int) -> str | None:
    """Run the retry as a subflow; its flow run id (None if the engine could not start it)."""
    with without_heartbeats():  # the sweep's own run has them
        state: State = retry_upload_job(job_id, return_state=True)
    run_id = state.state_details.flow_run_id
    return str(run_id) if run_id is not None else None
