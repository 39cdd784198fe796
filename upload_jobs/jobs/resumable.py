"""The multipart uploads attempts leave open on purpose: recorded before their first part, found
again by the job's next attempt, and told apart from leftovers by the sweep's clean-up."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, select

from upload_jobs.errors import FailureClass, failure_class
from upload_jobs.jobs.database import session_for
from upload_jobs.jobs.models import (
    AttemptOutcome,
    JobStatus,
    UploadAttempt,
    UploadJob,
    as_utc,
    utcnow,
)
from upload_jobs.jobs.table import JobTable
from upload_jobs.storage.resume import MultipartUpload


@dataclass(frozen=True)
class RecordedUpload:
    """A multipart upload an attempt recorded, and whether its job may still resume it."""

    upload_id: str
    job_id: int
    resumable: bool
    # When the attempt that recorded it started (S3's own `Initiated` is not always kept: moto
    # reports 2010-11-10 for every upload).
    recorded_at: datetime | None

    def recorded_within(self, age: timedelta) -> bool:
        """Whether it was recorded less than `age` ago (unknown: it was not)."""
        return self.recorded_at is not None and self.recorded_at > utcnow() - age


class ResumableUploads(JobTable):
    """Multipart uploads on the attempt rows."""

    def record_multipart_upload(self, attempt_id: int, upload: MultipartUpload) -> None:
        """Note on a running attempt the multipart upload it is about to fill (and for which
        bytes: `record_upload_intent` wrote their size and sha256 just before)."""
        self.update_running_attempt(
            attempt_id,
            multipart_upload_id=upload.upload_id,
            multipart_part_bytes=upload.part_bytes,
            uploaded_size_bytes=upload.size_bytes,
            upload_sha256=upload.sha256,
        )

    def resumable_upload(self, job_id: int) -> MultipartUpload | None:
        """The multipart upload the job's newest attempt with one left open, while a later
        attempt may still finish it (`still_resumable`)."""
        query = (
            select(UploadAttempt)
            .where(UploadAttempt.job_id == job_id)
            .where(col(UploadAttempt.multipart_upload_id).is_not(None))
            .order_by(col(UploadAttempt.id).desc())
            .limit(2)
        )
        with session_for(self.database_url) as session:
            newest_first = list(session.exec(query).all())
        if not still_resumable(newest_first):
            return None
        return _upload_of(newest_first[0])

    def recorded_uploads(self, max_attempts: int) -> dict[str, RecordedUpload]:
        """Every multipart upload an attempt recorded, by upload id: resumable while it is its
        job's newest, still resumable, and the job is not done (completed, or failed with no
        attempt left)."""
        query = (
            select(UploadAttempt, UploadJob)
            .join(UploadJob, col(UploadJob.id) == col(UploadAttempt.job_id))
            .where(col(UploadAttempt.multipart_upload_id).is_not(None))
            .order_by(col(UploadAttempt.id).desc())
        )
        with session_for(self.database_url) as session:
            rows = list(session.exec(query).all())
        by_job: dict[int, list[UploadAttempt]] = {}
        for attempt, _ in rows:
            by_job.setdefault(attempt.job_id, []).append(attempt)
        return {
            str(attempt.multipart_upload_id): RecordedUpload(
                str(attempt.multipart_upload_id),
                attempt.job_id,
                resumable=by_job[attempt.job_id][0] is attempt
                and still_resumable(by_job[attempt.job_id])
                and _may_run_again(job, max_attempts),
                recorded_at=as_utc(attempt.started_at),
            )
            for attempt, job in rows
        }


def still_resumable(newest_first: Sequence[UploadAttempt]) -> bool:
    """Whether the newest of a job's attempts that recorded a multipart upload left it for a
    later attempt. Not once it became the object, not after a permanent failure, and not after
    two attempts in a row failed the same way with it: an upload the product recorded is only
    a shortcut, and must never make every retry fail alike."""
    if not newest_first:
        return False
    newest = newest_first[0]
    if newest.outcome == AttemptOutcome.COMPLETED or _failed_for_good(newest):
        return False
    if len(newest_first) < 2:
        return True
    before = newest_first[1]
    failed_alike = (
        newest.outcome == before.outcome == AttemptOutcome.FAILED
        and newest.multipart_upload_id == before.multipart_upload_id
        and (newest.error_kind, newest.error) == (before.error_kind, before.error)
    )
    return not failed_alike


def _failed_for_good(attempt: UploadAttempt) -> bool:
    return attempt.outcome == AttemptOutcome.FAILED and (
        failure_class(attempt.error_kind or "") == FailureClass.PERMANENT
    )


def _may_run_again(job: UploadJob, max_attempts: int) -> bool:
    if job.status in (JobStatus.PENDING, JobStatus.IN_PROGRESS):
        return True
    return job.status == JobStatus.FAILED and job.attempts < max_attempts


def _upload_of(attempt: UploadAttempt) -> MultipartUpload | None:
    fields: Iterable[object] = (
        attempt.multipart_upload_id,
        attempt.multipart_part_bytes,
        attempt.uploaded_size_bytes,
        attempt.upload_sha256,
    )
    if any(value is None for value in fields):
        return None
    return MultipartUpload(
        str(attempt.multipart_upload_id),
        int(attempt.multipart_part_bytes or 0),
        int(attempt.uploaded_size_bytes or 0),
        str(attempt.upload_sha256),
    )
