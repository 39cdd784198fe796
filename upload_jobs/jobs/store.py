"""The job table's operations: add, read, the atomic claim and the state transitions."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from upload_jobs.errors import (
    ErrorKind,
    JobAlreadyCompleted,
    JobInProgress,
    JobNotClaimable,
    JobNotFound,
    ObjectKeyTaken,
)
from upload_jobs.jobs.attempt_report import AttemptReport, StoredObject
from upload_jobs.jobs.database import session_for
from upload_jobs.jobs.live_progress import ProgressTarget, ProgressUpdate
from upload_jobs.jobs.models import (
    AttemptOutcome,
    JobStatus,
    UploadAttempt,
    UploadJob,
    as_utc,
    utcnow,
)

CLAIMABLE_STATUSES = (JobStatus.PENDING, JobStatus.FAILED)
# Backoff before a failed job is due again: 1 min, 2 min, 4 min ... capped at 1 h.
RETRY_BACKOFF_BASE = timedelta(minutes=1)
RETRY_BACKOFF_CAP = timedelta(hours=1)


@dataclass(frozen=True)
class ClaimedJob:
    """What a runner holds after a successful claim: the job's inputs and its lease."""

    job_id: int
    source_path: str
    object_key: str
    attempt_number: int
    attempt_id: int
    lease_owner: str
    lease_expires_at: datetime

    @property
    def progress_target(self) -> ProgressTarget:
        """Where this run's steps report their live progress."""
        return ProgressTarget(self.job_id, self.attempt_id)


def new_lease_owner(flow_run_id: str | None = None) -> str:
    """A lease owner naming this host and process, and the flow run when there is one."""
    return f"{socket.gethostname()}:{os.getpid()}:{flow_run_id or uuid.uuid4().hex[:12]}"


def lease_ran_out(now: datetime) -> ColumnElement[bool]:
    """Jobs still in progress whose lease expired before `now`: their run is gone."""
    return and_(
        col(UploadJob.status) == JobStatus.IN_PROGRESS, col(UploadJob.lease_expires_at) < now
    )


def claim_refusal(job: UploadJob) -> JobNotClaimable | None:
    """Why a run could not claim `job` as it stands (completed, or held by a run), or None."""
    if job.status == JobStatus.COMPLETED:
        return JobAlreadyCompleted(f"Upload job {job.id} is already completed")
    if job.status == JobStatus.IN_PROGRESS:
        expires = as_utc(job.lease_expires_at)
        until = f" until {expires:%Y-%m-%d %H:%M:%S} UTC" if expires else ""
        return JobInProgress(
            f"Upload job {job.id} is already in progress (held by {job.lease_owner}{until})"
        )
    return None


def retry_backoff(attempts: int) -> timedelta:
    """How long a job that failed `attempts` times waits before it is due again."""
    exponent = max(0, min(attempts - 1, 20))
    return min(RETRY_BACKOFF_BASE * (2**exponent), RETRY_BACKOFF_CAP)


class JobStore:
    """Jobs and attempts in the database at `database_url`."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def add_job(
        self,
        source_path: str,
        object_key: str | Callable[[int], str],
        status: JobStatus = JobStatus.PENDING,
        last_error: str | None = None,
    ) -> UploadJob:
        """Register a video to upload; returns the stored job with its id.

        `object_key` may be a function of the new job's id (a key template with `{job_id}`).
        A key another job holds raises `ObjectKeyTaken`, whoever adds it, however many at once.
        """
        now = utcnow()
        # A key of the job's id is known once the row has one: a placeholder no key can equal
        # (keys never start with a dot segment) holds the place within the same transaction.
        first_key = object_key if isinstance(object_key, str) else f"./pending/{uuid.uuid4().hex}"
        job = UploadJob(
            source_path=source_path,
            object_key=first_key,
            status=status,
            last_error=last_error,
            created_at=now,
            updated_at=now,
        )
        with session_for(self.database_url) as session:
            try:
                session.add(job)
                session.flush()
                if not isinstance(object_key, str):
                    assert job.id is not None
                    job.object_key = object_key(job.id)
                    session.flush()
                session.commit()
            except IntegrityError:
                session.rollback()
                raise self._key_taken(job.object_key, source_path) from None
            session.refresh(job)
        return job

    def _key_taken(self, key: str, source_path: str) -> Exception:
        """The refusal for a job whose key another job holds (found by the unique index)."""
        with session_for(self.database_url) as session:
            holder = session.exec(select(UploadJob).where(UploadJob.object_key == key)).first()
        if holder is None or holder.id is None:  # not the key after all: something else broke
            return RuntimeError(f"could not add the job for {source_path}: integrity error")
        return ObjectKeyTaken(key, holder.id, holder.source_path, source_path)

    def set_object_key(self, job_id: int, object_key: str) -> UploadJob:
        """Give a pending or failed job another key (one no other job holds)."""
        change = (
            update(UploadJob)
            .where(col(UploadJob.id) == job_id)
            .where(col(UploadJob.status).in_(CLAIMABLE_STATUSES))
            .values(object_key=object_key, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        job = self.get_job(job_id)
        with session_for(self.database_url) as session:
            try:
                changed = session.connection().execute(change).rowcount == 1
                session.commit()
            except IntegrityError:
                session.rollback()
                raise self._key_taken(object_key, job.source_path) from None
        if not changed:
            raise claim_refusal(self.get_job(job_id)) or JobInProgress(
                f"Upload job {job_id} changed while its key was being set: try again"
            )
        return self.get_job(job_id)

    def get_job(self, job_id: int) -> UploadJob:
        """The job with this id, or `JobNotFound`."""
        with session_for(self.database_url) as session:
            job = session.get(UploadJob, job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def list_jobs(self, status: JobStatus | None = None, limit: int = 1000) -> list[UploadJob]:
        """Jobs, newest first, optionally only those with `status`."""
        query = select(UploadJob).order_by(col(UploadJob.id).desc()).limit(limit)
        if status is not None:
            query = query.where(UploadJob.status == status)
        with session_for(self.database_url) as session:
            return list(session.exec(query).all())

    def count_jobs_by_status(self) -> dict[str, int]:
        """How many jobs are in each status."""
        query = select(UploadJob.status, func.count()).group_by(UploadJob.status)
        with session_for(self.database_url) as session:
            return {status: count for status, count in session.exec(query).all()}

    def list_attempts(self, job_id: int) -> list[UploadAttempt]:
        """A job's attempts, oldest first."""
        query = (
            select(UploadAttempt)
            .where(UploadAttempt.job_id == job_id)
            .order_by(col(UploadAttempt.attempt_number))
        )
        with session_for(self.database_url) as session:
            return list(session.exec(query).all())

    def claim_job(
        self,
        job_id: int,
        lease_owner: str,
        lease: timedelta,
        flow_run_id: str | None = None,
    ) -> ClaimedJob:
        """Take the job for one run: a single conditional UPDATE, so only one runner wins."""
        now = utcnow()
        expires = now + lease
        claim = (
            update(UploadJob)
            .where(col(UploadJob.id) == job_id)
            .where(col(UploadJob.status).in_(CLAIMABLE_STATUSES))
            .values(
                status=JobStatus.IN_PROGRESS,
                lease_owner=lease_owner,
                lease_expires_at=expires,
                attempts=UploadJob.attempts + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        with session_for(self.database_url) as session:
            won = session.connection().execute(claim).rowcount == 1
            if not won:
                session.rollback()
                raise self._why_not_claimable(job_id)
            job = session.get(UploadJob, job_id)
            assert job is not None and job.id is not None
            attempt = UploadAttempt(
                job_id=job.id,
                attempt_number=job.attempts,
                flow_run_id=flow_run_id,
                lease_owner=lease_owner,
                started_at=now,
            )
            session.add(attempt)
            session.commit()
            assert attempt.id is not None
            return ClaimedJob(
                job_id=job.id,
                source_path=job.source_path,
                object_key=job.object_key,
                attempt_number=attempt.attempt_number,
                attempt_id=attempt.id,
                lease_owner=lease_owner,
                lease_expires_at=expires,
            )

    def _why_not_claimable(self, job_id: int) -> Exception:
        job = self.get_job(job_id)
        return claim_refusal(job) or JobInProgress(f"Upload job {job_id} was just taken")

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
        self, claim: ClaimedJob, report: AttemptReport, error: str, error_kind: ErrorKind
    ) -> UploadJob:
        """Record a failed run: the job becomes failed with a reason and a next due time."""
        now = utcnow()
        job_values: dict[str, Any] = {
            "status": JobStatus.FAILED,
            "last_error": error,
            "error_kind": error_kind,
            "optimized_for_streaming": False,
            "next_attempt_at": now + retry_backoff(claim.attempt_number),
        }
        if report.source_size_bytes is not None:
            job_values["source_size_bytes"] = report.source_size_bytes
        attempt_values = _attempt_values(report, AttemptOutcome.FAILED)
        attempt_values |= {"error": error, "error_kind": error_kind}
        return self._finish(claim, job_values, attempt_values, now)

    def record_progress(self, attempt_id: int, progress: ProgressUpdate) -> None:
        """Store a running attempt's latest progress; a finished attempt is left as it ended."""
        record = (
            update(UploadAttempt)
            .where(col(UploadAttempt.id) == attempt_id)
            .where(col(UploadAttempt.outcome) == AttemptOutcome.RUNNING)
            .values(
                phase=progress.phase,
                progress_percent=progress.percent,
                bytes_done=progress.bytes_done,
                bytes_total=progress.bytes_total,
                progress_updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        with session_for(self.database_url) as session:
            session.connection().execute(record)
            session.commit()

    def record_upload_intent(
        self, attempt_id: int, size_bytes: int, sha256: str, optimized: bool
    ) -> None:
        """Note on a running attempt which file it is about to upload (size, sha256, optimized)."""
        record = (
            update(UploadAttempt)
            .where(col(UploadAttempt.id) == attempt_id)
            .where(col(UploadAttempt.outcome) == AttemptOutcome.RUNNING)
            .values(uploaded_size_bytes=size_bytes, upload_sha256=sha256, optimized=optimized)
            .execution_options(synchronize_session=False)
        )
        with session_for(self.database_url) as session:
            session.connection().execute(record)
            session.commit()

    def upload_sha256s(self, job_id: int) -> frozenset[str]:
        """The sha256 of every file the job's attempts set out to upload."""
        query = (
            select(UploadAttempt.upload_sha256)
            .where(UploadAttempt.job_id == job_id)
            .where(col(UploadAttempt.upload_sha256).is_not(None))
        )
        with session_for(self.database_url) as session:
            return frozenset(sha for sha in session.exec(query).all() if sha)

    def reap_expired_leases(self) -> list[int]:
        """Jobs whose run stopped (lease expired while in progress) become failed: worker_lost."""
        now = utcnow()
        error = (
            "Worker lost: the run holding this job stopped before finishing "
            "(its lease expired); the job will be retried"
        )
        reap = (
            update(UploadJob)
            .where(lease_ran_out(now))
            .values(
                status=JobStatus.FAILED,
                error_kind=ErrorKind.WORKER_LOST,
                last_error=error,
                lease_owner=None,
                lease_expires_at=None,
                next_attempt_at=now,
                updated_at=now,
            )
            .returning(col(UploadJob.id))
            .execution_options(synchronize_session=False)
        )
        with session_for(self.database_url) as session:
            connection = session.connection()
            reaped = sorted(job_id for job_id in connection.execute(reap).scalars() if job_id)
            if reaped:
                connection.execute(
                    update(UploadAttempt)
                    .where(col(UploadAttempt.job_id).in_(reaped))
                    .where(col(UploadAttempt.outcome) == AttemptOutcome.RUNNING)
                    .values(
                        outcome=AttemptOutcome.FAILED,
                        error=error,
                        error_kind=ErrorKind.WORKER_LOST,
                        finished_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
            session.commit()
        return reaped

    def due_failed_jobs(self, limit: int, max_attempts: int) -> list[UploadJob]:
        """Failed jobs with attempts left whose backoff has passed, oldest first."""
        now = utcnow()
        due = or_(col(UploadJob.next_attempt_at).is_(None), col(UploadJob.next_attempt_at) <= now)
        query = (
            select(UploadJob)
            .where(UploadJob.status == JobStatus.FAILED)
            .where(col(UploadJob.attempts) < max_attempts)
            .where(due)
            .order_by(col(UploadJob.updated_at), col(UploadJob.id))
            .limit(limit)
        )
        with session_for(self.database_url) as session:
            return list(session.exec(query).all())

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
        "cdn_purge": report.cdn_purge,
        "cdn_purge_detail": report.cdn_purge_detail,
        "source_size_bytes": report.source_size_bytes,
        "uploaded_size_bytes": report.uploaded_size_bytes,
        "step_seconds": report.step_seconds,
    }
