"""How a run ends, on the job and its attempt: completed, failed (due again after a backoff) or
interrupted (due at once); only the run holding the lease may record it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import col

from upload_jobs.errors import ErrorKind, JobInProgress
from upload_jobs.jobs.attempt_report import AttemptReport, StoredObject
from upload_jobs.jobs.claims import ClaimedJob
from upload_jobs.jobs.database import session_for
from upload_jobs.jobs.models import AttemptOutcome, JobStatus, UploadAttempt, UploadJob, utcnow
from upload_jobs.jobs.retry_policy import RetryPolicy
from upload_jobs.jobs.table import JobTable

DEFAULT_POLICY = RetryPolicy()


class JobOutcomes(JobTable):
    """The outcomes of runs, recorded on the job table."""

    def mark_completed(
        self, claim: ClaimedJob, report: AttemptReport, stored: StoredObject
    ) -> UploadJob:
        """Record a successful run: the job becomes completed, its lease released."""
        now = utcnow()
        job_values: dict[str, Any] = {
            "status": JobStatus.COMPLETED,
            "last_error": None,
            "error_kind": None,
            "optimized_for_streaming": report.optimized,
            "optimization_preset": report.preset,
            "source_size_bytes": report.source_size_bytes,
            "uploaded_size_bytes": report.uploaded_size_bytes,
            "public_url": stored.public_url,
            "etag": stored.etag,
            "next_attempt_at": None,
            "completed_at": now,
        }
        attempt_values = _attempt_values(report, AttemptOutcome.COMPLETED)
        attempt_values["skipped_existing_object"] = stored.skipped_existing_object
        return self._finish(claim, job_values, attempt_values, now)

    def mark_failed(
        self,
        claim: ClaimedJob,
        report: AttemptReport,
        error: str,
        error_kind: ErrorKind,
        policy: RetryPolicy = DEFAULT_POLICY,
    ) -> UploadJob:
        """Record a failed run: the job becomes failed with a reason, due again after the
        policy's backoff."""
        now = utcnow()
        job_values: dict[str, Any] = {
            "status": JobStatus.FAILED,
            "last_error": error,
            "error_kind": error_kind,
            "optimized_for_streaming": False,
            "next_attempt_at": now + policy.backoff(claim.attempt_number),
        }
        if report.source_size_bytes is not None:
            job_values["source_size_bytes"] = report.source_size_bytes
        attempt_values = _attempt_values(report, AttemptOutcome.FAILED)
        attempt_values |= {"error": error, "error_kind": error_kind}
        return self._finish(claim, job_values, attempt_values, now)

    def mark_interrupted(self, claim: ClaimedJob, report: AttemptReport, reason: str) -> UploadJob:
        """Record a run that was stopped: the job failed and due at once, the attempt
        interrupted (nothing is wrong with the job: whoever stopped it may retry it now)."""
        now = utcnow()
        job_values: dict[str, Any] = {
            "status": JobStatus.FAILED,
            "last_error": reason,
            "error_kind": ErrorKind.INTERRUPTED,
            "optimized_for_streaming": False,
            "next_attempt_at": now,
        }
        attempt_values = _attempt_values(report, AttemptOutcome.INTERRUPTED)
        attempt_values |= {"error": reason, "error_kind": ErrorKind.INTERRUPTED}
        return self._finish(claim, job_values, attempt_values, now)

    def _finish(
        self,
        claim: ClaimedJob,
        job_values: dict[str, Any],
        attempt_values: dict[str, Any],
        now: datetime,
    ) -> UploadJob:
        # Only the lease holder may finish the job: a runner whose lease was reaped and taken
        # over must not overwrite the newer run's outcome.
        finish_job = (
            update(UploadJob)
            .where(col(UploadJob.id) == claim.job_id)
            .where(col(UploadJob.status) == JobStatus.IN_PROGRESS)
            .where(col(UploadJob.lease_owner) == claim.lease_owner)
            .values(lease_owner=None, lease_expires_at=None, updated_at=now, **job_values)
            .execution_options(synchronize_session=False)
        )
        finish_attempt = (
            update(UploadAttempt)
            .where(col(UploadAttempt.id) == claim.attempt_id)
            .values(finished_at=now, **attempt_values)
            .execution_options(synchronize_session=False)
        )
        with session_for(self.database_url) as session:
            connection = session.connection()
            if connection.execute(finish_job).rowcount != 1:
                session.rollback()
                if self._already_recorded(claim.attempt_id, attempt_values):
                    # A retry of a mark whose commit landed but whose answer was lost with the
                    # connection: the outcome is there, so this is success, not a lost lease.
                    return self.get_job(claim.job_id)
                raise JobInProgress(
                    f"Upload job {claim.job_id} is no longer held by this run "
                    f"({claim.lease_owner}); its outcome was not recorded"
                )
            connection.execute(finish_attempt)
            session.commit()
        return self.get_job(claim.job_id)

    def _already_recorded(self, attempt_id: int, attempt_values: dict[str, Any]) -> bool:
        """Whether the attempt already ended exactly as `attempt_values` says."""
        with session_for(self.database_url) as session:
            attempt = session.get(UploadAttempt, attempt_id)
        return (
            attempt is not None
            and attempt.finished_at is not None
            and attempt.outcome == attempt_values["outcome"]
            and attempt.error_kind == attempt_values.get("error_kind")
            and attempt.error == attempt_values.get("error")
        )


def _attempt_values(report: AttemptReport, outcome: AttemptOutcome) -> dict[str, Any]:
    return {
        "outcome": outcome,
        "optimized": report.optimized,
        "optimization_preset": report.preset,
        "fallback_reason": report.fallback_reason,
        "fallback_kind": report.fallback_kind,
        "optimization_path": report.optimization_path,
        "optimization_path_reason": report.optimization_path_reason,
        "cdn_purge": report.cdn_purge,
        "cdn_purge_detail": report.cdn_purge_detail,
        "source_size_bytes": report.source_size_bytes,
        "uploaded_size_bytes": report.uploaded_size_bytes,
        "step_seconds": report.step_seconds,
        "remux_seconds": report.remux_seconds,
        **report.startup_columns(),
        **report.rendition_columns(),
    }
