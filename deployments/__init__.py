"""Names of what this project registers on a Prefect server; no Prefect import here.

`serve.py` serves the deployments from one process, `prefect.yaml` registers them for the
`video-uploads` work pool, `setup.py` creates the pool and the global concurrency limits and
`trigger.py` starts a retry on whichever process or worker serves it.
"""

from __future__ import annotations

RETRY_DEPLOYMENT = "retry-upload-job/on-demand"
SWEEP_DEPLOYMENT = "sweep-failed-uploads/scheduled"
WORK_POOL = "video-uploads"
DEFAULT_SWEEP_CRON = "*/15 * * * *"


def retry_run_name(job_id: int) -> str:
    """The name of a run of `retry-upload-job` for this job, from the moment it exists."""
    return f"retry-upload-job-{job_id}"


def retry_idempotency_key(job_id: int, attempt_number: int) -> str:
    """One flow run per job attempt, however many sweeps or people ask for it at once."""
    return f"retry-upload-job-{job_id}-attempt-{attempt_number}"


class PrefectUnavailable(Exception):
    """No Prefect server to talk to, or it lacks a deployment; the message says what to start."""
