"""Reconcile the job table with the bucket, so that a job is completed exactly when its object
is stored: failed or stuck jobs whose object is there become completed, completed jobs whose
object is gone become failed again for a retry. A key that holds an object not the job's own
(another job's, or a file put there by hand) is a conflict to report: nothing is changed, and
nothing is uploaded over it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, or_, update
from sqlmodel import col, select

from upload_jobs.errors import ErrorKind, UploadJobError
from upload_jobs.jobs.claims import PACKAGE_PATHS, lease_ran_out
from upload_jobs.jobs.database import session_for
from upload_jobs.jobs.models import AttemptOutcome, JobStatus, UploadAttempt, UploadJob, utcnow
from upload_jobs.media.playlists import MASTER_PLAYLIST
from upload_jobs.storage.checksums import file_sha256
from upload_jobs.storage.objects import ExistingObject, find_existing_object
from upload_jobs.storage.ownership import KeyOwner, holder_of
from upload_jobs.storage.packages import package_prefix

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Jobs read, and HEAD requests sent, per batch: bounds memory on a large table.
BATCH = 500
HEAD_CONCURRENCY = 8


class ReconcileScope(StrEnum):
    """Which jobs are checked against the bucket."""

    UNFINISHED = "unfinished"  # failed jobs, and in-progress ones whose lease ran out
    ALL = "all"  # those and every completed job


class Change(StrEnum):
    """What reconcile does to a job whose status disagrees with the bucket."""

    COMPLETED = "marked completed"
    REOPENED = "set back to failed"


@dataclass(frozen=True)
class ReconcileChange:
    """One job whose status changed (or, in a dry run, would change), and why."""

    job_id: int
    object_key: str
    change: Change
    previous_status: str
    reason: str

    @property
    def new_status(self) -> JobStatus:
        """The status the job has after the change."""
        return JobStatus.COMPLETED if self.change is Change.COMPLETED else JobStatus.FAILED


@dataclass(frozen=True)
class ReconcileConflict:
    """A job whose key holds an object that is not its own: left as it is, for people to sort."""

    job_id: int
    object_key: str
    status: str
    held_by: str
    reason: str


@dataclass
class ReconcileReport:
    """What one reconcile found: jobs checked, changes, conflicts, and jobs it could not decide
    about."""

    bucket: str
    dry_run: bool
    checked: int = 0
    changes: list[ReconcileChange] = field(default_factory=list)
    conflicts: list[ReconcileConflict] = field(default_factory=list)
    undecided: dict[int, str] = field(default_factory=dict)

    @property
    def completed(self) -> list[int]:
        """Jobs marked completed because their object is in the bucket."""
        return [c.job_id for c in self.changes if c.change is Change.COMPLETED]

    @property
    def reopened(self) -> list[int]:
        """Completed jobs set back to failed because their object is gone or differs."""
        return [c.job_id for c in self.changes if c.change is Change.REOPENED]

    @property
    def in_agreement(self) -> int:
        """Jobs whose status already agreed with the bucket."""
        return self.checked - len(self.changes) - len(self.conflicts) - len(self.undecided)

    def summary(self) -> str:
        """One sentence for people: what was checked and what changed."""
        would = "would be " if self.dry_run else ""
        conflicts = len(self.conflicts)
        return (
            f"Checked {self.checked} jobs against s3://{self.bucket}: "
            f"{len(self.completed)} {would}marked completed, "
            f"{len(self.reopened)} {would}set back to failed, {self.in_agreement} agree"
            + (f", {_keys_hold(conflicts)} another's object (left alone)" if conflicts else "")
            + (f", {len(self.undecided)} could not be checked" if self.undecided else "")
            + "."
        )


def _keys_hold(count: int) -> str:
    return "1 key holds" if count == 1 else f"{count} keys hold"


@dataclass(frozen=True)
class _Intent:
    """What a job's attempt set out to upload."""

    size_bytes: int | None
    sha256: str
    optimized: bool
    # An HLS package: the key players open, and reconcile looks at, is its master playlist.
    package: bool = False


@dataclass(frozen=True)
class _Intents:
    """What a job's attempts set out to upload: the latest one, and every sha256."""

    latest: _Intent | None = None
    sha256s: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Verdict:
    change: Change | None  # None: a conflict (`held_by` says what holds the key): no change
    reason: str
    stored: ExistingObject | None = None
    optimized: bool = False
    held_by: str = ""


def reconcile_jobs(
    database_url: str,
    client: S3Client,
    bucket: str,
    public_url: Callable[[str], str],
    *,
    scope: ReconcileScope = ReconcileScope.ALL,
    dry_run: bool = False,
    limit: int | None = None,
    job_ids: Sequence[int] | None = None,
    on_checked: Callable[[int], None] | None = None,
) -> ReconcileReport:
    """Compare jobs (in `scope`, or only `job_ids` of them) with their objects and fix the
    statuses that disagree (not with `dry_run`).

    The caller checks the bucket is reachable first: a missing bucket would make every
    completed job look lost.
    """
    report = ReconcileReport(bucket=bucket, dry_run=dry_run)
    with ThreadPoolExecutor(HEAD_CONCURRENCY, thread_name_prefix="reconcile-head") as pool:
        for jobs in _job_batches(database_url, scope, limit, job_ids):
            intents = _intents(database_url, [job.id for job in jobs if job.id])
            keys = [_key_of(job, intents) for job in jobs]
            looked_up = pool.map(lambda key: _head(client, bucket, key), keys)
            for job, key, stored in zip(jobs, keys, looked_up, strict=True):
                assert job.id is not None
                report.checked += 1
                if isinstance(stored, UploadJobError):
                    report.undecided[job.id] = str(stored)
                    continue
                verdict = _verdict(job, key, stored, intents.get(job.id, _Intents()), bucket)
                if verdict is None:
                    continue
                if verdict.change is None:
                    report.conflicts.append(
                        ReconcileConflict(
                            job.id, job.object_key, job.status, verdict.held_by, verdict.reason
                        )
                    )
                elif dry_run or _apply(database_url, job, verdict, public_url(key)):
                    report.changes.append(
                        ReconcileChange(
                            job.id, job.object_key, verdict.change, job.status, verdict.reason
                        )
                    )
            if on_checked is not None:
                on_checked(report.checked)
    return report


def _head(client: S3Client, bucket: str, key: str) -> ExistingObject | UploadJobError | None:
    try:
        return find_existing_object(client, bucket, key)
    except UploadJobError as exc:  # one unreachable object must not stop the others
        return exc


def _key_of(job: UploadJob, intents: dict[int, _Intents]) -> str:
    """The key a player opens: the job's object, or the master playlist of its HLS package."""
    latest = intents.get(job.id or 0, _Intents()).latest
    if latest is not None and latest.package:
        return package_prefix(job.object_key) + MASTER_PLAYLIST
    return job.object_key


def _verdict(
    job: UploadJob, key: str, stored: ExistingObject | None, intents: _Intents, bucket: str
) -> _Verdict | None:
    """What to change about `job` given what the bucket holds at `key`; None when they agree; a
    verdict without a change when the key holds an object that is not the job's."""
    where = f"s3://{bucket}/{key}"
    package = intents.latest is not None and intents.latest.package
    if stored is not None and not _owns(job, stored, intents):
        holder = holder_of(stored)
        held = f"{where} holds {holder}, not this job's video"
        if job.status == JobStatus.COMPLETED:
            return _Verdict(
                None, f"{held}: the job says completed; nothing changed", held_by=holder
            )
        return _Verdict(None, f"{held}: a retry will not write over it", held_by=holder)
    if job.status == JobStatus.COMPLETED:
        if stored is None:
            return _Verdict(Change.REOPENED, f"{where} is not in the bucket")
        # A package's size is all its objects': its master playlist being there is the check.
        sized = job.uploaded_size_bytes is not None and not package
        if sized and stored.size_bytes != job.uploaded_size_bytes:
            reason = f"{where} holds {stored.size_bytes} bytes, the job uploaded "
            return _Verdict(Change.REOPENED, reason + str(job.uploaded_size_bytes))
        return None
    if stored is None or stored.sha256 is None:
        return None  # nothing there: the retry uploads it
    same = f"({stored.size_bytes} bytes, same sha256)"
    intent = intents.latest
    # A package's master playlist goes up last: its bytes there mean every file it names is.
    sized = intent is not None and (package or intent.size_bytes == stored.size_bytes)
    if intent is not None and sized and intent.sha256 == stored.sha256:
        reason = f"{where} holds what the job's last attempt uploaded {same}"
        return _Verdict(Change.COMPLETED, reason, stored, intent.optimized)
    if _source_matches(job.source_path, stored):
        return _Verdict(Change.COMPLETED, f"{where} holds the original file {same}", stored)
    return None


def _owns(job: UploadJob, stored: ExistingObject, intents: _Intents) -> bool:
    """Whether the object at the job's key is the job's own: it names the job, or (from before
    objects named their job) it holds bytes one of its attempts uploaded, or the source itself."""
    assert job.id is not None
    if KeyOwner(job.id, intents.sha256s).owns(stored):
        return True
    return stored.owner is None and _source_matches(job.source_path, stored)


def _source_matches(source_path: str, stored: ExistingObject) -> bool:
    """Whether the object is the source file itself (sizes compared first: hashing is costly)."""
    source = Path(source_path)
    try:
        if not source.is_file() or source.stat().st_size != stored.size_bytes:
            return False
        return file_sha256(source) == stored.sha256
    except OSError:
        return False


def _apply(database_url: str, job: UploadJob, verdict: _Verdict, public_url: str) -> bool:
    """Write the verdict unless the job moved on meanwhile; whether it was written."""
    now = utcnow()
    values: dict[str, Any]
    if verdict.change is Change.COMPLETED:
        assert verdict.stored is not None
        condition = _unfinished(now)
        values = {
            "status": JobStatus.COMPLETED,
            "last_error": None,
            "error_kind": None,
            "optimized_for_streaming": verdict.optimized,
            "uploaded_size_bytes": verdict.stored.size_bytes,
            "public_url": public_url,
            "etag": verdict.stored.etag,
            "next_attempt_at": None,
            "completed_at": now,
        }
    else:
        condition = col(UploadJob.status) == JobStatus.COMPLETED
        values = {
            "status": JobStatus.FAILED,
            "error_kind": ErrorKind.OBJECT_MISSING,
            "last_error": f"{verdict.reason}: set back to failed by reconcile so that the next "
            "sweep uploads it again",
            "optimized_for_streaming": False,
            "public_url": None,
            "etag": None,
            "completed_at": None,
            "next_attempt_at": now,
        }
    change_job = (
        update(UploadJob)
        .where(col(UploadJob.id) == job.id)
        .where(condition)
        .values(lease_owner=None, lease_expires_at=None, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    with session_for(database_url) as session:
        connection = session.connection()
        if connection.execute(change_job).rowcount != 1:
            session.rollback()
            return False
        if verdict.change is Change.COMPLETED:
            # A run that died after its upload left its attempt running: its upload is the object.
            connection.execute(_finish_running_attempt(job.id, now))
        session.commit()
    return True


def _finish_running_attempt(job_id: int | None, now: datetime) -> Any:
    return (
        update(UploadAttempt)
        .where(col(UploadAttempt.job_id) == job_id)
        .where(col(UploadAttempt.outcome) == AttemptOutcome.RUNNING)
        .values(outcome=AttemptOutcome.COMPLETED, finished_at=now)
        .execution_options(synchronize_session=False)
    )


def _job_batches(
    database_url: str, scope: ReconcileScope, limit: int | None, job_ids: Sequence[int] | None
) -> Iterator[list[UploadJob]]:
    """The jobs in scope, oldest first, `BATCH` at a time (keyset pagination on the id)."""
    in_scope = _unfinished(utcnow())
    if scope is ReconcileScope.ALL:
        in_scope = or_(in_scope, col(UploadJob.status) == JobStatus.COMPLETED)
    if job_ids is not None:
        in_scope = and_(in_scope, col(UploadJob.id).in_(job_ids))
    after, left = 0, limit
    while left is None or left > 0:
        size = BATCH if left is None else min(BATCH, left)
        query = (
            select(UploadJob)
            .where(in_scope)
            .where(col(UploadJob.id) > after)
            .order_by(col(UploadJob.id))
            .limit(size)
        )
        with session_for(database_url) as session:
            jobs = list(session.exec(query).all())
        if not jobs:
            return
        yield jobs
        after = jobs[-1].id or after
        left = None if left is None else left - len(jobs)


def _unfinished(now: datetime) -> ColumnElement[bool]:
    """Failed jobs, and in-progress ones whose lease ran out (their run is gone)."""
    return or_(col(UploadJob.status) == JobStatus.FAILED, lease_ran_out(now))


def _intents(database_url: str, job_ids: list[int]) -> dict[int, _Intents]:
    """Per job, what its attempts that got as far as uploading set out to upload."""
    query = (
        select(UploadAttempt)
        .where(col(UploadAttempt.job_id).in_(job_ids))
        .where(col(UploadAttempt.upload_sha256).is_not(None))
        .order_by(col(UploadAttempt.id))
    )
    with session_for(database_url) as session:
        attempts = list(session.exec(query).all())
    intents: dict[int, _Intents] = {}
    for attempt in attempts:  # ordered by id: each job ends with its latest attempt
        sha256 = attempt.upload_sha256 or ""
        package = attempt.optimization_path in PACKAGE_PATHS
        latest = _Intent(attempt.uploaded_size_bytes, sha256, attempt.optimized, package)
        seen = intents.get(attempt.job_id, _Intents()).sha256s
        intents[attempt.job_id] = _Intents(latest, seen | {sha256})
    return intents
