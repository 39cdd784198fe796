"""Retries asked for on the jobs page: checked here, then run on the Prefect deployment or, with
no Prefect server, by a few background threads of the web process."""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from enum import StrEnum

from upload_jobs.errors import JobAlreadyCompleted, JobInProgress, RetryAlreadyQueued
from upload_jobs.jobs.leases import RunStopped, interrupt_held_leases
from upload_jobs.jobs.models import JobStatus, UploadJob
from upload_jobs.jobs.retry_policy import RetryPolicy
from upload_jobs.jobs.store import JobStore
from upload_jobs.web.views import RetryMode

logger = logging.getLogger(__name__)

# A deployment run that has not claimed its job by then (no worker running, say) stops showing as
# queued, so the job can be retried again; the idempotency key still hands back the same run.
DEPLOYMENT_QUEUED_EXPIRY_SECONDS = 600.0


class RetryVia(StrEnum):
    """Where the page's retries run (`upload-jobs web --retry-via`)."""

    AUTO = "auto"
    DEPLOYMENT = "deployment"
    LOCAL = "local"


@dataclass(frozen=True)
class QueuedRetry:
    """A retry asked for and not started yet: the job's attempt count then, and its run if known."""

    job_id: int
    attempts_when_queued: int
    flow_run_id: str | None = None
    queued_at: float = 0.0


class RetryQueue(ABC):
    """Takes retries from the page and remembers which have not started yet."""

    mode: RetryMode
    # The Prefect UI whose flow runs the page links to; None: no UI to link to.
    prefect_ui_url: str | None = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: dict[int, QueuedRetry] = {}

    def check_retryable(self, job: UploadJob, store: JobStore, policy: RetryPolicy) -> None:
        """Raise the domain error that says why `job` cannot be retried now, if it cannot (a
        source no upload can start from is recorded on the job, as a run's claim would)."""
        if job.status == JobStatus.COMPLETED:
            where = f": {job.public_url}" if job.public_url else ""
            raise JobAlreadyCompleted(f"Upload job {job.id} is already completed{where}")
        if job.status == JobStatus.IN_PROGRESS:
            raise JobInProgress(f"Upload job {job.id} is already in progress")
        if self.is_queued(job):
            raise RetryAlreadyQueued(f"Upload job {job.id} is already queued for retry")
        if (problem := store.refuse_unusable_source(job, policy)) is not None:
            raise problem

    def submit(self, job: UploadJob) -> QueuedRetry:
        """Queue one retry of `job`, which `check_retryable` accepted."""
        queued = self._remember(job)
        try:
            return self._start(queued)
        except BaseException:
            self._forget(queued.job_id)
            raise

    def submit_many(self, jobs: Iterable[UploadJob]) -> list[int]:
        """Queue retries of `jobs` without waiting for any to be handed over; their ids."""
        batch = [self._remember(job) for job in jobs]
        self._start_batch(batch)
        return [queued.job_id for queued in batch]

    def is_queued(self, job: UploadJob) -> bool:
        """Whether a retry of `job` was asked for here and its run has not claimed it yet."""
        with self._lock:
            queued = self._queued.get(job.id or 0)
        if queued is None:
            return False
        if job.attempts != queued.attempts_when_queued or job.status == JobStatus.IN_PROGRESS:
            self._forget(queued.job_id)  # claimed: the job row speaks for it from now on
            return False
        return not self._expired(queued)

    def queued_run(self, job_id: int) -> str | None:
        """The flow run queued for `job_id`, when one is known."""
        with self._lock:
            queued = self._queued.get(job_id)
        return queued.flow_run_id if queued else None

    @abstractmethod
    def close(self) -> None:
        """Stop taking work; retries already running finish first."""

    def _remember(self, job: UploadJob) -> QueuedRetry:
        assert job.id is not None
        queued = QueuedRetry(job.id, job.attempts, queued_at=time.monotonic())
        self._record(queued)
        return queued

    def _record(self, queued: QueuedRetry) -> None:
        with self._lock:
            self._queued[queued.job_id] = queued

    def _forget(self, job_id: int) -> None:
        with self._lock:
            self._queued.pop(job_id, None)

    def _expired(self, queued: QueuedRetry) -> bool:
        return False

    @abstractmethod
    def _start(self, queued: QueuedRetry) -> QueuedRetry:
        """Hand one retry over to whatever runs it."""

    @abstractmethod
    def _start_batch(self, batch: list[QueuedRetry]) -> None:
        """Hand many retries over, in the background."""


class LocalRetryQueue(RetryQueue):
    """Runs retries as flow runs in this process, `workers` at a time (no Prefect server needed)."""

    mode: RetryMode = "local"

    def __init__(self, workers: int) -> None:
        super().__init__()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="retry-upload-job")

    def close(self) -> None:
        """Drop retries not started yet; stop the running ones at their next step, which give
        their jobs back (failed, due now), and wait for them."""
        interrupt_held_leases("stopped: the web process that ran it shut down")
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _start(self, queued: QueuedRetry) -> QueuedRetry:
        self._pool.submit(self._run, queued.job_id)
        return queued

    def _start_batch(self, batch: list[QueuedRetry]) -> None:
        for queued in batch:
            self._start(queued)

    def _run(self, job_id: int) -> None:
        from flows.runs import run_retry_flow

        try:
            outcome = run_retry_flow(job_id)
            logger.info("%s", outcome.message)
        except RunStopped as stopped:
            logger.warning("Retry of upload job %s stopped: %s", job_id, stopped)
        except Exception:
            logger.exception("Retry of upload job %s could not run", job_id)
        finally:
            self._forget(job_id)


class DeploymentRetryQueue(RetryQueue):
    """Creates `retry-upload-job/on-demand` runs for whatever serves the deployment to pick up."""

    mode: RetryMode = "deployment"

    def __init__(self) -> None:
        super().__init__()
        # One thread: "retry all failed" over thousands of jobs must not hammer the server.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="queue-deployment-runs")

    def close(self) -> None:
        """Stop creating runs for retries not handed over yet."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _start(self, queued: QueuedRetry) -> QueuedRetry:
        from deployments import retry_idempotency_key
        from deployments.trigger import start_retry

        key = retry_idempotency_key(queued.job_id, queued.attempts_when_queued + 1)
        flow_run = start_retry(queued.job_id, idempotency_key=key)
        started = replace(queued, flow_run_id=str(flow_run.id))
        self._record(started)
        return started

    def _start_batch(self, batch: list[QueuedRetry]) -> None:
        self._pool.submit(self._start_each, batch)

    def _start_each(self, batch: list[QueuedRetry]) -> None:
        for queued in batch:
            try:
                self._start(queued)
            except Exception as exc:
                self._forget(queued.job_id)
                logger.error("Could not queue a retry of upload job %s: %s", queued.job_id, exc)

    def _expired(self, queued: QueuedRetry) -> bool:
        return time.monotonic() - queued.queued_at > DEPLOYMENT_QUEUED_EXPIRY_SECONDS
