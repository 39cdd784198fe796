"""Which Prefect server a command talks to, checked before anything is claimed, registered or run:
the configured one (`PREFECT_API_URL`), else one already running on this machine, else (for flow
runs in this process) a temporary one this command starts and stops."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import StrEnum

import httpx
from prefect.settings import get_current_settings

from deployments import PrefectUnavailable
from upload_jobs.settings import get_settings

START_A_SERVER = "start one with `prefect server start` (in another shell)"
# A health check that takes longer than this is a server nobody can work with.
HEALTH_TIMEOUT_SECONDS = 3.0
# A server that is already running answers its health check on loopback in milliseconds.
LOCAL_HEALTH_TIMEOUT_SECONDS = 0.5
# The temporary server's first start on a new PREFECT_HOME also creates and migrates its
# database: 30-60 s on a busy 2-core machine, where Prefect's own default (20 s) ran out.
TEMPORARY_SERVER_STARTUP_SECONDS = 180
STARTUP_TIMEOUT_VARIABLE = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
# Its SQLite waits this long for a lock (Prefect's default, 10 s, is also SQLite's busy timeout):
# on a first start during a disk stall the server's own services hit "database is locked" and
# printed tracebacks into a cold demo (seen once in four here; PrefectHQ/prefect#15170).
TEMPORARY_SERVER_DATABASE_TIMEOUT_SECONDS = 60
# The longer wait did not stop them: SQLite refuses a lock upgrade at once, whatever the timeout,
# and the task-run recorder retries the batch itself ("1 to retry, 0 dropped"). The temporary
# server's own log, which shares the terminal, keeps CRITICAL only unless the user sets a level.
SERVER_LOG_LEVEL_VARIABLE = "PREFECT_SERVER_LOGGING_LEVEL"
TEMPORARY_SERVER_LOG_LEVEL = "CRITICAL"
DATABASE_TIMEOUT_VARIABLE = "PREFECT_SERVER_DATABASE_TIMEOUT"
TEMPORARY_SERVER_NOTICE = (
    "Starting a temporary Prefect server for this command (the first start on this machine "
    "creates its database and takes up to a minute; later ones a few seconds). To skip it, "
    "run `prefect server start` in another shell: upload-jobs finds it."
)


class ServerOrigin(StrEnum):
    """Where the Prefect server a command uses comes from."""

    CONFIGURED = "configured"  # PREFECT_API_URL, from the environment or the Prefect profile
    RUNNING_HERE = "running on this machine"  # found at UPLOAD_JOBS_LOCAL_PREFECT_API_URL
    TEMPORARY = "temporary"  # started by this command, stopped when it exits


@dataclass(frozen=True)
class PrefectServer:
    """The server a command uses: its API URL and where it comes from."""

    api_url: str
    origin: ServerOrigin

    @property
    def describe(self) -> str:
        """A line for people: which server, and why that one."""
        if self.origin is ServerOrigin.CONFIGURED:
            return f"Prefect server {self.api_url} (PREFECT_API_URL)"
        if self.origin is ServerOrigin.RUNNING_HERE:
            return f"Prefect server {self.api_url} (running on this machine)"
        return f"temporary Prefect server {self.api_url} (stopped when this command ends)"


def health_problem(api_url: str, timeout_seconds: float) -> str | None:
    """Why the server at `api_url` cannot be used (no answer, or not healthy), or None."""
    settings = get_current_settings()
    headers = {}
    if settings.api.key:
        headers["Authorization"] = f"Bearer {settings.api.key.get_secret_value()}"
    try:
        # One request, no retries: Prefect's own client retries a dead server for seconds. Over
        # plain http there is no certificate to check, and loading the CA bundle takes 15 ms.
        response = httpx.get(
            f"{api_url.rstrip('/')}/health",
            headers=headers,
            timeout=timeout_seconds,
            verify=api_url.startswith("https:"),
        )
    except httpx.TimeoutException:
        return f"no answer within {timeout_seconds:g} s"
    except httpx.HTTPError as exc:
        return str(exc) or type(exc).__name__
    if response.status_code != 200:
        return f"its health check answered HTTP {response.status_code}"
    return None


def find_prefect_server() -> PrefectServer | None:
    """The configured server if it answers (`PrefectUnavailable` if it does not), else a server
    already running here at `UPLOAD_JOBS_LOCAL_PREFECT_API_URL`, else None."""
    configured = get_current_settings().api.url
    if configured:
        problem = health_problem(configured, HEALTH_TIMEOUT_SECONDS)
        if problem:
            raise PrefectUnavailable(
                f"The Prefect server at {configured} does not answer ({problem}); PREFECT_API_URL "
                f"points there: {START_A_SERVER}, or unset PREFECT_API_URL to run without one."
            )
        return PrefectServer(configured, ServerOrigin.CONFIGURED)
    local = get_settings().local_prefect_api_url
    if local and health_problem(local, LOCAL_HEALTH_TIMEOUT_SECONDS) is None:
        _use_api_url(local)
        return PrefectServer(local, ServerOrigin.RUNNING_HERE)
    return None


def _use_api_url(api_url: str) -> None:
    """Point the rest of this process (and the processes it starts) at `api_url`."""
    from prefect.context import refresh_global_settings_context

    os.environ["PREFECT_API_URL"] = api_url
    refresh_global_settings_context()


def require_prefect_server(needed_for: str, why: str) -> str:
    """The API URL of a server that keeps running (configured, or running here); else
    `PrefectUnavailable` saying that `needed_for` needs one, and `why` a temporary one won't do."""
    server = find_prefect_server()
    if server is None:
        raise PrefectUnavailable(
            f"{needed_for} needs a Prefect server that keeps running ({why}), and none is "
            f"configured or running on this machine: {START_A_SERVER}, then run this again "
            "(or set PREFECT_API_URL to your server)."
        )
    return server.api_url


def prefect_server_for_runs(
    announce: Callable[[str], AbstractContextManager[object]] | None = None,
) -> PrefectServer:
    """A server for flow runs in this process: the configured or running one, else a temporary
    one started now (`announce(TEMPORARY_SERVER_NOTICE)` shown while it starts) and stopped when
    the process exits."""
    found = find_prefect_server()
    if found is not None:
        return found
    return start_temporary_server(announce or (lambda _: nullcontext()))


def start_temporary_server(
    announce: Callable[[str], AbstractContextManager[object]],
) -> PrefectServer:
    """Start Prefect's temporary server now (later clients of this process reuse it), giving
    it the time a first start needs; it stops when the process exits."""
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    if server.running:  # started earlier in this process (the demo, then its jobs page)
        return PrefectServer(server.api_url, ServerOrigin.TEMPORARY)
    # Offline, the temporary server's telemetry only prints errors; a profile may turn it on.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not {DATABASE_TIMEOUT_VARIABLE, "PREFECT_API_DATABASE_TIMEOUT"} & os.environ.keys():
        os.environ[DATABASE_TIMEOUT_VARIABLE] = str(TEMPORARY_SERVER_DATABASE_TIMEOUT_SECONDS)
    if "logging_level" not in get_current_settings().server.model_fields_set:
        os.environ.setdefault(SERVER_LOG_LEVEL_VARIABLE, TEMPORARY_SERVER_LOG_LEVEL)
    timeout = _startup_timeout()
    with announce(TEMPORARY_SERVER_NOTICE):
        try:
            server.start(timeout=timeout)
        except RuntimeError as exc:
            server.stop()
            raise PrefectUnavailable(
                f"The temporary Prefect server did not start within {timeout} s: "
                f"{START_A_SERVER} and set PREFECT_API_URL, or raise {STARTUP_TIMEOUT_VARIABLE}"
                f" ({str(exc).splitlines()[0][:200]})"
            ) from None
    return PrefectServer(server.api_url, ServerOrigin.TEMPORARY)


def _startup_timeout() -> int:
    """The user's own startup timeout when they set one, else one long enough for a first start."""
    ephemeral = get_current_settings().server.ephemeral
    if "startup_timeout_seconds" in ephemeral.model_fields_set:
        return int(ephemeral.startup_timeout_seconds)
    return TEMPORARY_SERVER_STARTUP_SECONDS


def prefect_ui_url() -> str:
    """Where people open the Prefect UI for the server this process uses."""
    settings = get_current_settings()
    api_url = settings.api.url or ""
    return settings.ui_url or api_url.removesuffix("/api")
