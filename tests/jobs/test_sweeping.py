"""The sweep's plain parts and the store queries behind it, on a real database."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from tests.support.leases import expire_lease
from upload_jobs.errors import ErrorKind
from upload_jobs.jobs.attempt_report import AttemptReport
from upload_jobs.jobs.database import get_engine
from upload_jobs.jobs.models import JobStatus, UploadJob
from upload_jobs.jobs.store import JobStore
from upload_jobs.jobs.sweeping import CircuitBreaker, SweepReport, remove_stale_temp_files

LEASE = timedelta(minutes=10)


def test_expired_leases_are_reaped_as_worker_lost(database_url: str) -> None:
    store = JobStore(database_url)
    lost, alive = (store.add_job(f"/v/{n}.mp4", f"videos/{n}.mp4") for n in ("lost", "alive"))
    assert lost.id and alive.id
    store.claim_job(lost.id, "crashed-worker", LEASE)
    store.claim_job(alive.id, "busy-worker", LEASE)
    expire_lease(database_url, lost.id)

    assert store.reap_expired_leases() == [lost.id]
    assert store.reap_expired_leases() == []

    job = store.get_job(lost.id)
    assert (job.status, job.error_kind, job.lease_owner) == ("failed", "worker_lost", None)
    [attempt] = store.list_attempts(lost.id)
    assert (attempt.outcome, attempt.error_kind) == ("failed", "worker_lost")
    assert store.get_job(alive.id).status == JobStatus.IN_PROGRESS
    assert store.due_jobs(limit=10, max_attempts=5)[0].id == lost.id


def test_due_jobs_respect_attempts_backoff_and_age(database_url: str) -> None:
    store = JobStore(database_url)
    old = store.add_job("/v/old.mp4", "videos/old.mp4", status=JobStatus.FAILED)
    new = store.add_job("/v/new.mp4", "videos/new.mp4", status=JobStatus.FAILED)
    backing_off = store.add_job("/v/b.mp4", "videos/b.mp4")
    exhausted = store.add_job("/v/x.mp4", "videos/x.mp4")
    store.add_job("/v/p.mp4", "videos/p.mp4")  # pending: not the sweep's business
    assert backing_off.id and exhausted.id
    claim = store.claim_job(backing_off.id, "w", LEASE)
    store.mark_failed(claim, AttemptReport(), "boom", ErrorKind.UPLOAD_TRANSIENT)
    for _ in range(2):
        claim = store.claim_job(exhausted.id, "w", LEASE)
        store.mark_failed(claim, AttemptReport(), "boom", ErrorKind.UPLOAD_TRANSIENT)
        with get_engine(database_url).begin() as connection:
            connection.execute(
                update(UploadJob)
                .where(UploadJob.id == exhausted.id)  # type: ignore[arg-type]
                .values(next_attempt_at=None)
            )

    due = store.due_jobs(limit=10, max_attempts=2)
    assert [job.id for job in due] == [old.id, new.id]
    assert [job.id for job in store.due_jobs(limit=1, max_attempts=2)] == [old.id]
    assert exhausted.id in [job.id for job in store.due_jobs(limit=10, max_attempts=3)]


def test_breaker_opens_on_a_streak_of_permanent_errors_only() -> None:
    breaker = CircuitBreaker(threshold=3)
    for kind in ("upload_permanent", "upload_permanent", None, "upload_permanent"):
        breaker.record(kind, "AccessDenied")
    assert not breaker.open
    breaker.record("upload_permanent", "AccessDenied")
    assert not breaker.open
    breaker.record("upload_permanent", "AccessDenied (last)")
    assert breaker.open and "3 permanent upload errors in a row" in (breaker.reason or "")
    assert "AccessDenied (last)" in (breaker.reason or "")


def test_stale_temp_files_go_fresh_ones_stay(tmp_path: Path) -> None:
    old_dir = tmp_path / "job-1-attempt-1-aaaa"
    old_dir.mkdir()
    stale = old_dir / "stale.mp4"
    stale.write_bytes(b"x")
    fresh = tmp_path / "fresh.mp4"
    fresh.write_bytes(b"y")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))

    assert remove_stale_temp_files(tmp_path, older_than_seconds=600) == 1
    assert not old_dir.exists() and fresh.exists()
    assert remove_stale_temp_files(tmp_path / "nothing-here", 600) == 0


def test_report_rows_count_each_outcome() -> None:
    report = SweepReport(mode="local", picked=[1, 2, 3], skipped_missing_source=[9])
    for job_id, status, optimized, fallback in [
        (1, "completed", True, None),
        (2, "completed", False, "source is truncated"),
        (3, "failed", False, None),
    ]:
        report.record_retry(job_id, status, optimized, fallback)
    rows = {row["outcome"]: (row["jobs"], row["job_ids"]) for row in report.rows()}
    assert rows["completed"] == (2, "1, 2")
    assert rows["optimized for streaming"] == (1, "1")
    assert rows["fell back to the original"] == (1, "2")
    assert rows["failed"] == (1, "3")
    assert rows["skipped: source file missing"] == (1, "9")
