"""The events attempts send, as a real Prefect server receives them from `retry_upload_job`
(README "Job events"): names, the job as resource, the run as related, payloads matching what
the job table recorded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.retry_upload import retry_upload_job
from tests.support.job_events import wait_for_job_events
from tests.support.s3_backends import S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings, get_settings

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]


def add_job(settings: Settings, source: Path) -> int:
    job = JobStore(settings.database_url).add_job(str(source), f"videos/{source.name}")
    assert job.id is not None
    return job.id


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_each_attempt_ends_with_its_documented_events(
    settings: Settings,
    clip: Callable[[str, str], Path],
    s3_server: S3Backend,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    since = datetime.now(UTC)
    store = JobStore(settings.database_url)
    fell_back = add_job(settings, clip("truncated", "cut.mp4"))
    missing = add_job(settings, tmp_path / "gone.mp4")
    throttled = add_job(settings, clip("faststart", "throttled.mp4"))
    retry_upload_job(fell_back, return_state=True)
    refused = retry_upload_job(missing, return_state=True)
    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.fail_always(503, "SlowDown", kinds={"put_object"})
        monkeypatch.setenv("UPLOAD_JOBS_ENDPOINT_URL", proxy.endpoint_url)
        monkeypatch.setenv("UPLOAD_JOBS_S3_MAX_ATTEMPTS", "1")
        monkeypatch.setenv("UPLOAD_JOBS_UPLOAD_RETRIES", "0")
        get_settings.cache_clear()
        retry_upload_job(throttled, return_state=True)
    get_settings.cache_clear()

    events = wait_for_job_events(since, [fell_back, missing, throttled], count=4)
    by_job = {
        job_id: [e for e in events if e.resource.id == f"upload-job.{job_id}"]
        for job_id in (fell_back, missing, throttled)
    }
    # The missing source spent no attempt (its event says attempt 0); the others' first.
    runs = {missing: (str(refused.state_details.flow_run_id), 0)}
    for job_id in (fell_back, throttled):
        [attempt] = store.list_attempts(job_id)
        runs[job_id] = (str(attempt.flow_run_id), 1)
    assert store.list_attempts(missing) == []
    for job_id, sent in by_job.items():
        flow_run_id, attempt_number = runs[job_id]
        for event in sent:
            related = {r.id: r.role for r in event.related}
            assert related.get(f"prefect.flow-run.{flow_run_id}") == "flow-run", event
            assert event.payload["job_id"] == job_id
            assert event.payload["attempt"] == attempt_number
            assert event.resource.name == store.get_job(job_id).object_key

    fallback, completed = by_job[fell_back]
    assert fallback.event == "upload-job.optimization-fallback"
    assert fallback.payload["fallback_kind"] == "source_truncated"
    assert "truncated" in fallback.payload["reason"]
    job = store.get_job(fell_back)
    assert (completed.event, job.status) == ("upload-job.completed", JobStatus.COMPLETED)
    assert completed.payload["public_url"] == job.public_url
    assert completed.payload["etag"] == job.etag
    assert completed.payload["optimization_path"] == "fallback_original"

    [permanent] = by_job[missing]
    assert permanent.event == "upload-job.failed"
    assert permanent.resource["upload-job.failure"] == "permanent"
    assert permanent.resource["upload-job.retry-after-seconds"] == "never"
    assert permanent.payload["error_kind"] == "source_missing"
    assert permanent.payload["error"] == store.get_job(missing).last_error
    assert permanent.payload["retryable"] is False

    [transient] = by_job[throttled]
    job = store.get_job(throttled)
    assert transient.resource["upload-job.failure"] == "transient"
    assert transient.resource["upload-job.error-kind"] == "upload_transient"
    assert transient.resource["upload-job.retry-after-seconds"] == "60"
    assert transient.payload["retryable"] is True and transient.payload["max_attempts"] == 5
    assert job.next_attempt_at is not None
    assert transient.payload["next_attempt_at"] == job.next_attempt_at.isoformat()
