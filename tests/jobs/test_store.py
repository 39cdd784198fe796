"""The job store on a real database: transitions, and the atomic claim under contention."""

from __future__ import annotations

import multiprocessing
import random
from datetime import timedelta

import pytest

from upload_jobs.errors import ErrorKind, JobNotClaimable, JobNotFound
from upload_jobs.jobs.attempt_report import AttemptReport, StoredObject
from upload_jobs.jobs.models import AttemptOutcome, JobStatus, as_utc, utcnow
from upload_jobs.jobs.retry_policy import RetryPolicy
from upload_jobs.jobs.store import JobStore

LEASE = timedelta(minutes=10)


REPORT = AttemptReport(
    preset="faststart",
    source_size_bytes=100,
    uploaded_size_bytes=90,
    optimized=True,
    step_seconds={"upload_to_spaces": 0.5},
)
STORED = StoredObject(public_url="https://cdn.example/videos/a.mp4", etag="abc")


def test_add_and_read_jobs(database_url: str) -> None:
    store = JobStore(database_url)
    first = store.add_job("/v/a.mp4", "videos/a.mp4")
    second = store.add_job("/v/b.mp4", "videos/b.mp4", status=JobStatus.FAILED, last_error="x")
    assert first.id is not None and second.id is not None
    assert store.get_job(first.id).status == JobStatus.PENDING
    assert [job.id for job in store.list_jobs()] == [second.id, first.id]
    assert [job.id for job in store.list_jobs(status=JobStatus.FAILED)] == [second.id]
    assert store.count_jobs_by_status() == {"pending": 1, "failed": 1}
    with pytest.raises(JobNotFound, match="Upload job 999 not found"):
        store.get_job(999)


def test_claim_then_complete_records_job_and_attempt(database_url: str) -> None:
    store = JobStore(database_url)
    job = store.add_job("/v/a.mp4", "videos/a.mp4", status=JobStatus.FAILED)
    assert job.id is not None
    claim = store.claim_job(job.id, "worker-1", LEASE, flow_run_id="run-1")
    held = store.get_job(job.id)
    assert held.status == JobStatus.IN_PROGRESS
    assert held.lease_owner == "worker-1" and held.attempts == 1
    expires = as_utc(held.lease_expires_at)
    assert expires is not None and expires > utcnow()

    done = store.mark_completed(claim, REPORT, STORED)
    assert done.status == JobStatus.COMPLETED
    assert (done.lease_owner, done.lease_expires_at) == (None, None)
    assert done.optimized_for_streaming and done.optimization_preset == "faststart"
    assert (done.etag, done.uploaded_size_bytes) == ("abc", 90)
    assert done.completed_at is not None
    [attempt] = store.list_attempts(job.id)
    assert attempt.outcome == AttemptOutcome.COMPLETED
    assert attempt.flow_run_id == "run-1" and attempt.finished_at is not None
    assert attempt.step_seconds == {"upload_to_spaces": 0.5}


def test_failed_run_records_reason_and_backoff(database_url: str) -> None:
    store = JobStore(database_url)
    job = store.add_job("/v/a.mp4", "videos/a.mp4")
    assert job.id is not None
    claim = store.claim_job(job.id, "worker-1", LEASE)
    failed = store.mark_failed(
        claim,
        AttemptReport(preset="faststart"),
        "Original video file not found: /v/a.mp4",
        ErrorKind.SOURCE_MISSING,
    )
    assert failed.status == JobStatus.FAILED
    assert failed.error_kind == "source_missing"
    assert failed.last_error == "Original video file not found: /v/a.mp4"
    next_due = as_utc(failed.next_attempt_at)
    assert next_due is not None and next_due > utcnow()
    [attempt] = store.list_attempts(job.id)
    assert (attempt.outcome, attempt.error_kind) == (AttemptOutcome.FAILED, "source_missing")


def test_claim_refuses_running_completed_and_unknown_jobs(database_url: str) -> None:
    store = JobStore(database_url)
    job = store.add_job("/v/a.mp4", "videos/a.mp4")
    assert job.id is not None
    claim = store.claim_job(job.id, "worker-1", LEASE)
    with pytest.raises(JobNotClaimable, match=r"already in progress .*worker-1"):
        store.claim_job(job.id, "worker-2", LEASE)
    store.mark_completed(claim, REPORT, STORED)
    with pytest.raises(JobNotClaimable, match="already completed"):
        store.claim_job(job.id, "worker-2", LEASE)
    with pytest.raises(JobNotFound):
        store.claim_job(12345, "worker-2", LEASE)
    assert store.get_job(job.id).attempts == 1


def test_only_the_lease_holder_can_finish(database_url: str) -> None:
    store = JobStore(database_url)
    job = store.add_job("/v/a.mp4", "videos/a.mp4")
    assert job.id is not None
    claim = store.claim_job(job.id, "worker-1", LEASE)
    stranger = type(claim)(**{**claim.__dict__, "lease_owner": "worker-2"})
    with pytest.raises(JobNotClaimable, match="no longer held by this run"):
        store.mark_completed(stranger, REPORT, STORED)
    assert store.get_job(job.id).status == JobStatus.IN_PROGRESS


def test_a_mark_retried_after_its_commit_landed_is_not_an_error(database_url: str) -> None:
    # The database committed the first mark but the connection dropped before the answer: the
    # task retries the same mark, which must find its outcome instead of a "lost" lease.
    store = JobStore(database_url)
    done, failed = (store.add_job(f"/v/{n}.mp4", f"videos/{n}.mp4") for n in ("done", "failed"))
    assert done.id and failed.id
    claim = store.claim_job(done.id, "worker-1", LEASE)
    first = store.mark_completed(claim, REPORT, STORED)
    again = store.mark_completed(claim, REPORT, STORED)
    assert again.status == first.status == JobStatus.COMPLETED
    assert again.completed_at == first.completed_at, "the retry changed nothing"
    with pytest.raises(JobNotClaimable, match="no longer held by this run"):
        store.mark_failed(claim, REPORT, "late failure", ErrorKind.UPLOAD_TRANSIENT)
    claim = store.claim_job(failed.id, "worker-1", LEASE)
    store.mark_failed(claim, REPORT, "503 SlowDown", ErrorKind.UPLOAD_TRANSIENT)
    job = store.mark_failed(claim, REPORT, "503 SlowDown", ErrorKind.UPLOAD_TRANSIENT)
    assert (job.status, job.attempts, len(store.list_attempts(failed.id))) == (
        JobStatus.FAILED,
        1,
        1,
    )


def test_retry_backoff_doubles_and_is_capped() -> None:
    assert RetryPolicy().backoff(1) == timedelta(minutes=1)
    assert RetryPolicy().backoff(3) == timedelta(minutes=4)
    assert RetryPolicy().backoff(50) == timedelta(hours=1)


def _claim_all(
    database_url: str, job_ids: list[int], owner: str, start: object
) -> tuple[list[int], int]:
    """Try to claim every job; return the ones won and how many claims were refused."""
    store = JobStore(database_url)
    start.wait()  # type: ignore[attr-defined]
    won, refused = [], 0
    for job_id in random.sample(job_ids, len(job_ids)):
        try:
            store.claim_job(job_id, owner, LEASE)
            won.append(job_id)
        except JobNotClaimable:
            refused += 1
    return won, refused


def test_racing_processes_each_job_claimed_exactly_once(database_url: str) -> None:
    store = JobStore(database_url)
    job_ids = [
        job.id for job in (store.add_job(f"/v/{n}.mp4", f"videos/{n}.mp4") for n in range(25))
    ]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Barrier(4)
        with context.Pool(4) as pool:
            results = pool.starmap(
                _claim_all, [(database_url, job_ids, f"worker-{n}", start) for n in range(4)]
            )
    claimed = [job_id for won, _ in results for job_id in won]
    assert sorted(claimed) == sorted(job_ids), "every job claimed once, none twice"
    assert sum(refused for _, refused in results) == 3 * len(job_ids), "no claim errored"
    for job_id in job_ids:
        job = store.get_job(job_id)
        assert (job.status, job.attempts) == (JobStatus.IN_PROGRESS, 1)
        assert len(store.list_attempts(job_id)) == 1
