"""The job table's operations: add, read, claim and lease (`claims`), record outcomes
(`outcomes`), multipart uploads kept for a resume (`resumable`), progress and upload intents."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import and_, false, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from upload_jobs.errors import JobInProgress, ObjectKeyTaken
from upload_jobs.jobs.claims import CLAIMABLE_STATUSES, JobClaims, claim_refusal
from upload_jobs.jobs.database import session_for
from upload_jobs.jobs.live_progress import ProgressUpdate
from upload_jobs.jobs.models import JobStatus, UploadAttempt, UploadJob, utcnow
from upload_jobs.jobs.outcomes import JobOutcomes
from upload_jobs.jobs.resumable import ResumableUploads


class JobStore(JobClaims, JobOutcomes, ResumableUploads):
    """Jobs and attempts in the database at `database_url`."""

    def add_job(
        self,
        source_path: str,
        object_key: str | Callable[[int], str],
        status: JobStatus = JobStatus.PENDING,
        last_error: str | None = None,
        requested_preset: str | None = None,
    ) -> UploadJob:
        """Register a video to upload (with the preset it asks for, None: the setting's);
        returns the stored job with its id.

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
            requested_preset=requested_preset,
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

    def request_preset(self, job_id: int, preset: str) -> UploadJob:
        """Make `preset` the job's own; a completed job made another way is opened again (its
        next run replaces its objects). JobNotFound, or JobInProgress while a run holds it."""
        job = self.get_job(job_id)
        reopen = job.status == JobStatus.COMPLETED and job.optimization_preset != preset
        change = (
            update(UploadJob)
            .where(col(UploadJob.id) == job_id)
            .where(col(UploadJob.status) == job.status)
            .where(col(UploadJob.status) != JobStatus.IN_PROGRESS)
            .values(requested_preset=preset, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if reopen:
            change = change.values(status=JobStatus.PENDING, next_attempt_at=None)
        with session_for(self.database_url) as session:
            changed = session.connection().execute(change).rowcount == 1
            session.commit()
        if not changed:
            raise JobInProgress(
                f"Upload job {job_id} is being uploaded now: its preset cannot change until "
                "that run ends; try again then"
            )
        return self.get_job(job_id)

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

    def record_progress(self, attempt_id: int, progress: ProgressUpdate) -> None:
        """Store a running attempt's latest progress; a finished attempt is left as it ended."""
        self.update_running_attempt(
            attempt_id,
            phase=progress.phase,
            progress_percent=progress.percent,
            bytes_done=progress.bytes_done,
            bytes_total=progress.bytes_total,
            progress_updated_at=utcnow(),
        )

    def record_upload_intent(
        self, attempt_id: int, size_bytes: int, sha256: str, optimized: bool
    ) -> None:
        """Note on a running attempt which file it is about to upload (size, sha256, optimized)."""
        self.update_running_attempt(
            attempt_id, uploaded_size_bytes=size_bytes, upload_sha256=sha256, optimized=optimized
        )

    def upload_sha256s(self, job_id: int) -> frozenset[str]:
        """The sha256 of every file the job's attempts set out to upload."""
        query = (
            select(UploadAttempt.upload_sha256)
            .where(UploadAttempt.job_id == job_id)
            .where(col(UploadAttempt.upload_sha256).is_not(None))
        )
        with session_for(self.database_url) as session:
            return frozenset(sha for sha in session.exec(query).all() if sha)

    def due_jobs(
        self, limit: int, max_attempts: int, pending_for: timedelta | None = None
    ) -> list[UploadJob]:
        """Failed jobs with attempts left whose backoff has passed and, with `pending_for`, jobs
        added that long ago and never run; oldest first."""
        now = utcnow()
        due = or_(col(UploadJob.next_attempt_at).is_(None), col(UploadJob.next_attempt_at) <= now)
        failed_and_due = and_(col(UploadJob.status) == JobStatus.FAILED, due)
        waiting = (
            and_(col(UploadJob.status) == JobStatus.PENDING,
                 col(UploadJob.created_at) <= now - pending_for)
            if pending_for is not None
            else false()
        )  # fmt: skip
        query = (
            select(UploadJob)
            .where(or_(failed_and_due, waiting))
            .where(col(UploadJob.attempts) < max_attempts)
            .order_by(col(UploadJob.updated_at), col(UploadJob.id))
            .limit(limit)
        )
        with session_for(self.database_url) as session:
            return list(session.exec(query).all())
