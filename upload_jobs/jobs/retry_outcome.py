"""How one retry of a job ended, worded the same wherever it ran: in this process (`upload-jobs
retry`, the demo) or on a served deployment (`--via-deployment`)."""

from __future__ import annotations

from dataclasses import dataclass

from upload_jobs.jobs.claims import ALREADY_COMPLETED_STATE, HELD_ELSEWHERE_STATE
from upload_jobs.jobs.models import JobStatus, UploadJob
from upload_jobs.jobs.store import JobStore


@dataclass(frozen=True)
class RetryOutcome:
    """How one retry ended, in words a person can act on."""

    job: UploadJob
    succeeded: bool
    message: str
    flow_run_id: str | None


def completed_outcome(store: JobStore, job: UploadJob, flow_run_id: str | None) -> RetryOutcome:
    """The job ended completed: say whether it went up optimized, and if not, why not."""
    return RetryOutcome(job, True, _completed_message(store, job), flow_run_id)


def failed_outcome(
    job: UploadJob, reason: str, error_kind: str | None, flow_run_id: str | None
) -> RetryOutcome:
    """The job did not end completed: the reason, its error kind, and what to do next."""
    kind = f" [{error_kind}]" if error_kind else ""
    # A reason that already names the command to run next needs no second telling.
    retry = f"`upload-jobs retry {job.id}`"
    advice = "" if "`upload-jobs " in reason else f" Fix the cause, then run {retry} again."
    message = f"Upload job {job.id} failed{kind}: {reason.rstrip('.')}.{advice}"
    return RetryOutcome(job, False, message, flow_run_id)


def finished_run_outcome(
    store: JobStore, job_id: int, flow_run_id: str | None, run_completed: bool,
    run_message: str | None, run_state_name: str | None = None,
) -> RetryOutcome:  # fmt: skip
    """How a finished retry run ended, wherever it ran: from the job row when the run recorded
    an attempt, else from the run's own state (nothing to do, no such job, a source it refused:
    recorded on the job without an attempt)."""
    job = store.get_job(job_id)
    attempts = store.list_attempts(job_id)
    ran = bool(attempts) and attempts[-1].flow_run_id == flow_run_id
    if ran and job.status == JobStatus.COMPLETED:
        return completed_outcome(store, job, flow_run_id)
    if ran:
        return failed_outcome(job, job.last_error or "unknown", job.error_kind, flow_run_id)
    said = run_message or "unknown"
    if run_completed:  # nothing to do: done already, or another run holds it (and may finish)
        done = run_state_name == ALREADY_COMPLETED_STATE or (
            run_state_name != HELD_ELSEWHERE_STATE and job.status == JobStatus.COMPLETED
        )
        return RetryOutcome(job, done, said, flow_run_id)
    return failed_outcome(job, said, job.error_kind, flow_run_id)


def queued_message(job_id: int, preset: str) -> str:
    """What the jobs page says once a retry is queued (the wording operators already know)."""
    if preset == "none":
        return f"Upload job {job_id} queued for retry (streaming optimization is off: preset none)"
    return f"Upload job {job_id} queued for retry with streaming optimization"


def _completed_message(store: JobStore, job: UploadJob) -> str:
    if job.optimized_for_streaming:
        return f"Upload job {job.id} retried with streaming optimization"
    attempts = store.list_attempts(job.id or 0)
    reason = attempts[-1].fallback_reason if attempts else None
    if reason:
        return (
            f"Upload job {job.id} retried without streaming optimization "
            f"(uploaded the original file: {reason})"
        )
    return f"Upload job {job.id} retried (streaming optimization is off: preset none)"
