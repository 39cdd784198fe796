"""Who holds a job: the atomic claim and its lease (renewed while the run lives), and taking a
job back from a run that is gone."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, update
from sqlmodel import col, select

from upload_jobs.errors import (
    ErrorKind,
    JobAlreadyCompleted,
    JobInProgress,
    JobNotClaimable,
    JobNotFound,
    SourceProblem,
    UploadJobError,
)
from upload_jobs.jobs.database import session_for
from upload_jobs.jobs.files import check_source_file
from upload_jobs.jobs.live_progress import ProgressTarget
from upload_jobs.jobs.models import (
    AttemptOutcome,
    JobStatus,
    UploadAttempt,
    UploadJob,
    as_utc,
    utcnow,
)
from upload_jobs.jobs.retry_policy import RetryPolicy
from upload_jobs.jobs.table import JobTable
from upload_jobs.settings import Preset

CLAIMABLE_STATUSES = (JobStatus.PENDING, JobStatus.FAILED)
# media.streaming.StreamingPath values of an upload made of many objects.
PACKAGE_PATHS = ("hls_packaged", "abr_ladder")


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
    # The preset the job asks for (`--preset`), or None: the setting's.
    requested_preset: str | None = None
    # Whether an earlier attempt made an HLS package: a single-file upload then removes the
    # job's own objects under its key prefix.
    earlier_package: bool = False

    def preset_or(self, default: Preset) -> Preset:
        """The preset this run prepares the video with: the job's own, else `default`."""
        return Preset(self.requested_preset) if self.requested_preset else default

    @property
    def progress_target(self) -> ProgressTarget:
        """Where this run's steps report their live progress."""
        return ProgressTarget(self.job_id, self.attempt_id)


ALREADY_COMPLETED_STATE = "AlreadyCompleted"
HELD_ELSEWHERE_STATE = "HeldElsewhere"


class ClaimRefused(Exception):
    """Why a run took no job: nothing to do (completed, or another run holds it), no such job,
    or a source no upload can start from (recorded on the job as `recorded`; no attempt)."""

    def __init__(
        self, job_id: int, error: UploadJobError, recorded: UploadJob | None = None
    ) -> None:
        super().__init__(str(error))
        self.job_id, self.error, self.recorded = job_id, error, recorded

    @property
    def nothing_to_do(self) -> bool:
        """Whether the job needs no run (done, or being done): no failure of the run's."""
        return isinstance(self.error, JobNotClaimable)

    @property
    def state_name(self) -> str:
        """The name of the Completed state a run with nothing to do ends in, which the Prefect
        UI shows and `upload-jobs retry` reads its exit code from (a later look at the job could
        find it completed by the run that held it)."""
        if isinstance(self.error, JobAlreadyCompleted):
            return ALREADY_COMPLETED_STATE
        return HELD_ELSEWHERE_STATE

    def sentence(self) -> str:
        """What the run says it ended with, and what to do."""
        if self.nothing_to_do:
            return f"{self.error}: nothing to do."
        if isinstance(self.error, JobNotFound):
            return f"{self.error}: nothing to retry (`upload-jobs list` shows the ids)."
        return (
            f"{self.error}. No attempt was spent: fix the file, then run "
            f"`upload-jobs retry {self.job_id}`."
        )


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


def lost_attempts(job_ids: list[int], error: str, now: datetime) -> Any:
    """The running attempts of jobs whose run is gone become failed (worker_lost)."""
    return (
        update(UploadAttempt)
        .where(col(UploadAttempt.job_id).in_(job_ids))
        .where(col(UploadAttempt.outcome) == AttemptOutcome.RUNNING)
        .values(
            outcome=AttemptOutcome.FAILED,
            error=error,
            error_kind=ErrorKind.WORKER_LOST,
            finished_at=now,
        )
        .execution_options(synchronize_session=False)
    )


class JobClaims(JobTable):
    """Claims and leases of the job table."""

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
            earlier_package = session.exec(
                select(UploadAttempt.id)
                .where(UploadAttempt.job_id == job.id)
                .where(col(UploadAttempt.optimization_path).in_(PACKAGE_PATHS))
                .limit(1)
            ).first()
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
                requested_preset=job.requested_preset,
                earlier_package=earlier_package is not None,
            )

    def claim_ready_job(
        self,
        job_id: int,
        lease_owner: str,
        lease: timedelta,
        policy: RetryPolicy,
        flow_run_id: str | None = None,
    ) -> ClaimedJob | ClaimRefused:
        """Take the job for one run when there is something to do and its source can be
        uploaded at all; else why not, a source problem recorded on the job without spending an
        attempt (it is due again after the first backoff, for a file that may yet appear)."""
        try:
            job = self.get_job(job_id)
        except JobNotFound as missing:
            return ClaimRefused(job_id, missing)
        if (refusal := claim_refusal(job)) is not None:
            return ClaimRefused(job_id, refusal)
        if (problem := self.refuse_unusable_source(job, policy)) is not None:
            return ClaimRefused(job_id, problem, self.get_job(job_id))
        try:
            return self.claim_job(job_id, lease_owner, lease, flow_run_id)
        except JobNotClaimable as taken:  # another run won the claim meanwhile
            return ClaimRefused(job_id, taken)

    def refuse_unusable_source(self, job: UploadJob, policy: RetryPolicy) -> SourceProblem | None:
        """The problem of a source no upload can start from (missing, empty, unreadable, not a
        video), recorded on the job without spending an attempt; None when it can be read."""
        try:
            check_source_file(job.source_path)
        except SourceProblem as problem:
            self._record_source_problem(job, problem, policy)
            return problem
        return None

    def _record_source_problem(
        self, job: UploadJob, problem: SourceProblem, policy: RetryPolicy
    ) -> None:
        """The job failed with `problem`, its attempts as they were; unless a run holds it or it
        completed meanwhile (then it is left as it is)."""
        now = utcnow()
        record = (
            update(UploadJob)
            .where(col(UploadJob.id) == job.id)
            .where(col(UploadJob.status).in_(CLAIMABLE_STATUSES))
            .values(
                status=JobStatus.FAILED,
                last_error=str(problem),
                error_kind=problem.error_kind,
                next_attempt_at=now + policy.backoff(max(job.attempts, 1)),
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        with session_for(self.database_url) as session:
            session.connection().execute(record)
            session.commit()

    def _why_not_claimable(self, job_id: int) -> Exception:
        job = self.get_job(job_id)
        return claim_refusal(job) or JobInProgress(f"Upload job {job_id} was just taken")

    def renew_lease(self, claim: ClaimedJob, lease: timedelta) -> bool:
        """Push the lease `lease` into the future; False when this run no longer holds the job."""
        now = utcnow()
        renew = (
            update(UploadJob)
            .where(col(UploadJob.id) == claim.job_id)
            .where(col(UploadJob.status) == JobStatus.IN_PROGRESS)
            .where(col(UploadJob.lease_owner) == claim.lease_owner)
            .values(lease_expires_at=now + lease)
            .execution_options(synchronize_session=False)
        )
        with session_for(self.database_url) as session:
            held = session.connection().execute(renew).rowcount == 1
            session.commit()
        return held

    def take_back(self, job_id: int, lease_owner: str, reason: str) -> bool:
        """A job whose holder is gone (`lease_owner` still on it) becomes failed and due now,
        its running attempt failed with `reason` (worker_lost); False if it moved on."""
        now = utcnow()
        job_values = {
            "status": JobStatus.FAILED,
            "error_kind": ErrorKind.WORKER_LOST,
            "last_error": reason,
            "lease_owner": None,
            "lease_expires_at": None,
            "next_attempt_at": now,
            "updated_at": now,
        }
        take = (
            update(UploadJob)
            .where(col(UploadJob.id) == job_id)
            .where(col(UploadJob.status) == JobStatus.IN_PROGRESS)
            .where(col(UploadJob.lease_owner) == lease_owner)
            .values(**job_values)
            .execution_options(synchronize_session=False)
        )
        with session_for(self.database_url) as session:
            connection = session.connection()
            if connection.execute(take).rowcount != 1:
                session.rollback()
                return False
            connection.execute(lost_attempts([job_id], reason, now))
            session.commit()
        return True

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
                connection.execute(lost_attempts(reaped, error, now))
            session.commit()
        return reaped
