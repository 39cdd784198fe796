"""Job events sent to Prefect's event stream when an attempt ends (README "Job events").

Not tasks: an event costs no task run. Prefect relates each one to the flow run (and deployment)
it is sent from; the events worker sends them in the background, and a run's end waits for it.
"""

from __future__ import annotations

from prefect import get_run_logger
from prefect.events import emit_event

from upload_jobs.jobs.attempt_report import AttemptReport
from upload_jobs.jobs.events import JobEvent, attempt_events, failed_event
from upload_jobs.jobs.models import UploadJob
from upload_jobs.jobs.retry_policy import retry_policy
from upload_jobs.settings import get_settings


def emit_attempt_events(job: UploadJob, attempt: int, report: AttemptReport) -> None:
    """Send what attempt `attempt` ended with; an event that cannot be sent never fails the run
    (the job's outcome is recorded already, and the sweep retries what a trigger missed)."""
    _emit(attempt_events(job, attempt, report, retry_policy(get_settings())))


def emit_failure_event(job: UploadJob) -> None:
    """Send `upload-job.failed` for a failure recorded on the job without an attempt (a source
    no upload can start from)."""
    _emit([failed_event(job, job.attempts, retry_policy(get_settings()))])


def _emit(job_events: list[JobEvent]) -> None:
    for job_event in job_events:
        try:
            emit_event(
                event=job_event.event, resource=job_event.resource, payload=job_event.payload
            )
        except Exception as exc:
            get_run_logger().warning("Could not send the event %s: %s", job_event.event, exc)
