"""The page's retries while their Prefect side is still being set up.

Deciding where retries run imports Prefect (about 2 s here) and, with no Prefect server around,
starts a temporary one (30 s on a fresh PREFECT_HOME, 79 s seen on a busy machine). The page
needs none of that to list jobs: it serves at once, and this queue stands in until the real one
is ready. A retry asked for meanwhile waits for it for a while, then says Prefect is starting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from deployments import PrefectUnavailable
from upload_jobs.jobs.models import UploadJob
from upload_jobs.jobs.retry_policy import RetryPolicy
from upload_jobs.jobs.store import JobStore
from upload_jobs.web.retries import QueuedRetry, RetryQueue
from upload_jobs.web.views import RetryMode

if TYPE_CHECKING:
    from upload_jobs.web.server import RetrySetup

logger = logging.getLogger(__name__)

# How long a retry asked for while Prefect starts waits for it before the page says so.
WAIT_FOR_PREFECT_SECONDS = 20.0


class DeferredRetryQueue(RetryQueue):
    """The queue `decide()` returns, decided in a background thread; `on_ready` hears it (or
    the error that stopped it)."""

    def __init__(
        self,
        decide: Callable[[], RetrySetup],
        on_ready: Callable[[RetrySetup | None, Exception | None], object],
        wait_seconds: float = WAIT_FOR_PREFECT_SECONDS,
    ) -> None:
        super().__init__()
        self._ready = threading.Event()
        self._setup: RetrySetup | None = None
        self._error: Exception | None = None
        self._wait_seconds = wait_seconds
        self._thread = threading.Thread(
            target=self._decide, args=(decide, on_ready), name="retry-setup", daemon=True
        )
        self._thread.start()

    @property
    def mode(self) -> RetryMode:  # type: ignore[override]
        """Where retries run; `starting` until that is known."""
        return self._setup.queue.mode if self._setup is not None else "starting"

    @property
    def prefect_ui_url(self) -> str | None:  # type: ignore[override]
        """The Prefect UI to link to, once known."""
        return self._setup.prefect_ui_url if self._setup is not None else None

    def check_retryable(self, job: UploadJob, store: JobStore, policy: RetryPolicy) -> None:
        """As the real queue says, once there is one."""
        self._real().check_retryable(job, store, policy)

    def submit(self, job: UploadJob) -> QueuedRetry:
        """Queue on the real queue."""
        return self._real().submit(job)

    def submit_many(self, jobs: Iterable[UploadJob]) -> list[int]:
        """Queue on the real queue."""
        return self._real().submit_many(jobs)

    def is_queued(self, job: UploadJob) -> bool:
        """Nothing is queued before the real queue exists."""
        return self._setup is not None and self._setup.queue.is_queued(job)

    def queued_run(self, job_id: int) -> str | None:
        """The real queue's run for `job_id`, if any."""
        return self._setup.queue.queued_run(job_id) if self._setup is not None else None

    def close(self) -> None:
        """Close the real queue, once it exists."""
        if self._setup is not None:
            self._setup.queue.close()

    def _real(self) -> RetryQueue:
        if not self._ready.wait(self._wait_seconds):
            raise PrefectUnavailable(
                "Prefect is still starting (its temporary server's first start on a machine "
                "creates its database): try again in a minute, or run `prefect server start` "
                "before `upload-jobs web`."
            )
        if self._setup is None:
            raise PrefectUnavailable(f"Retries cannot run: {self._error}")
        return self._setup.queue

    def _decide(
        self,
        decide: Callable[[], RetrySetup],
        on_ready: Callable[[RetrySetup | None, Exception | None], object],
    ) -> None:
        try:
            self._setup = decide()
        except Exception as exc:  # said on the terminal and to every retry asked for
            logger.debug("Deciding where retries run failed", exc_info=True)
            self._error = exc
        finally:
            self._ready.set()
        on_ready(self._setup, self._error)

    def _start(self, queued: QueuedRetry) -> QueuedRetry:
        raise NotImplementedError("the real queue starts retries")

    def _start_batch(self, batch: list[QueuedRetry]) -> None:
        raise NotImplementedError("the real queue starts retries")
