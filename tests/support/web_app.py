"""The jobs page's app for tests: a TestClient on a loopback address, and a queue that holds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from upload_jobs.web.access import AccessPolicy
from upload_jobs.web.app import create_app
from upload_jobs.web.retries import QueuedRetry, RetryQueue

# What the page sends on loopback without a token: any value will do, the header is the guard.
LOOPBACK_HEADERS = {"X-Upload-Jobs-Token": "local"}


class HeldRetryQueue(RetryQueue):
    """Remembers what was queued and starts nothing: for checks that happen before a run."""

    mode = "local"

    def __init__(self) -> None:
        super().__init__()
        self.started: list[int] = []

    def close(self) -> None:
        """Nothing runs, so nothing to wait for."""

    def _start(self, queued: QueuedRetry) -> QueuedRetry:
        self.started.append(queued.job_id)
        return queued

    def _start_batch(self, batch: list[QueuedRetry]) -> None:
        for queued in batch:
            self._start(queued)


@contextmanager
def web_client(
    queue: RetryQueue,
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    prefect_ui_url: str | None = None,
) -> Iterator[TestClient]:
    """A client of the app as `upload-jobs web --host HOST` would serve it."""
    app = create_app(queue, AccessPolicy.for_binding(host, token), prefect_ui_url)
    try:
        with TestClient(app, base_url=f"http://{host}:8080") as client:
            yield client
    finally:
        queue.close()
