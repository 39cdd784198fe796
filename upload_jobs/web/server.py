"""Starting the jobs page: pick where retries run, check the binding is safe, serve with uvicorn."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import uvicorn

from deployments import RETRY_DEPLOYMENT, PrefectUnavailable
from upload_jobs.settings import Settings
from upload_jobs.web.access import AccessPolicy, require_safe_binding
from upload_jobs.web.app import create_app
from upload_jobs.web.retries import DeploymentRetryQueue, LocalRetryQueue, RetryQueue, RetryVia


@dataclass(frozen=True)
class RetrySetup:
    """The chosen retry queue, the Prefect UI to link to (if any), and a line saying why."""

    queue: RetryQueue
    prefect_ui_url: str | None
    description: str


def choose_retry_setup(
    via: RetryVia,
    workers: int,
    announce: Callable[[str], AbstractContextManager[object]] | None = None,
) -> RetrySetup:
    """The deployment when a Prefect server is there and serves it (or `via` insists), else
    background threads of this process, on a temporary Prefect server when there is no other
    (started now, `announce` showing it); `PrefectUnavailable` if the deployment is asked for
    and missing."""
    from deployments.server import (
        ServerOrigin,
        find_prefect_server,
        prefect_ui_url,
        start_temporary_server,
    )
    from deployments.trigger import require_retry_deployment

    server = find_prefect_server()
    if via is RetryVia.LOCAL or (via is RetryVia.AUTO and server is None):
        server = server or start_temporary_server(announce or (lambda _: nullcontext()))
        # The temporary server has no UI to link to.
        ui_url = None if server.origin is ServerOrigin.TEMPORARY else prefect_ui_url()
        local = f"in this web process ({workers} at a time) on the {server.describe}"
        return RetrySetup(LocalRetryQueue(workers), ui_url, f"Retries run {local}.")
    try:
        require_retry_deployment()
    except PrefectUnavailable as exc:
        if via is RetryVia.DEPLOYMENT:
            raise
        local = f"in this web process ({workers} at a time), their runs shown in the Prefect UI"
        return RetrySetup(LocalRetryQueue(workers), prefect_ui_url(), f"Retries run {local}: {exc}")
    return RetrySetup(
        DeploymentRetryQueue(),
        prefect_ui_url(),
        f"Retries run on the Prefect deployment {RETRY_DEPLOYMENT}.",
    )


class WebServer:
    """uvicorn serving the jobs page from a background thread, so Ctrl-C reaches the caller."""

    def __init__(self, settings: Settings, setup: RetrySetup, host: str, port: int) -> None:
        token = settings.web_token.get_secret_value() if settings.web_token else None
        require_safe_binding(host, token)
        self.setup = setup
        app = create_app(setup.queue, AccessPolicy.for_binding(host, token), setup.prefect_ui_url)
        # Access lines every 2 s from the page's polling would bury the flow runs' own logs.
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._host = host

    @property
    def url(self) -> str:
        """Where the page is, once the server has started (its real port, even for port 0)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._bound_port()}"

    def start(self, timeout_seconds: float = 30.0) -> WebServer:
        """Serve from a background thread; returns once the server takes connections."""
        self._thread = threading.Thread(target=self._server.run, name="upload-jobs-web")
        self._thread.start()
        deadline = time.monotonic() + timeout_seconds
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"The jobs page could not start on {self._host}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop serving; retries already running in this process finish first."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join()
        self.setup.queue.close()

    def serve_until_interrupted(self, on_started: Callable[[str], object]) -> None:
        """Start, tell `on_started` the page's URL, and serve until Ctrl-C."""
        self.start()
        try:
            on_started(self.url)
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def _bound_port(self) -> int:
        for server in getattr(self._server, "servers", []):  # set once uvicorn has started
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self._server.config.port
