"""The jobs page served on a free port, for the browser tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from upload_jobs.settings import Settings
from upload_jobs.web.retries import LocalRetryQueue
from upload_jobs.web.server import RetrySetup, WebServer


@pytest.fixture
def page_url(settings: Settings) -> Iterator[str]:
    """The jobs page served by `WebServer` on a free port, retries running in its process."""
    setup = RetrySetup(LocalRetryQueue(workers=2), None, "Retries run in this web process.")
    server = WebServer(settings, setup, "127.0.0.1", 0).start()
    try:
        yield server.url
    finally:
        server.stop()
