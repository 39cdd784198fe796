"""The events an attempt ends with, as plain data: names, resource labels triggers match on,
payloads (README "Job events"), on jobs recorded by the real store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from upload_jobs.errors import ErrorKind, FailureClass, failure_class
from upload_jobs.jobs.attempt_report import AttemptReport, StoredObject
from upload_jobs.jobs.events import (
    FAILURE_LABEL,
    JOB_COMPLETED,
    JOB_FAILED,
    NO_RETRY,
    OPTIMIZATION_FALLBACK,
    RETRY_AFTER_LABEL,
    attempt_events,
)
from upload_jobs.jobs.models import JobStatus, UploadJob, as_utc
from upload_jobs.jobs.retry_policy import RetryPolicy
from upload_jobs.jobs.store import JobStore
from upload_jobs.media.streaming import StreamingPath
from upload_jobs.redaction import register_secrets

LEASE = timedelta(minutes=10)
POLICY = RetryPolicy(backoff_base=timedelta(seconds=30), max_attempts=3)


def fail_attempts(store: JobStore, job_id: int, kind: ErrorKind, times: int) -> UploadJob:
    """Run the job `times` times, each attempt failing with `kind`; the job after the last."""
    for _ in range(times):
        claim = store.claim_job(job_id, "worker", LEASE)
        job = store.mark_failed(claim, AttemptReport(), f"{kind} happened", kind, POLICY)
    return job


def test_policy_backoffs_double_and_the_last_attempt_has_none() -> None:
    assert RetryPolicy().backoffs_with_a_retry_left() == [
        timedelta(minutes=m) for m in (1, 2, 4, 8)
    ]
    assert POLICY.backoffs_with_a_retry_left() == [timedelta(seconds=30), timedelta(seconds=60)]
    assert RetryPolicy(max_attempts=1).backoffs_with_a_retry_left() == []
    assert RetryPolicy(max_attempts=12).backoffs_with_a_retry_left()[-1] == timedelta(hours=1)


@pytest.mark.parametrize(
    ("kind", "failure"),
    [
        (ErrorKind.UPLOAD_TRANSIENT, FailureClass.TRANSIENT),
        (ErrorKind.WORKER_LOST, FailureClass.TRANSIENT),
        (ErrorKind.UPLOAD_PERMANENT, FailureClass.PERMANENT),
        (ErrorKind.SOURCE_MISSING, FailureClass.PERMANENT),
        (ErrorKind.CREDENTIALS_UNAVAILABLE, FailureClass.PERMANENT),
        (ErrorKind.INTERNAL, FailureClass.PERMANENT),
        (ErrorKind.INTERRUPTED, FailureClass.INTERRUPTED),
        ("a kind from a newer version", FailureClass.PERMANENT),
    ],
)
def test_failure_classes(kind: str, failure: FailureClass) -> None:
    assert failure_class(kind) == failure


def test_a_transient_failure_is_labelled_with_the_backoff_the_store_recorded(
    database_url: str,
) -> None:
    store = JobStore(database_url)
    job = store.add_job("/v/a.mp4", "videos/a.mp4")
    assert job.id is not None
    for attempt, backoff in ((1, "30"), (2, "60")):
        failed = fail_attempts(store, job.id, ErrorKind.UPLOAD_TRANSIENT, 1)
        [event] = attempt_events(failed, attempt, AttemptReport(), POLICY)
        assert event.event == JOB_FAILED
        assert event.resource == {
            "prefect.resource.id": f"upload-job.{job.id}",
            "prefect.resource.name": "videos/a.mp4",
            "upload-job.error-kind": "upload_transient",
            FAILURE_LABEL: "transient",
            RETRY_AFTER_LABEL: backoff,
        }
        payload = event.payload
        assert payload["retryable"] is True and payload["retry_after_seconds"] == float(backoff)
        next_at = as_utc(failed.next_attempt_at)
        assert (
            next_at is not None and payload["next_attempt_at"] == failed.next_attempt_at.isoformat()
        )
        assert as_utc(failed.updated_at) + timedelta(seconds=float(backoff)) == next_at
        assert (payload["job_id"], payload["attempt"], payload["attempts"]) == (
            job.id,
            attempt,
            attempt,
        )
        assert payload["max_attempts"] == 3 and payload["error"] == "upload_transient happened"

    # The third and last attempt: no automatic retry is left, whatever the kind.
    last = fail_attempts(store, job.id, ErrorKind.UPLOAD_TRANSIENT, 1)
    [event] = attempt_events(last, 3, AttemptReport(), POLICY)
    assert event.resource[RETRY_AFTER_LABEL] == NO_RETRY
    assert event.payload["retryable"] is False and event.payload["next_attempt_at"] is None


@pytest.mark.parametrize("kind", [ErrorKind.SOURCE_MISSING, ErrorKind.UPLOAD_PERMANENT])
def test_a_permanent_failure_is_never_labelled_for_a_retry(
    database_url: str, kind: ErrorKind
) -> None:
    store = JobStore(database_url)
    job = store.add_job("/v/a.mp4", "videos/a.mp4")
    assert job.id is not None
    [event] = attempt_events(fail_attempts(store, job.id, kind, 1), 1, AttemptReport(), POLICY)
    assert event.resource[FAILURE_LABEL] == "permanent"
    assert event.resource[RETRY_AFTER_LABEL] == NO_RETRY
    assert event.payload["failure"] == "permanent" and event.payload["error_kind"] == kind


def test_an_interrupted_attempt_is_not_retried_by_events(database_url: str) -> None:
    store = JobStore(database_url)
    job = store.add_job("/v/a.mp4", "videos/a.mp4")
    assert job.id is not None
    claim = store.claim_job(job.id, "worker", LEASE)
    stopped = store.mark_interrupted(claim, AttemptReport(), "The run was stopped by SIGTERM")
    [event] = attempt_events(stopped, 1, AttemptReport(), POLICY)
    assert (event.event, event.resource[FAILURE_LABEL]) == (JOB_FAILED, "interrupted")
    assert event.resource[RETRY_AFTER_LABEL] == NO_RETRY


def test_a_completed_attempt_that_fell_back_sends_both(database_url: str) -> None:
    store = JobStore(database_url)
    job = store.add_job("/v/a.mp4", "videos/a.mp4")
    assert job.id is not None
    claim = store.claim_job(job.id, "worker", LEASE)
    report = AttemptReport(preset="faststart", source_size_bytes=100, uploaded_size_bytes=100)
    report.record_choice(
        StreamingPath.FALLBACK_ORIGINAL, "ffmpeg exited 1: moov atom not found", "ffmpeg_failed"
    )
    done = store.mark_completed(claim, report, StoredObject("https://cdn/videos/a.mp4", "e1"))
    assert done.status == JobStatus.COMPLETED
    fallback, completed = attempt_events(done, 1, report, POLICY)
    assert fallback.event == OPTIMIZATION_FALLBACK
    assert fallback.payload == {
        "job_id": job.id,
        "attempt": 1,
        "object_key": "videos/a.mp4",
        "fallback_kind": "ffmpeg_failed",
        "reason": "ffmpeg exited 1: moov atom not found",
    }
    assert completed.event == JOB_COMPLETED
    assert completed.resource == {
        "prefect.resource.id": f"upload-job.{job.id}",
        "prefect.resource.name": "videos/a.mp4",
    }
    assert completed.payload["public_url"] == "https://cdn/videos/a.mp4"
    assert completed.payload["etag"] == "e1" and completed.payload["uploaded_size_bytes"] == 100
    assert completed.payload["optimized_for_streaming"] is False


def test_payloads_never_carry_a_credential(database_url: str) -> None:
    secret = "SECRETKEY-FOR-EVENTS-0123456789"
    register_secrets(secret)
    store = JobStore(database_url)
    job = store.add_job("/v/a.mp4", "videos/a.mp4")
    assert job.id is not None
    claim = store.claim_job(job.id, "worker", LEASE)
    failed = store.mark_failed(
        claim, AttemptReport(), f"403 for key {secret}", ErrorKind.UPLOAD_PERMANENT, POLICY
    )
    [event] = attempt_events(failed, 1, AttemptReport(), POLICY)
    assert secret not in repr(event) and event.payload["error"] == "403 for key ***"
