"""Which Prefect server this process talks to, checked before anything is registered or run."""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.settings import get_current_settings

from deployments import PrefectUnavailable

START_A_SERVER = (
    "start one with `prefect server start`, then "
    "`prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api`"
)


def prefect_api_url() -> str:
    """The configured `PREFECT_API_URL`; without one Prefect would start a throwaway server."""
    url = get_current_settings().api.url
    if not url:
        raise PrefectUnavailable(f"No Prefect server is configured: {START_A_SERVER}.")
    return url


def require_prefect_server() -> str:
    """The configured server's API URL, once it has answered a health check."""
    url = prefect_api_url()
    with get_client(sync_client=True) as client:
        error = client.api_healthcheck()
    if error is not None:
        raise PrefectUnavailable(
            f"Cannot reach the Prefect server at {url} ({error}): {START_A_SERVER}."
        )
    return url


def prefect_ui_url() -> str:
    """Where people open the Prefect UI for the configured server."""
    return get_current_settings().ui_url or prefect_api_url().removesuffix("/api")
