"""The events an attempt sends when it ends, as plain data (README "Job events": a contract).

Each is about the resource `upload-job.<id>`. Triggers match on resource labels, not payloads,
so what a trigger or an automation may select on is a label too: the failure class and
`upload-job.retry-after-seconds`, the backoff after which an automatic retry is due ("never"
when the failure is not transient or the job has no automatic attempt left).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from upload_jobs.errors import FailureClass, failure_class
from upload_jobs.jobs.attempt_report import AttemptReport
from upload_jobs.jobs.models import JobStatus, UploadJob
from upload_jobs.jobs.retry_policy import RetryPolicy, seconds_label
from upload_jobs.media.startup import StartupCost
from upload_jobs.redaction import redact

JOB_COMPLETED = "upload-job.completed"
JOB_FAILED = "upload-job.failed"
OPTIMIZATION_FALLBACK = "upload-job.optimization-fallback"
JOB_RESOURCE_PREFIX = "upload-job."
RETRY_AFTER_LABEL = "upload-job.retry-after-seconds"
FAILURE_LABEL = "upload-job.failure"
ERROR_KIND_LABEL = "upload-job.error-kind"
NO_RETRY = "never"


@dataclass(frozen=True)
class JobEvent:
    """One event to emit: its name, the job as its resource, what happened."""

    event: str
    resource: dict[str, str]
    payload: dict[str, Any]


def job_resource_id(job_id: int) -> str:
    """The event resource id of a job: `upload-job.42`."""
    return f"{JOB_RESOURCE_PREFIX}{job_id}"


def attempt_events(
    job: UploadJob, attempt: int, report: AttemptReport, policy: RetryPolicy
) -> list[JobEvent]:
    """What attempt `attempt` of `job` (as it was recorded at the end) sends: a fallback if the
    original went up instead of an optimized copy, then completed or failed."""
    events = []
    if report.fallback_reason is not None:
        events.append(_fallback_event(job, attempt, report))
    if job.status == JobStatus.COMPLETED:
        events.append(_completed_event(job, attempt, report))
    else:
        events.append(failed_event(job, attempt, policy))
    return events


def failed_event(job: UploadJob, attempt: int, policy: RetryPolicy) -> JobEvent:
    """`upload-job.failed` for a job just recorded failed by attempt `attempt`."""
    kind = job.error_kind or "internal_error"
    failure = failure_class(kind)
    retryable = failure == FailureClass.TRANSIENT and policy.may_retry(job.attempts)
    backoff = policy.backoff(attempt) if retryable else None
    labels = {
        ERROR_KIND_LABEL: str(kind),
        FAILURE_LABEL: str(failure),
        RETRY_AFTER_LABEL: seconds_label(backoff) if backoff is not None else NO_RETRY,
    }
    payload = {
        **_job_fields(job, attempt),
        "error_kind": str(kind),
        "failure": str(failure),
        "error": redact(job.last_error or ""),
        "attempts": job.attempts,
        "max_attempts": policy.max_attempts,
        "retryable": retryable,
        "retry_after_seconds": backoff.total_seconds() if backoff is not None else None,
        "next_attempt_at": _iso(job.next_attempt_at) if retryable else None,
    }
    return JobEvent(JOB_FAILED, _resource(job, labels), payload)


def _completed_event(job: UploadJob, attempt: int, report: AttemptReport) -> JobEvent:
    payload = {
        **_job_fields(job, attempt),
        "public_url": job.public_url,
        "etag": job.etag,
        "source_size_bytes": job.source_size_bytes,
        "uploaded_size_bytes": job.uploaded_size_bytes,
        "optimized_for_streaming": job.optimized_for_streaming,
        "optimization_path": report.optimization_path,
        "startup_bytes_before": _startup_bytes(report.source_startup),
        "startup_bytes_after": _startup_bytes(report.uploaded_startup),
    }
    return JobEvent(JOB_COMPLETED, _resource(job, {}), payload)


def _fallback_event(job: UploadJob, attempt: int, report: AttemptReport) -> JobEvent:
    payload = {
        **_job_fields(job, attempt),
        "fallback_kind": report.fallback_kind,
        "reason": redact(report.fallback_reason or ""),
    }
    return JobEvent(OPTIMIZATION_FALLBACK, _resource(job, {}), payload)


def _job_fields(job: UploadJob, attempt: int) -> dict[str, Any]:
    return {"job_id": job.id, "attempt": attempt, "object_key": job.object_key}


def _resource(job: UploadJob, labels: dict[str, str]) -> dict[str, str]:
    return {
        "prefect.resource.id": job_resource_id(job.id or 0),
        "prefect.resource.name": job.object_key,
        **labels,
    }


def _startup_bytes(cost: StartupCost | None) -> int | None:
    return cost.startup_bytes if cost is not None else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
